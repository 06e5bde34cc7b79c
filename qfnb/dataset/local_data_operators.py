"""The official SDK's local data-cleaning filters (``qianfan.dataset.local_data_operators``), with
its class names, parameters and per-language defaults: each is a callable ``entry -> bool`` (keep
the row) for :meth:`Dataset.filter`, e.g. ``ds.filter(LocalCheckCharacterRepetitionFilter("text"))``.

Words: whitespace-separated outside Chinese; Chinese (``text_language="ZH"``) is cut by the
SentencePiece model at ``sentence_piece_model_path`` (the ``sentencepiece`` package), or, with no
path (qfnb accepts none), by jieba when installed (the ``eval`` extra), else character by
character. Sentences are cut at 。！？!?; and line ends (the official SDK uses LTP's splitter).

Word lists: the stopwords filter reads the stopwords-iso lists (the ``stopwordsiso`` package, the
``clean`` extra; 58 languages, MIT) unless given ``stopwords=``. The flagged-words filter takes
the user's list (``flagged_words=`` or ``flagged_words_file=``): the official SDK ships its own
lists, and no maintained package carries such lists, so qfnb ships none. Both compare words
case-insensitively (the official SDK compares them as written, so "The" was no English stopword).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from qfnb._core.errors import ValidationError

__all__ = [
    "BaseLocalFilterOperator",
    "LocalCheckCharacterRepetitionFilter",
    "LocalCheckEachSentenceIsLongEnoughFilter",
    "LocalCheckFlaggedWordsFilter",
    "LocalCheckSpecialCharactersFilter",
    "LocalCheckStopwordsFilter",
    "LocalCheckWordNumberFilter",
    "LocalCheckWordRepetitionFilter",
    "default_special_characters",
]

#: the official defaults by language (other languages: the fallback beside each)
CHARACTER_REPETITION_LENGTH = {"EN": 10, "ZH": 3}, 10
CHARACTER_REPETITION_MAX_CUTOFF = {"EN": 0.106, "ZH": 0.2}, 0.2
SPECIAL_CHARACTERS_MAX_CUTOFF = {"EN": 0.40, "ZH": 0.30}, 0.40
NUMBER_WORDS_MIN = {"EN": 20, "ZH": 1}, 10
NUMBER_WORDS_MAX = {"EN": 100000, "ZH": 1000000}, 100000
WORD_REPETITION_LENGTH = {"EN": 5, "ZH": 5}, 5
WORD_REPETITION_MAX_CUTOFF = {"EN": 0.19, "ZH": 0.96}, 0.3
FLAGGED_WORDS_MAX_CUTOFF = {"AR": 0.03, "BN": 0.001, "CA": 0.1, "EN": 0.01, "ES": 0.01, "EU": 0.1, "FR": 0.008,
                            "HI": 0.005, "ID": 0.01, "PT": 0.007, "UR": 0.025, "VI": 0.005, "ZH": 0.001}, 0.1
STOPWORDS_MIN_CUTOFF = {"AR": 0.07, "BN": 0.002, "CA": 0.25, "EN": 0.30, "ES": 0.4, "EU": 0.05, "FR": 0.27,
                        "HI": 0.01, "ID": 0.15, "PT": 0.20, "UR": 0.01, "VI": 0.08, "ZH": 0.1691}, 0.1
#: word n-grams also looked up (languages written without spaces between words, or between syllables)
WORDS_AUGMENTATION_GROUP_SIZES: tuple[dict[str, list[int]], list[int]] = {"VI": [2], "ZH": [2]}, []
WORDS_AUGMENTATION_JOIN_CHAR = {"VI": " ", "ZH": ""}, ""

_CJK_PUNCTUATION = "，。、；：？！…—·「」『』（）《》〈〉【】“”‘’～￥"
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|\n+")


def _default(table: tuple[Mapping[str, Any], Any], language: str) -> Any:
    per_language, fallback = table
    return per_language.get(language, fallback)


def default_special_characters() -> set[str]:
    """ASCII punctuation, digits and whitespace, CJK punctuation (a character of a symbol or
    control category counts as special too: emoji, dingbats)."""
    return set(string.punctuation + string.digits + string.whitespace + _CJK_PUNCTUATION)


def is_special(ch: str, chars: set[str]) -> bool:
    return ch in chars or unicodedata.category(ch) in ("So", "Sk", "Cc", "Cf", "Cs", "Co")


class BaseLocalFilterOperator:
    """Keep a row (``True``) or drop it; reads ``filter_column`` of a dict row, or a plain string."""

    def __init__(self, filter_column: str, text_language: str = "ZH", **kwargs: Any) -> None:
        if not isinstance(filter_column, str) or not filter_column:
            raise ValidationError("filter_column", "name the column to check")
        self.filter_column = filter_column
        self.text_language = text_language

    def document(self, entry: Any) -> str:
        if isinstance(entry, str):
            return entry
        if isinstance(entry, Mapping):
            if self.filter_column not in entry:
                raise ValidationError("filter_column", f"the row has no column {self.filter_column!r}")
            return str(entry[self.filter_column] or "")
        if isinstance(entry, list):
            raise ValidationError("entry", "cannot filter a group of rows: call unpack() on the dataset first")
        raise ValidationError("entry", f"cannot filter a {type(entry).__name__}")

    def __repr__(self) -> str:
        """The column and the settings (a word or character set by its size)."""
        shown = {k: len(v) if isinstance(v, set | frozenset) else v for k, v in vars(self).items()
                 if not k.startswith("_") and k != "filter_column"}
        args = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"{type(self).__name__}({self.filter_column!r}, {args})"

    def __call__(self, entry: Any, *args: Any, **kwargs: Any) -> bool:
        raise NotImplementedError


def repetition_ratio(grams: Iterable[str]) -> float:
    """The share of all n-grams taken by the sqrt(distinct) most frequent repeated ones (the
    official measure; 0 with no n-gram)."""
    freq = sorted(Counter(grams).values(), reverse=True)
    if not freq:
        return 0.0
    repeated = min(int(len(freq) ** 0.5), len(freq) - sum(1 for f in freq if f == 1))
    return sum(freq[:repeated]) / sum(freq)


class LocalCheckCharacterRepetitionFilter(BaseLocalFilterOperator):
    """Drop rows whose character n-grams repeat too much."""

    def __init__(self, filter_column: str, character_repetition_length: int | None = None,
                 character_repetition_max_cutoff: float | None = None, **kwargs: Any) -> None:
        super().__init__(filter_column, **kwargs)
        self.character_repetition_length = int(character_repetition_length or _default(
            CHARACTER_REPETITION_LENGTH, self.text_language))
        self.character_repetition_max_cutoff = float(character_repetition_max_cutoff or _default(
            CHARACTER_REPETITION_MAX_CUTOFF, self.text_language))
        if self.character_repetition_length < 1:
            raise ValidationError("character_repetition_length", "must be >= 1")


    def __call__(self, entry: Any, *args: Any, **kwargs: Any) -> bool:
        text, n = self.document(entry), self.character_repetition_length
        ratio = repetition_ratio(text[i:i + n] for i in range(len(text) - n + 1))
        return ratio <= self.character_repetition_max_cutoff


class LocalCheckSpecialCharactersFilter(BaseLocalFilterOperator):
    """Drop rows with too large a share of special characters (punctuation, digits, symbols)."""

    def __init__(self, filter_column: str, special_characters: set[str] | None = None,
                 special_characters_max_cutoff: float | None = None, **kwargs: Any) -> None:
        super().__init__(filter_column, **kwargs)
        self.special_characters = set(special_characters) if special_characters is not None \
            else default_special_characters()
        self.special_characters_max_cutoff = float(special_characters_max_cutoff or _default(
            SPECIAL_CHARACTERS_MAX_CUTOFF, self.text_language))


    def __call__(self, entry: Any, *args: Any, **kwargs: Any) -> bool:
        text = self.document(entry)
        if not text:
            return True
        ratio = sum(1 for ch in text if is_special(ch, self.special_characters)) / len(text)
        return ratio <= self.special_characters_max_cutoff


class LocalCheckEachSentenceIsLongEnoughFilter(BaseLocalFilterOperator):
    """Drop rows where more than ``short_sentence_ratio_max_cutoff`` of the sentences have at most
    ``short_sentence_max_cutoff`` characters (and rows with no sentence)."""

    def __init__(self, filter_column: str, short_sentence_ratio_max_cutoff: float = 0.6,
                 short_sentence_max_cutoff: int = 5, **kwargs: Any) -> None:
        super().__init__(filter_column, **kwargs)
        self.short_sentence_ratio_max_cutoff = short_sentence_ratio_max_cutoff
        self.short_sentence_max_cutoff = short_sentence_max_cutoff


    def __call__(self, entry: Any, *args: Any, **kwargs: Any) -> bool:
        sentences = [s.strip() for s in _SENTENCE_END.split(self.document(entry)) if s and s.strip()]
        if not sentences:
            return False
        short = sum(1 for s in sentences if len(s) <= self.short_sentence_max_cutoff)
        return short / len(sentences) <= self.short_sentence_ratio_max_cutoff


def _word_splitter(language: str, model_path: str | None) -> Callable[[str], list[str]]:
    """How words are cut: whitespace, or (Chinese) SentencePiece / jieba / characters."""
    if language != "ZH":
        return str.split
    if model_path:
        try:
            import sentencepiece
        except ImportError:
            raise ValidationError("sentence_piece_model_path", "needs the sentencepiece package "
                                  "(pip install sentencepiece)") from None
        model = sentencepiece.SentencePieceProcessor(model_file=model_path)
        return lambda text: [p.lstrip("▁") for p in model.encode(text, out_type=str)]
    try:
        import jieba
    except ImportError:
        return lambda text: [ch for ch in text if not ch.isspace()]
    return lambda text: [w for w in jieba.lcut(text) if w.strip()]


class _WordFilter(BaseLocalFilterOperator):
    def __init__(self, filter_column: str, sentence_piece_model_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(filter_column, **kwargs)
        self.sentence_piece_model_path = sentence_piece_model_path
        self._split = _word_splitter(self.text_language, sentence_piece_model_path)
        self._strip = "".join(default_special_characters())

    def words(self, entry: Any) -> list[str]:
        return [w for w in (word.strip(self._strip) for word in self._split(self.document(entry))) if w]


class LocalCheckWordNumberFilter(_WordFilter):
    """Keep rows with between ``number_words_min_cutoff`` and ``number_words_max_cutoff`` words."""

    def __init__(self, filter_column: str, sentence_piece_model_path: str | None = None,
                 number_words_min_cutoff: int | None = None, number_words_max_cutoff: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(filter_column, sentence_piece_model_path, **kwargs)
        self.number_words_min_cutoff = int(number_words_min_cutoff or _default(NUMBER_WORDS_MIN, self.text_language))
        self.number_words_max_cutoff = int(number_words_max_cutoff or _default(NUMBER_WORDS_MAX, self.text_language))


    def __call__(self, entry: Any, *args: Any, **kwargs: Any) -> bool:
        return self.number_words_min_cutoff <= len(self.words(entry)) <= self.number_words_max_cutoff


class LocalCheckWordRepetitionFilter(_WordFilter):
    """Drop rows whose word n-grams repeat too much."""

    def __init__(self, filter_column: str, sentence_piece_model_path: str | None = None,
                 word_repetition_length: int | None = None, word_repetition_max_cutoff: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(filter_column, sentence_piece_model_path, **kwargs)
        self.word_repetition_length = int(word_repetition_length or _default(WORD_REPETITION_LENGTH,
                                                                             self.text_language))
        self.word_repetition_max_cutoff = float(word_repetition_max_cutoff or _default(WORD_REPETITION_MAX_CUTOFF,
                                                                                     self.text_language))


    def __call__(self, entry: Any, *args: Any, **kwargs: Any) -> bool:
        words, n = self.words(entry), self.word_repetition_length
        ratio = repetition_ratio(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
        return ratio <= self.word_repetition_max_cutoff


class _WordListFilter(_WordFilter):
    """The share of words (and of their n-grams, ``words_augmentation_group_sizes``) in a word list."""

    def __init__(self, filter_column: str, sentence_piece_model_path: str | None = None,
                 words_augmentation_group_sizes: list[int] | None = None,
                 words_augmentation_join_char: str | None = None, **kwargs: Any) -> None:
        super().__init__(filter_column, sentence_piece_model_path, **kwargs)
        self.words_augmentation_group_sizes = list(words_augmentation_group_sizes or _default(
            WORDS_AUGMENTATION_GROUP_SIZES, self.text_language))
        self.words_augmentation_join_char = words_augmentation_join_char or _default(
            WORDS_AUGMENTATION_JOIN_CHAR, self.text_language)
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in self.words_augmentation_group_sizes):
            raise ValidationError("words_augmentation_group_sizes", "must be n-gram sizes >= 2, "
                                  f"got {self.words_augmentation_group_sizes!r}")
        self.listed_words: frozenset[str] = frozenset()


    def ratio(self, entry: Any) -> float:
        """Listed words and n-grams / words (at most 1; 0 for no word), as the official filters count."""
        words = [w.casefold() for w in self.words(entry)]
        if not words:
            return 0.0
        join = self.words_augmentation_join_char
        grams = [join.join(words[i:i + n]) for n in self.words_augmentation_group_sizes
                 for i in range(len(words) - n + 1)]
        return min(1.0, sum(1 for w in [*words, *grams] if w in self.listed_words) / len(words))


def _word_set(words: Iterable[str], field: str) -> frozenset[str]:
    if isinstance(words, str):
        raise ValidationError(field, "must be a list of words, not one string")
    listed = frozenset(str(w).strip().casefold() for w in words) - {""}
    if not listed:
        raise ValidationError(field, "is empty: give at least one word")
    return listed


class LocalCheckFlaggedWordsFilter(_WordListFilter):
    """Drop rows where flagged words (the user's list) take more than ``flagged_words_max_cutoff`` of
    the words. ``flagged_words``: the words; ``flagged_words_file``: a UTF-8 file, one a line."""

    def __init__(self, filter_column: str, sentence_piece_model_path: str | None = None,
                 words_augmentation_group_sizes: list[int] | None = None,
                 words_augmentation_join_char: str | None = None, flagged_words_max_cutoff: float | None = None,
                 *, flagged_words: Iterable[str] | None = None, flagged_words_file: str | Path | None = None,
                 **kwargs: Any) -> None:
        super().__init__(filter_column, sentence_piece_model_path, words_augmentation_group_sizes,
                         words_augmentation_join_char, **kwargs)
        self.flagged_words_max_cutoff = float(flagged_words_max_cutoff or _default(FLAGGED_WORDS_MAX_CUTOFF,
                                                                                 self.text_language))
        if (flagged_words is None) == (flagged_words_file is None):
            raise ValidationError("flagged_words", "give the words to flag: flagged_words=[...] or "
                                  "flagged_words_file= (one a line), one of them (qfnb ships no list)")
        if flagged_words_file is not None:
            path = Path(flagged_words_file)
            if not path.is_file():
                raise ValidationError("flagged_words_file", f"no file {str(path)!r}")
            flagged_words = path.read_text(encoding="utf-8").splitlines()
        assert flagged_words is not None
        self.listed_words = _word_set(flagged_words, "flagged_words_file" if flagged_words_file else "flagged_words")


    def __call__(self, entry: Any, *args: Any, **kwargs: Any) -> bool:
        return self.ratio(entry) <= self.flagged_words_max_cutoff


class LocalCheckStopwordsFilter(_WordListFilter):
    """Drop rows where stopwords take less than ``stopwords_max_cutoff`` of the words (the official name
    of what is a minimum: prose has its share of "the", "of", "的"; lists of keywords or code have not).
    ``stopwords``: the list to use instead of stopwords-iso's for ``text_language``."""

    def __init__(self, filter_column: str, sentence_piece_model_path: str | None = None,
                 words_augmentation_group_sizes: list[int] | None = None,
                 words_augmentation_join_char: str | None = None, stopwords_max_cutoff: float | None = None,
                 *, stopwords: Iterable[str] | None = None, **kwargs: Any) -> None:
        super().__init__(filter_column, sentence_piece_model_path, words_augmentation_group_sizes,
                         words_augmentation_join_char, **kwargs)
        self.stopwords_max_cutoff = float(stopwords_max_cutoff or _default(STOPWORDS_MIN_CUTOFF, self.text_language))
        self.listed_words = _word_set(stopwords, "stopwords") if stopwords is not None \
            else _iso_stopwords(self.text_language)


    def __call__(self, entry: Any, *args: Any, **kwargs: Any) -> bool:
        return self.ratio(entry) >= self.stopwords_max_cutoff


def _iso_stopwords(language: str) -> frozenset[str]:
    """stopwords-iso's list for ``language`` (an ISO 639-1 code, as ``text_language`` is written)."""
    try:
        import stopwordsiso
    except ImportError:
        raise ImportError("LocalCheckStopwordsFilter reads its stopword lists from the stopwordsiso package: "
                          "pip install 'qfnb[clean]' (or pass stopwords=[...])") from None
    words = stopwordsiso.stopwords(language.lower())
    if not words:
        raise ValidationError("text_language", f"stopwords-iso has no list for {language!r}; pass stopwords=[...]")
    return _word_set(words, "stopwords")
