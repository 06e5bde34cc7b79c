"""The batch runner's behaviour: stop keeps finished rows, malformed lines become error rows,
a crashed or busy engine is retried, and interactive chat keeps its share of the slots."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from batch_doubles import busy, crash, paced_platform
from batch_helpers import console, ended, get_object, put_object, wait_task
from platform_helpers import CREDS

from qfnb.local.domain.batch import tasks as batch
from qfnb.local.engines.llama.process.server import EngineUnavailable
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX
from tests.fakes.local_platform import ServedPlatform

#: the tests whose outcome depends on timing (a stop mid-job, pre-emption) run alone (scripts/test.sh);
#: the others check outcomes only and run beside other tests
timing = pytest.mark.serial


@pytest.fixture()
def paced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    with paced_platform(tmp_path / "data", monkeypatch, delay="0.02") as served:
        yield served


def _create(base: str, uri: str, name: str = "t") -> str:
    made = console(base, "CreateBatchInferenceTask", {"name": name, "inputBosUri": uri, "outputBosUri": "bos:/out/",
                                                      "endpoint": "tiny-chat", "inferenceParams": {}})
    return str(made["taskId"])


def _engine(served: ServedPlatform):  # type: ignore[no-untyped-def]
    return served.registry.chat("tiny-chat")


@timing
def test_stop_keeps_the_finished_rows(paced: ServedPlatform) -> None:
    uri = put_object(paced.url, "in", "many.jsonl", [{"id": f"k{i}", "query": f"q{i}"} for i in range(200)])
    tid = _create(paced.url, uri)
    wait_task(paced.url, tid, lambda v: v["succeededCount"] >= 6)
    assert console(paced.url, "StopBatchInferenceTask", {"taskId": tid}) is True
    view = wait_task(paced.url, tid, ended)
    assert view["runStatus"] == "Stopped"
    platform = paced.app.state.platform
    batch.wait(platform, platform.store.get("batches", tid)["id"], 30)
    started = len(_engine(paced).started)
    out = get_object(paced.url, view["outputFileUri"])
    assert len(out) == len({r["custom_id"] for r in out}) == view["succeededCount"] >= 6
    assert all(r["response"]["body"]["choices"][0]["message"]["content"] == f"tiny-chat: q{r['custom_id'][1:]}"
               for r in out)
    assert started < 200 and len(_engine(paced).started) == started  # nothing is sent after the stop
    again = console(paced.url, "DescribeBatchInferenceTask", {"taskId": tid})
    assert again["runStatus"] == "Stopped" and again["succeededCount"] == view["succeededCount"]


def test_malformed_lines_become_error_rows_and_the_rest_run(paced: ServedPlatform) -> None:
    lines = [{"id": "a", "query": "one"}, {"id": "b", "query": "two"}, "{not json", {"id": "c"}, "[1, 2]",
             {"custom_id": "d", "method": "POST", "url": "/v1/chat/completions",
              "body": {"messages": [{"role": "user", "content": "four"}]}},
             {"custom_id": "e", "url": "/v1/embeddings", "body": {"input": "x"}},
             {"custom_id": "f", "body": {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}}]
    uri = put_object(paced.url, "in", "mixed.jsonl", lines)
    view = wait_task(paced.url, _create(paced.url, uri), ended)
    assert view["runStatus"] == "Done" and (view["succeededCount"], view["failedCount"]) == (3, 5)
    assert sorted(r["custom_id"] for r in get_object(paced.url, view["outputFileUri"])) == ["a", "b", "d"]
    errors = {r["line"]: r["error"]["message"] for r in get_object(paced.url, view["errorFileUri"])}
    assert sorted(errors) == [3, 4, 5, 7, 8]
    assert "line 8:" in errors[8] and "no-such-model" in errors[8]
    assert errors[3].startswith("line 3 is not valid JSON")
    assert "line 4 has no 'messages', 'query' or 'prompt'" in errors[4]
    assert "line 5 must be a JSON object" in errors[5] and "line 7: url '/v1/embeddings'" in errors[7]


def test_a_crashed_or_busy_engine_is_retried_not_failed(paced: ServedPlatform) -> None:
    _engine(paced).failures["q1"] = [crash("q1"), busy()]
    uri = put_object(paced.url, "in", "retry.jsonl", [{"id": f"k{i}", "query": f"q{i}"} for i in range(4)])
    view = wait_task(paced.url, _create(paced.url, uri), ended)
    assert view["runStatus"] == "Done" and (view["succeededCount"], view["failedCount"]) == (4, 0)
    assert view["retriedRequests"] == 2 and _engine(paced).failures["q1"] == []
    assert view["repeatedRequests"] == 0  # neither sending reached the engine: nothing to pay


def test_a_sending_the_engine_had_when_it_went_away_is_paid_as_a_repeat(paced: ServedPlatform) -> None:
    cut = EngineUnavailable("paced: the engine stopped answering (ReadError)", reached=True)
    _engine(paced).failures["q2 words"] = [cut]
    rows = [{"id": f"k{i}", "query": f"q{i} words", "max_output_tokens": 30} for i in range(4)]
    view = wait_task(paced.url, _create(paced.url, put_object(paced.url, "in", "cut.jsonl", rows)), ended)
    assert view["runStatus"] == "Done" and view["succeededCount"] == 4
    # its prompt as the answered sending's (2 words), its lost answer at the row's cap
    assert (view["repeatedRequests"], view["repeatedInputTokens"], view["repeatedOutputTokensEstimated"]) == (1, 2, 30)
    out = get_object(paced.url, view["outputFileUri"])
    answered = sum(r["response"]["body"]["usage"]["prompt_tokens"] for r in out)
    assert view["inputTokenUsage"] == answered + 2


@timing
def test_the_job_fills_the_slots_and_interactive_chat_preempts_it(paced: ServedPlatform) -> None:
    rows = 24
    engine = _engine(paced)
    engine.delay = 0.05
    # 24 rows of ~0.7 s on 2 slots: the job still runs ~7 s after its second row, when the chat comes
    rows_in = [{"id": f"k{i}", "query": f"q{i} " + "w " * 12} for i in range(rows)]
    uri = put_object(paced.url, "in", "long.jsonl", rows_in)
    tid = _create(paced.url, uri)
    wait_task(paced.url, tid, lambda v: v["succeededCount"] >= 2)
    # the job alone: every slot busy, never more than the slots admitted (nothing queued in the gate)
    assert engine.peak == 2 and engine.max_admitted == 2
    token = httpx.post(paced.url + "/oauth/2.0/token", params={
        "grant_type": "client_credentials", "client_id": CREDS.api_key, "client_secret": CREDS.secret_key}).json()
    answer: dict[str, str] = {}

    def chat() -> None:
        resp = httpx.post(f"{paced.url}{MODEL_API_PREFIX}/chat/tiny-chat", params={
            "access_token": token["access_token"]}, json={"messages": [{"role": "user", "content": "interactive"}]},
            timeout=60)
        answer.update(resp.json())

    thread = threading.Thread(target=chat)
    thread.start()
    thread.join(60)
    assert answer["result"] == "tiny-chat: interactive"
    view = wait_task(paced.url, tid, ended, limit=120)
    assert view["runStatus"] == "Done" and view["succeededCount"] == rows
    events = engine.events
    queued = events.index(("queued", "interactive"))
    started = events.index(("start", "interactive"))
    between = events[queued + 1:started]
    # the gate wakes the job as it admits the request, so the job's cancel can be logged just
    # before the engine double logs "queued": look one event earlier for it
    around = events[max(0, queued - 1):started]
    kinds = [kind for kind, _ in around]
    # the interactive request got the next free slot: the job gave one up at once (a row ending by
    # chance in those few milliseconds frees one too), and the job started nothing before it
    assert "start" not in [kind for kind, _ in between] and ("cancel" in kinds or "end" in kinds), around
    assert "cancel" in kinds or view["preemptedRequests"] == 0, around
    assert engine.peak == 2  # never more than the engine's slots
    out = get_object(paced.url, view["outputFileUri"])
    assert sorted(r["custom_id"] for r in out) == sorted(f"k{i}" for i in range(rows))  # the pre-empted row ran again
    # a row pre-empted once the engine had it was paid (it was not counted): its prompt, once more
    cut, running = [], set()
    for kind, text in events:
        if kind == "start":
            running.add(text)
        elif kind in ("cancel", "end") and text in running:
            running.discard(text)
            cut += [text] * (kind == "cancel")
    answered = sum(r["response"]["body"]["usage"]["prompt_tokens"] for r in out)
    assert (view["repeatedRequests"], view["inputTokenUsage"]) == (len(cut), answered + sum(
        len(text.split()) for text in cut)), cut


def test_two_jobs_share_the_slots_without_preempting_each_other(paced: ServedPlatform) -> None:
    engine = _engine(paced)
    first = put_object(paced.url, "in", "a.jsonl", [{"id": f"a{i}", "query": f"a{i} x y"} for i in range(20)])
    second = put_object(paced.url, "in", "b.jsonl", [{"id": f"b{i}", "query": f"b{i} x y"} for i in range(20)])
    ids = [_create(paced.url, first, "a"), _create(paced.url, second, "b")]
    views = [wait_task(paced.url, tid, ended, limit=120) for tid in ids]
    assert [(v["runStatus"], v["succeededCount"], v["preemptedRequests"]) for v in views] == [("Done", 20, 0)] * 2
    assert engine.peak == 2 and engine.max_admitted <= 2


def test_bad_requests_are_refused_naming_the_field(paced: ServedPlatform) -> None:
    import httpx as _httpx
    from platform_helpers import Signer

    uri = put_object(paced.url, "in", "ok.jsonl", [{"id": "a", "query": "x"}])
    base = {"name": "t", "inputBosUri": uri, "outputBosUri": "bos:/out/", "endpoint": "tiny-chat"}
    for change, field in (({"outputBosUri": "bos:/out/../../etc"}, "outputBosUri"),
                          ({"inputBosUri": "bos:/in/missing.jsonl"}, "inputBosUri"),
                          ({"endpoint": "no-such-model"}, "endpoint"),
                          ({"completion_window": "1h"}, "completion_window"),
                          ({"name": ""}, "name")):
        resp = _httpx.post(paced.url + "/v2/batchinference", params={"Action": "CreateBatchInferenceTask"},
                           json={**base, **change}, auth=Signer())
        assert resp.status_code == 400 and resp.json()["message"].startswith(field), (change, resp.text)
    missing = _httpx.post(paced.url + "/v2/batchinference", params={"Action": "DescribeBatchInferenceTask"},
                          json={"taskId": "infer-nope"}, auth=Signer())
    assert missing.status_code == 404
    assert paced.app.state.platform.store.all("batches") == []  # nothing stored for a refused request
