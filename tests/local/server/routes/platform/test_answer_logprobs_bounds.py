"""Issue 92 §3: ``answer_logprobs`` is bounded per call and stops when its client leaves. A call whose answers
(each token an engine call) or conversations (rendered once per answer) pass the caps is a 400 naming the
field before any engine call; a client that leaves mid-call stops the scoring within a scored answer (the
probe counted 232 engine calls for nobody in 3 minutes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_doubles import FakeChat, FakeRegistry

from qfnb.local.domain.training import answer_bounds
from tests.fakes.local_platform import ServedPlatform, served_platform


class SlowScorer(FakeChat):
    """Scores an answer in 0.1 s, counting each scored answer."""

    scored = 0
    lock = threading.Lock()

    def answer_logprob(self, messages: list[dict[str, str]], answer: str) -> tuple[float, int]:
        time.sleep(0.1)
        with SlowScorer.lock:
            SlowScorer.scored += 1
        return -1.0, 1


class SlowRegistry(FakeRegistry):
    def make_chat(self, tag: str) -> FakeChat:
        return SlowScorer(tag)


@pytest.fixture()
def scoring(tmp_path: Path) -> Iterator[ServedPlatform]:
    with served_platform(tmp_path / "data", registry=SlowRegistry()) as served:
        yield served


def _post(served: ServedPlatform, body: dict[str, Any], timeout: float = 30.0) -> httpx.Response:
    return httpx.post(served.url + "/v1/fine_tuning/answer_logprobs", json=body, timeout=timeout,
                      headers={"Authorization": f"Bearer {served.bearer_token()}"})


def _items(n: int, answer: str = "fine", prompt: str = "hi") -> list[dict[str, Any]]:
    return [{"messages": [{"role": "user", "content": prompt}], "answers": [answer, answer]} for _ in range(n)]


@pytest.mark.parametrize(("items", "param", "says"), [
    (_items(1, answer="a" * (answer_bounds.MAX_ANSWER_CHARS + 1)), "items[0].answers[0]", "is 8001 characters"),
    (_items(4, answer="a" * 2500), "items", "the answers hold 20000 characters in all; one call scores at most 16000"),
    (_items(8, prompt="p" * 30_000), "items", "the conversations, once per answer, hold 480000 characters"),
], ids=["one-answer", "all-answers", "conversations"])
def test_a_call_past_the_caps_is_a_400_before_any_engine_call(scoring: ServedPlatform, items: list[dict[str, Any]],
                                                               param: str, says: str) -> None:
    before = SlowScorer.scored
    resp = _post(scoring, {"model": "tiny-chat", "items": items})
    assert resp.status_code == 400, resp.text[:300]
    error = resp.json()["error"]
    assert error["param"] == param and says in error["message"], error
    assert SlowScorer.scored == before


def test_a_client_that_leaves_stops_the_scoring(scoring: ServedPlatform) -> None:
    SlowScorer.scored = 0
    with pytest.raises(httpx.ReadTimeout):
        _post(scoring, {"model": "tiny-chat", "items": _items(64)}, timeout=0.6)  # 128 answers: ~13 s of work
    time.sleep(1.0)  # the server hears the disconnect within a poll (0.25 s) and cancels
    after_leaving = SlowScorer.scored
    time.sleep(1.5)
    assert SlowScorer.scored <= after_leaving + 1, (after_leaving, SlowScorer.scored)  # one in flight at most
    assert SlowScorer.scored < 40


def test_a_call_within_the_caps_is_scored_whole(scoring: ServedPlatform) -> None:
    resp = _post(scoring, {"model": "tiny-chat", "items": _items(2)})
    assert resp.status_code == 200, resp.text[:300]
    assert [d["logprobs"] for d in resp.json()["data"]] == [[-1.0, -1.0], [-1.0, -1.0]]



def _route_samples(served: ServedPlatform, name: str) -> dict[str, float]:
    """``/metrics``' samples ``name`` of the scoring route, by their labels' text."""
    text = httpx.get(served.url + "/metrics", headers={"Authorization": f"Bearer {served.bearer_token()}"}).text
    return {line.split("{", 1)[1].rsplit("}", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(name + "{") and 'route="/fine_tuning/answer_logprobs"' in line}


def test_a_call_is_counted_in_metrics_with_its_usage(scoring: ServedPlatform) -> None:
    """Its tokens are the answers' tokens scored (each answer the double scores is one); a call whose client
    left is counted as a call (its status 499), its tokens not, as every model call's is."""
    done = _post(scoring, {"model": "tiny-chat", "items": _items(2)})
    assert done.status_code == 200 and done.json()["usage"] == {"prompt_tokens": 4, "completion_tokens": 0,
                                                                "total_tokens": 4}
    assert sum(_route_samples(scoring, "qfnb_prompt_tokens_total").values()) == 4
    with pytest.raises(httpx.ReadTimeout):
        _post(scoring, {"model": "tiny-chat", "items": _items(64)}, timeout=0.6)
    time.sleep(1.5)  # the server heard the client leave
    calls = _route_samples(scoring, "qfnb_requests_total")
    assert sorted((labels.split('status="')[1][:3], n) for labels, n in calls.items()) == [("2xx", 1.0), ("4xx", 1.0)]
    assert sum(_route_samples(scoring, "qfnb_prompt_tokens_total").values()) == 4
