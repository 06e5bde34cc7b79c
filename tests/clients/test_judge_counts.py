"""The same judge calls read three ways (issue 71: 45 in ``/metrics``, 44 in ``qfnb status``, 39 in the
ledger for 40 judged items). Reproduced: an evaluation judged by the platform's model, where some judge
calls fail once (the engine went away under them: the client retries them), one fails for good (a
refusal, not retried), and the evaluation is then run twice again from the response cache (a
replay). Each count is then what ``docs/observability.md`` says it is, and the answered calls agree
everywhere: the ledger's calls, ``qfnb_requests_total{status="2xx"}``, the trace table's answered
spans and ``qfnb status``' ``answeredCalls``."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from platform_doubles import FakeChat, FakeRegistry

from qfnb._core.record import cache as cache_mod
from qfnb._core.record import ledger as ledger_mod
from qfnb._core.record.budget import clear_budget
from qfnb._core.record.traces import read_spans
from qfnb.evaluation import EvaluationManager
from qfnb.evaluation.evaluators.judge import LocalJudgeEvaluator
from qfnb.local.engines.ask import Sampling
from qfnb.local.engines.base import Delta, PromptTooLong
from qfnb.local.engines.call_state import calls
from qfnb.local.engines.llama.process.server import EngineUnavailable
from qfnb.local.server.routes.daemon.control import status
from qfnb.protocol.platform.daemon import DaemonStatus
from qfnb.resources import ChatCompletion
from tests.clients.test_metrics_ledger import scrape
from tests.fakes.local_platform import ServedPlatform, served_platform

ITEMS = 10
FAIL_ONCE = {"q1", "q2", "q3"}  # each judge call's first try fails (a 503): retried, answered at the second
REFUSED = "q4"  # the engine refuses it (a 400, not retried): the item has no score


class FlakyJudge(FakeChat):
    """A judge engine whose calls about some questions fail; ``tries`` counts every call it saw."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tries: Counter[str] = Counter()
        self._lock = threading.Lock()

    def chat(self, messages: list[dict[str, str]], *, sampling: Sampling) -> Iterator[Delta]:  # type: ignore[override]
        asked = messages[-1]["content"]
        question = next((f"q{i}" for i in range(ITEMS) if f"\nq{i}\n" in asked), "?")
        with self._lock:
            self.tries[question] += 1
            tries = self.tries[question]
        if question == REFUSED:
            raise PromptTooLong("the prompt does not fit the judge's context")
        if question in FAIL_ONCE and tries == 1:
            raise EngineUnavailable("the engine was restarted under the request")
        return super().chat(messages, sampling=sampling)


class JudgeRegistry(FakeRegistry):
    def make_chat(self, tag: str) -> FakeChat:
        return FlakyJudge(tag) if tag == "other-chat" else FakeChat(tag)


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path / "data"))  # the notebook's and the platform's, as by default
    cache_mod._default.clear()
    ledger_mod._default.clear()
    clear_budget()
    with served_platform(tmp_path / "data", registry=JudgeRegistry()) as platform:
        platform.as_default_backend(monkeypatch)  # the embedded platform, found as qfnb finds its daemon
        monkeypatch.setenv("QIANFAN_LLM_API_RETRY_BACKOFF_FACTOR", "0")
        monkeypatch.setenv("QIANFAN_LLM_API_RETRY_JITTER", "0")
        yield platform


def _judged(served: ServedPlatform) -> Any:
    judge = LocalJudgeEvaluator(ChatCompletion(model="other-chat"), concurrency=4)
    dataset = [{"input": f"q{i}", "output": f"answer {i}"} for i in range(ITEMS)]
    return EvaluationManager(local_evaluators=[judge]).eval(ChatCompletion(model="tiny-chat"), dataset)


def _status(served: ServedPlatform) -> DaemonStatus:
    """What ``qfnb status`` reads, through the wire form it is sent in."""
    return DaemonStatus.from_dict(status(served.app.state.platform, 0.0, "test").to_dict())


def test_the_judge_calls_counted_three_ways_agree_on_the_answered_ones(served: ServedPlatform,
                                                                         tmp_path: Path) -> None:
    admitted_before = calls.snapshot().get("other-chat", 0)  # the count is the process's: other tests add to it
    previous = cache_mod.set_process_mode("on")  # %qfcache on: a notebook run again replays its calls
    try:
        result = _judged(served)
        _judged(served)  # the notebook run again, twice: the answers and the judge's replies from the cache
        _judged(served)
    finally:
        cache_mod.set_process_mode(previous)
    judgements = list(result.samples["judge_score_judgement"])
    assert [i for i, j in enumerate(judgements) if str(j).startswith("<judge failed")] == [4]  # q4: no score
    engine = served.registry.engines["other-chat"]
    assert isinstance(engine, FlakyJudge)
    # the first run asked each item once, the three flaky ones twice; each replay asked only the
    # refused item again (a failed call is not kept in the cache)
    assert engine.tries == {f"q{i}": 3 if f"q{i}" == REFUSED else 2 if f"q{i}" in FAIL_ONCE else 1
                            for i in range(ITEMS)}
    tries, answered = sum(engine.tries.values()), ITEMS - 1

    ledger = ledger_mod.default_ledger()
    ledger.flush()
    judge_rows = [r for r in ledger.rows() if r.model.lower() == "other-chat"]
    assert len([r for r in judge_rows if not r.cache_hit]) == answered  # the ledger: answered calls
    assert sum(r.retries for r in judge_rows) == len(FAIL_ONCE)  # a retried call is one row, its retries beside
    assert len([r for r in judge_rows if r.cache_hit]) == 2 * answered  # replays: marked, no call, no tokens

    found = scrape(served.url, served.bearer_token())
    by_status = Counter({dict(k)["status"]: int(v) for k, v in found["qfnb_requests_total"].items()
                         if dict(k)["model"].lower() == "other-chat"})
    assert by_status == {"2xx": answered, "5xx": len(FAIL_ONCE), "4xx": 3}  # every request, by status class
    usage = {dict(k)["target"]: int(v) for k, v in found["qfnb_usage_calls_total"].items()
             if dict(k)["model"].lower() == "other-chat"}
    assert usage == {"local": answered}  # the ledger's, by target: the replays add nothing

    def platform_spans() -> Counter[bool]:  # the platform's (not the items'), answered or not
        return Counter(s.status < 400 for s in read_spans(tmp_path / "data", last=10_000)
                       if s.model.lower() == "other-chat" and s.operation == "chat")

    # the platform's span sink writes in the background: under load the last span lands a moment later
    deadline = time.monotonic() + 10
    while platform_spans() != {True: answered, False: tries - answered} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert platform_spans() == {True: answered, False: tries - answered}  # %qftrace

    status = _status(served)
    assert status.model_calls["other-chat"] - admitted_before == tries  # each try an engine admitted
    assert {m.lower(): n for m, n in status.answered_calls.items()}.get("other-chat") == answered
