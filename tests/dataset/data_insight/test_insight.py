"""The data insight (``Dataset.show_in_data_insight_mode``, ``DatasetInsight``): what is counted per
column, the official measures, the distributions, and the notebook view's HTML."""

from __future__ import annotations

import math

import pytest

from qfnb.dataset import Dataset
from qfnb.dataset.data_insight.insight import DataInsight, DatasetInsight, entry_measures
from qfnb.errors import ValidationError
from qfnb.notebook.data.insight import insight_html

ROWS = [{"prompt": "what is 2 plus 2", "response": "4", "score": 1.0},
        {"prompt": "what is 2 plus 2", "response": "4", "score": 1.0},  # a duplicate row
        {"prompt": "name a colour", "response": "", "score": 0.5},
        {"prompt": "哈哈哈哈哈哈哈哈哈哈哈哈哈", "response": "!!!", "score": 0.0}]


def test_the_columns_table_counts_empty_distinct_and_duplicates() -> None:
    insight = Dataset.create_from_pyobj(ROWS).show_in_data_insight_mode()
    assert isinstance(insight, DataInsight) and (insight.rows, insight.duplicate_rows) == (4, 1)
    table = insight.to_pandas()
    assert table.loc["prompt"].to_dict() == {"type": "text", "empty": 0, "distinct": 3, "duplicates": 1,
                                             "mean_length": (16 + 16 + 13 + 13) / 4}
    assert table.loc["response", "empty"] == 1 and table.loc["response", "distinct"] == 3
    assert table.loc["score", "type"] == "number" and math.isnan(table.loc["score", "mean_length"])
    assert list(insight.measures.index) == ["prompt", "response"]  # the text columns


def test_the_official_measures() -> None:
    assert entry_measures("") == {"content_length": 0.0, "special_characters_ratio": 0.0,
                                  "character_repetition_ratio": 0.0}
    spam = entry_measures("ha" * 20)
    # two distinct 10-grams (16 and 15 times): the sqrt(2) -> 1 most frequent take 16 of 31
    assert spam["content_length"] == 40 and spam["character_repetition_ratio"] == 16 / 31
    assert entry_measures("the quick brown fox jumps")["character_repetition_ratio"] == 0.0
    assert entry_measures("a1!b")["special_characters_ratio"] == 0.5  # the digit and the mark
    means = Dataset.create_from_pyobj(ROWS).show_in_data_insight_mode(["response"]).measures
    # "4", "4", "" and "!!!": digits and marks are special characters
    assert list(means.index) == ["response"] and means.loc["response", "special_characters_ratio"] == 0.75


def test_distributions_are_value_counts_or_histograms() -> None:
    rows = [{"text": "x" * n, "flag": n % 2 == 0, "n": n} for n in range(1, 41)] + [{"text": "", "flag": True, "n": 5}]
    by_column = {d.column: d for d in Dataset.create_from_pyobj(rows).show_in_data_insight_mode().distributions}
    text = by_column["text"]
    assert text.what == "length (characters)" and text.bars[0] == ("1–5", 5) and text.bars[-1] == ("(empty)", 1)
    assert sum(n for _, n in text.bars) == 41 and len(text.bars) == 9  # 8 bins of 5 lengths, then the empty one
    assert dict(by_column["flag"].bars) == {"True": 21, "False": 20}
    assert by_column["n"].what == "values" and sum(n for _, n in by_column["n"].bars) == 41


def test_dataset_insight_gives_a_row_per_entry_and_names_problems() -> None:
    ds = Dataset.create_from_pyobj(ROWS)
    per_row = DatasetInsight().insight(ds, "prompt").to_pandas()
    assert list(per_row.columns) == ["content_length", "special_characters_ratio", "character_repetition_ratio",
                                     "prompt"]
    assert per_row["content_length"].tolist() == [16, 16, 13, 13]
    with pytest.raises(ValidationError, match="name the text column"):
        DatasetInsight().insight(ds)
    with pytest.raises(ValidationError, match="no column 'body'"):
        ds.show_in_data_insight_mode(["body"])


def test_the_notebook_view_escapes_and_shows_every_part() -> None:
    rows = [{"prompt": "<script>alert(1)</script>", "n": 1}, {"prompt": "fine", "n": 2}]
    page = insight_html(Dataset.create_from_pyobj(rows).show_in_data_insight_mode())
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count('class="qfnb-dist"') == 2 and "2 rows, 2 columns, 0 duplicate rows" in page
    assert "var(--jp-content-font-color0" in page  # theme colours, not fixed ones
