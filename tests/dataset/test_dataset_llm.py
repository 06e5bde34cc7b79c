"""Dataset.test_using_llm (batch inference) against the cloud double."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from qfnb._core.config import Config
from qfnb.dataset import Dataset
from qfnb.model import Service
from tests.fakes.console_cloud import ConsoleCloud


class Counter:
    def __init__(self) -> None:
        self.total: int | None = None
        self.results: list[tuple[int, bool]] = []
        self.closed = False
        self.lock = threading.Lock()

    def on_start(self, total: int | None) -> None:
        self.total = total

    def on_result(self, index: int, ok: bool) -> None:
        with self.lock:
            self.results.append((index, ok))

    def on_close(self) -> None:
        self.closed = True


def test_runs_every_prompt_and_reports_progress(cloud: ConsoleCloud, cfg: Config) -> None:
    ds = Dataset.create_from_pyobj([{"prompt": f"p{i}", "response": f"r{i}"} for i in range(6)])
    svc = Service(endpoint="my_ep", config=cfg)
    progress = Counter()
    cloud.fake.fail_next(1, "code:336003", path="/chat/my_ep")  # one row fails for good (not retryable)
    out = ds.test_using_llm(svc, concurrency=3, progress=progress)
    df = out.to_pandas()
    assert list(df["prompt"]) == [f"p{i}" for i in range(6)] and df["response"].iloc[0] == "r0"
    assert df["llm_output"].notna().sum() == 5
    assert df["error"].notna().sum() == 1 and "336003" in df["error"].dropna().iloc[0]
    assert (df["request_latency"] > 0).all()
    assert progress.total == 6 and progress.closed
    assert sorted(i for i, _ in progress.results) == list(range(6))
    assert sum(not ok for _, ok in progress.results) == 1
    assert len(cloud.fake.calls("/chat/my_ep")) == 6
    assert len(ds) == 6 and "llm_output" not in ds.columns  # the input is untouched


def test_bad_inputs_fail_before_sending(cloud: ConsoleCloud, cfg: Config) -> None:
    ds = Dataset.create_from_pyobj([{"prompt": "ok"}, {"prompt": ""}])
    with pytest.raises(ValueError, match="row 1"):
        ds.test_using_llm(Service(endpoint="e", config=cfg))
    with pytest.raises(ValueError, match="prompt_column"):
        ds.test_using_llm(Service(endpoint="e", config=cfg), prompt_column="question")
    with pytest.raises(ValueError, match="service_or_model"):
        ds.test_using_llm()
    assert cloud.fake.calls("/chat/") == []


def test_a_file_of_conversations_runs_a_conversation_at_a_time(cloud: ConsoleCloud, cfg: Config,
                                                                tmp_path: Path) -> None:
    """As the official SDK runs a packed table: ``input_chats`` (earlier answers as the assistant's),
    ``llm_output`` and ``expected_output`` (the last turn's answer); latency only when asked."""
    conv = [[{"prompt": "hi", "response": [["hello"]]}, {"prompt": "and?", "response": [["bye"]]}],
            [{"prompt": "q", "response": [["a"]]}]]
    path = tmp_path / "conv.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in conv))
    ds = Dataset.load(data_file=path)
    out = ds.test_using_llm(Service(endpoint="my_ep", config=cfg), concurrency=1)
    assert out.to_pylist() == [
        {"input_chats": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                         {"role": "user", "content": "and?"}],
         "llm_output": "echo[my_ep]: and?", "expected_output": "bye"},
        {"input_chats": [{"role": "user", "content": "q"}], "llm_output": "echo[my_ep]: q", "expected_output": "a"}]
    assert [c.json["messages"] for c in cloud.fake.calls("/chat/my_ep")] == [r["input_chats"] for r in out.to_pylist()]
    timed = Dataset.load(data_file=path).test_using_llm(Service(endpoint="my_ep", config=cfg), does_show_latency=True)
    assert (timed.to_pandas()["request_complete_latency"] > 0).all()
    assert "does_show_latency" not in cloud.fake.calls("/chat/my_ep")[-1].json  # not sent: an option of the run
