"""A Dataset's inference under a schema on the embedded platform's real model (Qwen2.5-Coder-0.5B
through llama.cpp): every answer is generated under the grammar, so every row validates and lands
in the schema's columns (marked ``real_model``)."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel

from qfnb.dataset import Dataset

pytestmark = pytest.mark.real_model


class Ticket(BaseModel):
    label: Literal["bug", "feature", "question"]
    summary: str


def test_dataset_inference_with_a_pydantic_schema_fills_its_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QIANFAN_AK", "QIANFAN_SK", "QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY", "QIANFAN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    reports = ["The app crashes when I press save.", "Please add a dark mode.", "How do I export my data?"]
    ds = Dataset.create_from_pyobj([{"prompt": f"Classify this ticket and summarise it in a few words: {r}"}
                                    for r in reports])
    out = ds.test_using_llm("Qwen2.5-Coder-0.5B-Instruct", response_format=Ticket, temperature=0.01,
                            max_output_tokens=48, concurrency=3).to_pandas()
    assert list(out.columns) == ["prompt", "llm_output", "request_latency", "label", "summary", "error"]
    assert out["error"].isna().all(), out["error"].tolist()
    assert set(out["label"]) <= {"bug", "feature", "question"}
    assert all(isinstance(s, str) for s in out["summary"])
    assert [Ticket.model_validate_json(text) for text in out["llm_output"]] == [
        Ticket(label=lab, summary=s) for lab, s in zip(out["label"], out["summary"], strict=True)]
