"""Which languages a text is written in, told from its scripts, and whether an embedder covers them.

Scripts tell Chinese (Han with no kana), Japanese (kana), Korean (Hangul), Thai, Arabic, Russian
(Cyrillic), Hindi (Devanagari), Hebrew and Greek apart; Latin-script text counts as covered when
the embedder covers any Latin-script language (English for an English-only one).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = ["language_of", "uncovered"]

_LATIN = frozenset({"en", "de", "es", "fr", "it", "nl", "pl", "pt", "tr"})
_SCRIPTS = (("HIRAGANA", "ja"), ("KATAKANA", "ja"), ("HANGUL", "ko"), ("CJK", "zh"), ("THAI", "th"),
            ("ARABIC", "ar"), ("CYRILLIC", "ru"), ("DEVANAGARI", "hi"), ("HEBREW", "he"), ("GREEK", "el"),
            ("LATIN", "latin"))


def language_of(text: str) -> str | None:
    """The language ``text``'s letters say (``"latin"`` for Latin script); None: no letters."""
    counts: Counter[str] = Counter()
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        counts.update(lang for script, lang in _SCRIPTS if name.startswith(script))
    if not counts:
        return None
    if counts["ja"]:
        return "ja"  # kana beside Han characters is Japanese
    return counts.most_common(1)[0][0]


def uncovered(texts: Iterable[str], languages: Sequence[str]) -> Counter[str]:
    """How many of ``texts`` are in each language the embedder (covering ``languages``) does not."""
    latin = bool(_LATIN & set(languages))
    return Counter(lang for lang in map(language_of, texts)
                   if lang is not None and lang not in languages and not (lang == "latin" and latin))
