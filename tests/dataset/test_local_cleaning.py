"""The local cleaning filters (the official names, parameters and per-language defaults), the
overview and statistics views, and Hugging Face / pyarrow loading (the ``hf`` extra)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from qfnb.dataset import Dataset
from qfnb.dataset.local_data_operators import (
    LocalCheckCharacterRepetitionFilter,
    LocalCheckEachSentenceIsLongEnoughFilter,
    LocalCheckFlaggedWordsFilter,
    LocalCheckSpecialCharactersFilter,
    LocalCheckStopwordsFilter,
    LocalCheckWordNumberFilter,
    LocalCheckWordRepetitionFilter,
)
from qfnb.dataset.summarization_method import MaxMethod, QuantileMethod
from qfnb.errors import ValidationError

CLEAN = "The quick brown fox jumps over the lazy dog while the farmer watches from the old wooden gate."
REPEATED = "buy now " * 30


def test_character_repetition_keeps_prose_and_drops_spam() -> None:
    check = LocalCheckCharacterRepetitionFilter("text", text_language="EN")
    assert (check.character_repetition_length, check.character_repetition_max_cutoff) == (10, 0.106)
    assert check({"text": CLEAN}) and not check({"text": REPEATED})
    zh = LocalCheckCharacterRepetitionFilter("text")  # ZH by default, as officially
    assert (zh.character_repetition_length, zh.character_repetition_max_cutoff) == (3, 0.2)
    assert zh("今天天气很好，我们去公园散步吧。") and not zh("哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈")


def test_special_characters_share() -> None:
    check = LocalCheckSpecialCharactersFilter("text", text_language="EN")
    assert check.special_characters_max_cutoff == 0.40
    assert check(CLEAN) and not check("$$$ 100%!!! ### 2024-01-01 @@@ *** !!!")
    assert not LocalCheckSpecialCharactersFilter("text", special_characters_max_cutoff=0.05)("🙂🙂🙂 ok")


def test_sentence_length() -> None:
    check = LocalCheckEachSentenceIsLongEnoughFilter("text", short_sentence_max_cutoff=5)
    assert check("这是一个足够长的句子。这也是一个足够长的句子。")
    assert not check("好。是。对。嗯。这是一个足够长的句子。") and not check("")


def test_word_number_and_repetition() -> None:
    words = LocalCheckWordNumberFilter("text", text_language="EN")
    assert (words.number_words_min_cutoff, words.number_words_max_cutoff) == (20, 100000)
    assert not words(CLEAN)  # 18 words < 20
    assert LocalCheckWordNumberFilter("text", text_language="EN", number_words_min_cutoff=5)(CLEAN)
    rep = LocalCheckWordRepetitionFilter("text", text_language="EN", word_repetition_length=2)
    assert rep(CLEAN) and not rep(REPEATED)
    assert LocalCheckWordNumberFilter("text", number_words_min_cutoff=3)("我们今天去公园散步")  # ZH words


def test_flagged_words_take_the_users_list_or_file(tmp_path: Path) -> None:
    check = LocalCheckFlaggedWordsFilter("text", text_language="EN", flagged_words=["casino", "Jackpot"])
    assert check.flagged_words_max_cutoff == 0.01 and check.words_augmentation_group_sizes == []
    assert check({"text": CLEAN}) and not check({"text": CLEAN + " Win the JACKPOT!"})  # 1 word in 21, any case
    assert LocalCheckFlaggedWordsFilter("text", text_language="EN", flagged_words_max_cutoff=0.1,
                                        flagged_words=["casino"])(CLEAN + " casino")  # 1/19 <= 0.1
    listed = tmp_path / "flagged.txt"
    listed.write_text("赌博\n\n博彩\n", encoding="utf-8")
    zh = LocalCheckFlaggedWordsFilter("text", flagged_words_file=listed)  # ZH: 2-grams looked up too
    assert (zh.flagged_words_max_cutoff, zh.words_augmentation_group_sizes, zh.words_augmentation_join_char) \
        == (0.001, [2], "")
    assert zh("今天天气很好，我们去公园散步吧。") and not zh("这个网站提供网上赌博服务")
    with pytest.raises(ValidationError, match="flagged_words"):
        LocalCheckFlaggedWordsFilter("text")  # no list: qfnb ships none
    with pytest.raises(ValidationError, match="flagged_words"):
        LocalCheckFlaggedWordsFilter("text", flagged_words=["a"], flagged_words_file=listed)
    with pytest.raises(ValidationError, match="no file"):
        LocalCheckFlaggedWordsFilter("text", flagged_words_file=tmp_path / "missing.txt")
    with pytest.raises(ValidationError, match="not one string"):
        LocalCheckFlaggedWordsFilter("text", flagged_words="casino")
    with pytest.raises(ValidationError, match="group_sizes"):
        LocalCheckFlaggedWordsFilter("text", flagged_words=["a"], words_augmentation_group_sizes=[1])


def test_stopwords_keep_prose_and_drop_keyword_lists() -> None:
    pytest.importorskip("stopwordsiso", reason="the clean extra (stopwordsiso) is not installed")
    check = LocalCheckStopwordsFilter("text", text_language="EN")
    assert check.stopwords_max_cutoff == 0.30 and "listed_words=" in repr(check)
    assert check({"text": CLEAN})  # the, over, while, from... "The" counts too
    assert not check({"text": "Python pandas numpy dataframe tutorial install guide 2024 download free"})
    zh = LocalCheckStopwordsFilter("text")
    assert zh.stopwords_max_cutoff == 0.1691
    assert zh("我们今天在公园里散步，因为天气非常好，而且我们都很高兴。") and not zh("深度学习框架模型训练推理部署")
    with pytest.raises(ValidationError, match="no list for 'XX'"):
        LocalCheckStopwordsFilter("text", text_language="XX")


def test_stopwords_take_a_list_and_name_the_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "stopwordsiso", None)  # not installed
    with pytest.raises(ImportError, match=r"qfnb\[clean\]"):
        LocalCheckStopwordsFilter("text", text_language="EN")
    own = LocalCheckStopwordsFilter("text", text_language="EN", stopwords=["the", "over"], stopwords_max_cutoff=0.2)
    assert own(CLEAN) and not own("quick brown fox jumps the lazy dog")  # 5/18 >= 0.2; 1/7 < 0.2
    ds = Dataset.create_from_pyobj([{"text": CLEAN}, {"text": "fox dog cat"}])
    assert [r["text"] for r in ds.filter(own, should_create_new_obj=True).list()] == [CLEAN]


def test_filters_run_through_dataset_filter_and_name_problems() -> None:
    ds = Dataset.create_from_pyobj([{"text": CLEAN}, {"text": REPEATED}, {"text": "ok"}])
    kept = ds.filter(LocalCheckCharacterRepetitionFilter("text", text_language="EN"), should_create_new_obj=True)
    assert [r["text"] for r in kept.list()] == [CLEAN, "ok"]
    with pytest.raises(ValidationError, match="no column 'body'"):
        LocalCheckSpecialCharactersFilter("body")({"text": "x"})
    with pytest.raises(ValidationError, match="unpack"):
        LocalCheckSpecialCharactersFilter("text")([{"text": "x"}])
    assert "character_repetition_length=10" in repr(LocalCheckCharacterRepetitionFilter("text", text_language="EN"))


def test_overview_and_statistics_are_frames() -> None:
    ds = Dataset.create_from_pyobj([{"prompt": "a", "score": 1.0, "n": 1}, {"prompt": "a", "score": 3.0, "n": 2},
                                    {"prompt": "", "score": 5.0, "n": 3}, {"prompt": "b", "score": 7.0, "n": 4}])
    overview = ds.show_overview_info()
    assert list(overview.index) == ["repetition_ratio", "null_ratio"]
    assert overview.loc["repetition_ratio", "prompt"] == 0.25 and overview.loc["null_ratio", "prompt"] == 0.25
    assert overview.loc["repetition_ratio", "score"] == 0.0
    stats = ds.show_processed_statistics()
    assert list(stats.index) == ["mean", "min", "max", "80.0_quantile", "90.0_quantile"]
    assert list(stats.columns) == ["score", "n"] and stats.loc["mean", "score"] == 4.0
    assert math.isclose(stats.loc["90.0_quantile", "score"], 6.4)
    custom = ds.show_processed_statistics([MaxMethod(), QuantileMethod(0.5)])
    assert custom.to_dict() == {"score": {"max": 7.0, "50.0_quantile": 4.0}, "n": {"max": 4.0, "50.0_quantile": 2.5}}


def test_huggingface_and_pyarrow_loading() -> None:
    datasets = pytest.importorskip("datasets", reason="the hf extra (datasets, pyarrow) is not installed")
    pa = pytest.importorskip("pyarrow", reason="the hf extra (datasets, pyarrow) is not installed")
    from datasets.table import InMemoryTable

    def hf(columns: dict[str, list[str]], name: str) -> object:
        # a fingerprint given: datasets does not hash the table with dill (which fails on some
        # pyarrow/dill pairs, whatever the data)
        return datasets.Dataset(InMemoryTable(pa.table(columns)), fingerprint=name)

    rows = {"prompt": ["q1", "q2"], "response": ["a1", "a2"]}
    ds = Dataset.load(huggingface_dataset=hf(rows, "one"))
    assert ds.list() == [{"prompt": "q1", "response": "a1"}, {"prompt": "q2", "response": "a2"}]
    both = Dataset.load(huggingface_dataset=datasets.DatasetDict(
        train=hf(rows, "train"), test=hf({"prompt": ["q3"], "response": ["a3"]}, "test")))
    assert [r["prompt"] for r in both.list()] == ["q1", "q2", "q3"]
    table = pa.concat_tables([pa.table(rows), pa.table(rows)])
    assert len(Dataset.create_from_pyarrow_table(table).list()) == 4


def test_the_wrong_objects_are_named() -> None:
    with pytest.raises(ValidationError, match="huggingface_dataset"):
        Dataset.load(huggingface_dataset=pd.DataFrame({"a": [1]}).values)
    with pytest.raises(ValidationError, match=r"pyarrow\.Table"):
        Dataset.create_from_pyarrow_table({"a": [1]})
    with pytest.raises(ValidationError, match="exactly one"):
        Dataset.load(huggingface_dataset=object(), data_file="x.jsonl")
