"""A Dataset shows itself in a notebook: its HTML repr is a table of the first rows (long texts cut)."""

from __future__ import annotations

from qfnb.dataset import Dataset


def test_html_repr_is_a_table_of_the_first_rows() -> None:
    ds = Dataset.create_from_pyobj([{"prompt": f"p{i}", "llm_output": "word " * 50} for i in range(12)])
    html = ds._repr_html_()
    assert html.startswith("<div><b>Dataset</b> — 12 rows</div>") and "<table" in html
    assert "p9" in html and "p10" not in html  # ten rows shown
    assert "word " * 15 in html and "word " * 16 not in html and "wo...</td>" in html  # cut at 80 characters
