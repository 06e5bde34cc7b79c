"""batch_do / abatch_do: order, concurrency bound, exactly-once, faults, files, resume, memory."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qfnb import ChatCompletion, Completion, Embedding, QfResponse
from qfnb._core.config import Config
from qfnb.errors import InvalidArgumentError, ValidationError
from qfnb.resources import read_results
from qfnb.resources.inference.batching.engine import DEFAULT_WORKERS, REMOTE_WORKERS, default_workers
from tests.fakes.cloud import FakeQianfan
from tests.fakes.fixtures import fake, fake_server, make_config

__all__ = ["fake", "fake_server", "make_config"]

MakeConfig = Callable[..., Config]


def _prompts(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"q{i}"}] for i in range(n)]


def test_batch_do_seed_api(fake: FakeQianfan, make_config: MakeConfig) -> None:
    task = Completion(config=make_config("oauth")).batch_do(["你好", "很高兴认识你", "三"], worker_num=2)
    assert task.total_count() == task.task_count() == len(task) == 3
    results = [f.result() for f in task]
    assert [r.result for r in results] == ["echo[ernie-lite-8k]: 你好", "echo[ernie-lite-8k]: 很高兴认识你",
                                           "echo[ernie-lite-8k]: 三"]
    task.wait()
    assert task.finished_count() == 3 and task.results() == results and task.done()
    assert len(fake.calls("/chat/")) == 3  # the official SDK sends the first one twice


async def test_abatch_do_order_exceptions_as_values(fake: FakeQianfan, make_config: MakeConfig) -> None:
    fake.latency = 0.002
    chat = ChatCompletion(config=make_config("oauth", llm_api_retry_count=1))
    inputs: list[Any] = _prompts(30)
    inputs[7] = [{"role": "assistant", "content": "bad order"}]  # invalid: becomes a value, nothing sent
    fake.fail_next(1, "code:336003", path="/chat/")
    results = await chat.abatch_do(inputs, worker_num=5)
    assert len(results) == 30
    assert isinstance(results[7], ValidationError)
    errors = [r for r in results if type(r) is InvalidArgumentError]  # the platform's; ValidationError is one too
    assert len(errors) == 1
    for i, r in enumerate(results):
        if isinstance(r, QfResponse):
            assert r.result == f"echo[ernie-lite-8k]: q{i}"
    assert len(fake.calls("/chat/")) == 29


def _track_in_flight(fake: FakeQianfan, seconds: float) -> list[int]:
    """The chat calls in flight and their peak (``[now, peak]``), each held ``seconds`` by the fake."""
    in_flight = [0, 0]
    original = fake._inference

    async def tracking(req: Any) -> Any:
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        await asyncio.sleep(seconds)
        try:
            return await original(req)
        finally:
            in_flight[0] -= 1

    fake.route("POST", "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/*")(tracking)
    return in_flight


async def test_worker_num_bounds_concurrency(fake: FakeQianfan, make_config: MakeConfig) -> None:
    in_flight = _track_in_flight(fake, 0.01)
    await ChatCompletion(config=make_config("oauth")).abatch_do(_prompts(40), worker_num=4)
    assert in_flight[1] == 4


async def test_default_concurrency_off_the_embedded_platform(fake: FakeQianfan, make_config: MakeConfig) -> None:
    """Without worker_num a cloud batch keeps REMOTE_WORKERS calls in flight (calls wait on the network,
    not on an engine's few slots); the embedded platform's default stays DEFAULT_WORKERS; neither more
    than the inputs."""
    in_flight = _track_in_flight(fake, 0.05)
    results = await ChatCompletion(config=make_config("oauth")).abatch_do(_prompts(REMOTE_WORKERS + 100))
    assert all(isinstance(r, QfResponse) for r in results)
    assert in_flight[1] == REMOTE_WORKERS
    assert (default_workers(True, None), default_workers(False, None)) == (DEFAULT_WORKERS, REMOTE_WORKERS)
    assert (default_workers(True, 3), default_workers(False, 0)) == (3, 1)


def test_batch_with_20pct_transient_faults_loses_nothing(fake: FakeQianfan, make_config: MakeConfig) -> None:
    fake.fault_rate(0.2, ("500", "429", "drop", "code:336100", "code:18"), seed=3)
    chat = ChatCompletion(config=make_config("oauth", llm_api_retry_count=8))
    results = chat.batch_do(_prompts(200), worker_num=20).results()
    assert [r.result for r in results] == [f"echo[ernie-lite-8k]: q{i}" for i in range(200)]
    sent = [c.json["messages"][0]["content"] for c in fake.calls("/chat/")]
    assert len(sent) > 200  # faults were injected and retried


def test_batch_never_sends_twice(fake: FakeQianfan, make_config: MakeConfig) -> None:
    chat = ChatCompletion(config=make_config("oauth"))
    chat.batch_do(_prompts(100), worker_num=10).wait()
    sent = [c.json["messages"][0]["content"] for c in fake.calls("/chat/")]
    assert sorted(sent) == sorted(f"q{i}" for i in range(100))


def test_body_list_and_common_kwargs(fake: FakeQianfan, make_config: MakeConfig) -> None:
    chat = ChatCompletion(config=make_config("oauth"))
    out = chat.batch_do(body_list=[{"messages": _prompts(1)[0], "temperature": 0.3},
                                   {"messages": _prompts(1)[0], "model": "ERNIE-Speed-8K"}], system="s").results()
    assert out[1].result.startswith("echo[ernie_speed]")
    bodies = sorted((c.json for c in fake.calls("/chat/")), key=lambda b: "temperature" in b)
    assert bodies[1]["temperature"] == 0.3 and all(b["system"] == "s" for b in bodies)
    with pytest.raises(ValidationError, match="stream"):
        chat.batch_do(_prompts(2), stream=True)


async def test_embedding_batch_and_official_keyword_names(fake: FakeQianfan, make_config: MakeConfig) -> None:
    res = await Embedding(config=make_config("oauth")).abatch_do([["a"], ["bb"], ["ccc"]], worker_num=2)
    assert [r["data"][0]["embedding"][0] for r in res] == [1.0, 2.0, 3.0]
    res2 = await Embedding(config=make_config("oauth")).abatch_do(texts_list=[["dddd"]])
    assert res2[0]["data"][0]["embedding"][0] == 4.0
    chat = ChatCompletion(config=make_config("oauth"))
    assert chat.batch_do(messages_list=_prompts(2)).results()[1].result.endswith("q1")
    assert (await Completion(config=make_config("oauth")).abatch_do(prompt_list=["p"]))[0].result.endswith("p")


def test_output_file_and_resume(fake: FakeQianfan, make_config: MakeConfig, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    chat = ChatCompletion(config=make_config("oauth", llm_api_retry_count=1))
    fake.fail_next(3, "code:336003", path="/chat/")
    task = chat.batch_do(_prompts(50), worker_num=5, output_file=out)
    task.wait()
    assert task.finished_count() == 50
    records = dict(read_results(out))
    failed = sorted(i for i, r in records.items() if not r["ok"])
    assert len(records) == 50 and len(failed) == 3
    assert records[failed[0]]["error"]["error_code"] == 336003
    n_sent = len(fake.calls("/chat/"))
    # a crash-torn last line must not break resume
    with out.open("a") as fh:
        fh.write('{"index": 49, "ok": tr')
    task2 = chat.batch_do(_prompts(50), worker_num=5, output_file=out)
    task2.wait()
    assert len(fake.calls("/chat/")) - n_sent == 3  # only the failed ones were re-sent
    final = task2.results()  # the same types as without a file: responses, not records
    assert all(isinstance(r, QfResponse) for r in final)
    assert [r["result"] for r in final] == [f"echo[ernie-lite-8k]: q{i}" for i in range(50)]
    assert [f.result()["result"] for f in task2] == [r["result"] for r in final]
    assert len(task2.get_future_list()) == 50


def test_output_file_memory_is_bounded(fake: FakeQianfan, make_config: MakeConfig, tmp_path: Path) -> None:
    """Peak memory of a file-backed batch must not grow with the number of inputs."""
    fake.capture = False
    chat = ChatCompletion(config=make_config("oauth"))
    chat.do(messages=_prompts(1)[0])  # warm up token, pool, model resolution

    def peak(n: int) -> int:
        prompts = ([{"role": "user", "content": f"q{i}"}] for i in range(n))  # lazy input, too
        tracemalloc.start()
        chat.batch_do(prompts, worker_num=20, output_file=tmp_path / f"out{n}.jsonl").wait()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        lines = (tmp_path / f"out{n}.jsonl").read_text().count("\n")
        assert lines == n
        return top

    small, large = peak(300), peak(2400)
    assert large < small * 2 + 2_000_000, (small, large)


def test_lazy_input_without_len_in_memory(fake: FakeQianfan, make_config: MakeConfig) -> None:
    task = Completion(config=make_config("oauth")).batch_do(p for p in ["a", "b"])
    assert [f.result().result for f in task] == ["echo[ernie-lite-8k]: a", "echo[ernie-lite-8k]: b"]


def test_progress_callbacks(fake: FakeQianfan, make_config: MakeConfig) -> None:
    events: list[Any] = []

    class Recorder:
        def on_start(self, total: int | None) -> None:
            events.append(("start", total))

        def on_result(self, index: int, ok: bool) -> None:
            events.append(("result", ok))

        def on_close(self) -> None:
            events.append(("close",))

    Completion(config=make_config("oauth")).batch_do(["a", "b", "c"], progress=Recorder()).wait()
    assert events[0] == ("start", 3) and events[-1] == ("close",) and events.count(("result", True)) == 3


def test_result_files_are_jsonl(tmp_path: Path, fake: FakeQianfan, make_config: MakeConfig) -> None:
    out = tmp_path / "r.jsonl"
    asyncio.run(Completion(config=make_config("oauth")).abatch_do(["x"], output_file=out))
    rec = json.loads(out.read_text())
    assert rec["index"] == 0 and rec["ok"] and rec["result"]["result"] == "echo[ernie-lite-8k]: x"


def test_an_item_failing_after_the_others_ended_is_retried_by_its_own_worker() -> None:
    """Once the inputs are all taken, idle workers end; a call that fails later is queued again and
    retried by the worker that made it (nothing is lost, each input answered once)."""
    from qfnb._core.http.retry import BatchVerdict
    from qfnb.resources.inference.batching.engine import ListSink, run_batch

    tries: dict[int, int] = {}

    async def call(item: int) -> int:
        tries[item] = tries.get(item, 0) + 1
        if item == 9 and tries[item] < 3:
            await asyncio.sleep(0.02)  # ends after every other call, twice
            raise ConnectionError("transient")
        return item * 10

    sink = ListSink(10)
    again = BatchVerdict(True)
    asyncio.run(run_batch(call, range(10), sink, worker_num=10, classify=lambda exc, attempt, health: again))
    assert sink.results == [i * 10 for i in range(10)]
    assert tries == {**dict.fromkeys(range(9), 1), 9: 3}
