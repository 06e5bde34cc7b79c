"""Issue 26 (items 3 and 5): every bad input gets a 4xx naming the field, a full disk gets each
route's own "storage full" answer, tokens work only on their own API, ``expireInSeconds`` is
checked, a replayed signature is refused, and an engine failing mid-stream ends the stream with
an SSE error event that the client raises as a retryable stream error."""

from __future__ import annotations

import errno
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from platform_doubles import FakeChat, FakeDelta, FakeRegistry
from platform_helpers import Signer, bearer, client_for, token

from qfnb._core.errors import StreamError
from qfnb._core.http.wire import stream_item_error
from qfnb.local.domain.state.datasets import ObjectStore
from qfnb.local.domain.state.store import Store
from qfnb.local.engines.ask import Sampling
from qfnb.local.server.middleware.replay import changes_state
from qfnb.protocol.wires.codec.sse import SSEDecoder
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

CHAT = MODEL_API_PREFIX + "/chat/tiny-chat"
MSG = [{"role": "user", "content": "hello there"}]


def _v2(client: Any, route: str, action: str, body: Any) -> Any:
    return client.post(route, params={"Action": action}, content=json.dumps(body), auth=Signer())


@pytest.mark.parametrize("route,action", [("/v2/dataset", "DescribeDatasets"), ("/v2/service", "DescribeServices"),
                                          ("/v2/finetuning", "DescribeFineTuningJobs")])
@pytest.mark.parametrize("max_keys", ["x", [1], -1, 0, 2**63, True, 1001, 1.5])
def test_list_paging_parameters_are_checked(client, route: str, action: str, max_keys: Any) -> None:  # type: ignore[no-untyped-def]
    resp = _v2(client, route, action, {"maxKeys": max_keys})
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "InvalidParameter" and resp.json()["message"].startswith("maxKeys:")


def test_list_paging_still_pages(client) -> None:  # type: ignore[no-untyped-def]
    for name in ("a", "b", "c"):
        assert _v2(client, "/v2/dataset", "CreateDataset", {"datasetName": name}).status_code == 200
    page = _v2(client, "/v2/dataset", "DescribeDatasets", {"maxKeys": 2}).json()["result"]
    assert len(page["datasets"]) == 2 and page["pageInfo"]["isTruncated"] is True
    rest = _v2(client, "/v2/dataset", "DescribeDatasets", {"maxKeys": 2, "marker": page["pageInfo"]["nextMarker"]})
    assert [d["datasetName"] for d in rest.json()["result"]["datasets"]] == ["c"]
    assert _v2(client, "/v2/dataset", "DescribeDatasets", {"marker": 5}).json()["message"].startswith("marker:")


def test_a_lone_surrogate_is_refused_naming_the_field(client) -> None:  # type: ignore[no-untyped-def]
    raw = '{"messages": [{"role": "user", "content": "a\\ud800b"}]}'
    body = client.post(CHAT, params={"access_token": token(client)}, content=raw).json()
    assert body["error_code"] == 336002 and body["error_msg"].startswith("messages[0].content:"), body
    v2 = client.post("/v2/chat/completions", headers={"Authorization": "Bearer " + bearer(client)},
                     content='{"model": "tiny-chat", "messages": [{"role": "user", "content": "\\udfff"}]}')
    assert v2.status_code == 400 and "messages[0].content" in v2.json()["error"]["message"]
    # a proper pair is text, not an error
    pair = client.post(CHAT, params={"access_token": token(client)},
                       content='{"messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}').json()
    assert pair["result"] == "tiny-chat: \U0001f600"


def test_a_huge_integer_literal_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    raw = '{"messages": [{"role": "user", "content": "hi"}], "seed": ' + "9" * 5000 + "}"
    body = client.post(CHAT, params={"access_token": token(client)}, content=raw).json()
    assert body["error_code"] == 336002 and "5000 digits" in body["error_msg"]
    console = client.post("/wenxinworkshop/service/detail", content='{"serviceId": ' + "1" * 5000 + "}",
                          auth=Signer()).json()
    assert console["error_code"] == 336002 and "digits" in console["error_msg"]


def _full(*_: Any, **__: Any) -> Any:
    raise sqlite3.OperationalError("database or disk is full")


def test_a_full_disk_is_storage_full_in_each_routes_shape(client, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    tok = token(client)
    assert client.get("/healthz").json() == {"status": "ok"}
    monkeypatch.setattr(Store, "insert", _full)
    monkeypatch.setattr(Store, "add_token", _full)
    v1 = client.post("/wenxinworkshop/dataset/create", json={"name": "d", "dataType": 4, "projectType": 20,
                                                             "templateType": 2000}, auth=Signer())
    assert v1.status_code == 200 and v1.json()["error_code"] == 500000
    assert "storage full" in v1.json()["error_msg"] and "OperationalError" not in v1.text
    assert v1.json()["status"] == 507 and v1.json()["success"] is False
    v2 = _v2(client, "/v2/dataset", "CreateDataset", {"datasetName": "d"})
    assert v2.status_code == 507 and v2.json()["code"] == "StorageFull" and "OperationalError" not in v2.text
    oauth = client.post("/oauth/2.0/token", params={"grant_type": "client_credentials", "client_id": "test-ak",
                                                    "client_secret": "test-sk"})
    assert oauth.status_code == 503 and oauth.json()["error"] == "temporarily_unavailable", oauth.text
    minted = client.get("/v1/BCE-BEARER/token", params={"expireInSeconds": 600}, auth=Signer())
    assert minted.status_code == 507 and minted.json()["code"] == "StorageFull"

    async def no_space(*_: Any, **__: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ObjectStore, "put_stream", no_space)
    bos = client.put("/bos/b/k.jsonl", content=b"{}", auth=Signer())
    assert bos.status_code == 507 and bos.headers["x-bce-error-code"] == "InsufficientStorage"
    assert "No space" not in bos.text
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "degraded", "problems": ["storage full"]}
    # inference needs no disk: it goes on
    assert client.post(CHAT, params={"access_token": tok}, json={"messages": MSG}).json()["result"]


def test_tokens_work_only_on_their_own_api(client) -> None:  # type: ignore[no-untyped-def]
    oauth, minted = token(client), bearer(client)
    v2 = client.post("/v2/chat/completions", headers={"Authorization": f"Bearer {oauth}"},
                     json={"model": "tiny-chat", "messages": MSG})
    assert v2.status_code == 401 and v2.json()["error"]["code"] == "invalid_iam_token"
    v1 = client.post(CHAT, params={"access_token": minted}, json={"messages": MSG}).json()
    assert v1["error_code"] == 110
    assert client.post(CHAT, params={"access_token": oauth}, json={"messages": MSG}).json()["result"]
    assert client.post("/v2/chat/completions", headers={"Authorization": f"Bearer {minted}"},
                       json={"model": "tiny-chat", "messages": MSG}).status_code == 200


@pytest.mark.parametrize("value", ["0", "-5", "abc", "2592001", "1e3", "", "99999999999999999999"])
def test_expire_in_seconds_out_of_range_is_a_400(client, value: str) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/v1/BCE-BEARER/token", params={"expireInSeconds": value}, auth=Signer())
    assert resp.status_code == 400 and resp.json()["message"].startswith("expireInSeconds:"), resp.text


@pytest.mark.parametrize("value,seconds", [("1", 1), ("600", 600), (None, 43200)])
def test_expire_in_seconds_is_honoured(client, value: str | None, seconds: int) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime

    params = {"expireInSeconds": value} if value is not None else {}
    body = client.get("/v1/BCE-BEARER/token", params=params, auth=Signer()).json()
    start, end = (datetime.strptime(body[k], "%Y-%m-%dT%H:%M:%SZ") for k in ("createTime", "expireTime"))
    assert abs((end - start).total_seconds() - seconds) <= 1


def test_a_replayed_signature_is_refused_on_calls_that_change_state(client) -> None:  # type: ignore[no-untyped-def]
    sent = client.post("/v2/dataset", params={"Action": "CreateDataset"}, json={"datasetName": "first"},
                       auth=Signer())
    assert sent.status_code == 200
    stolen = {k: v for k, v in sent.request.headers.items() if k.lower() in ("authorization", "x-bce-date",
                                                                              "x-bce-request-id", "content-type")}
    again = client.post("/v2/dataset", params={"Action": "CreateDataset"}, content=b'{"datasetName": "second"}',
                        headers=stolen)
    assert again.status_code == 409 and again.headers["x-bce-error-code"] == "RequestReplayed"
    assert again.headers["retry-after"] == "1"
    names = [d["datasetName"] for d in _v2(client, "/v2/dataset", "DescribeDatasets", {}).json()["result"]["datasets"]]
    assert names == ["first"]
    # a read may be repeated with its signature
    read = client.post("/v2/dataset", params={"Action": "DescribeDatasets"}, json={}, auth=Signer())
    read_headers = {k: v for k, v in read.request.headers.items() if k.lower() in ("authorization", "x-bce-date",
                                                                                    "x-bce-request-id", "content-type")}
    assert client.post("/v2/dataset", params={"Action": "DescribeDatasets"}, content=b"{}",
                       headers=read_headers).status_code == 200



#: signed calls that change state, each with the body a replayer would swap in: a rewritten dataset entity,
#: a forged reward for a RFT run, bytes appended to an object, a batch of the replayer's choosing
CHANGES = [("/wenxinworkshop/entity/annotate", {}, {"id": 1, "content": [{"prompt": "x", "response": [["y"]]}]}),
           ("/v2/finetuning", {"Action": "SubmitFineTuningRewards"}, {"taskId": 1, "requestId": 0, "rewards": [1.0]}),
           ("/bos/b/log.jsonl", {"append": "", "offset": "0"}, b'{"forged": true}\n'),
           ("/v2/batches", {}, {"input_file_id": "file-x", "endpoint": "/v1/chat/completions",
                                "completion_window": "24h"})]


@pytest.mark.parametrize(("path", "params", "body"), CHANGES, ids=[p for p, _, _ in CHANGES])
def test_a_replayed_signature_is_refused_on_every_call_that_changes_state(  # type: ignore[no-untyped-def]
        client, path: str, params: dict[str, str], body: Any) -> None:
    """The calls outside the first list of state-changing names (an annotation, a reward, an append, an
    OpenAI-style create signed with IAM keys) took a captured signature again, with another body."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = client.post(path, params=params, content=content, auth=Signer())
    assert sent.status_code != 401, sent.text
    stolen = {k: v for k, v in sent.request.headers.items() if k.lower() in ("authorization", "x-bce-date",
                                                                              "x-bce-request-id", "content-type")}
    again = client.post(path, params=params, content=content + b" ", headers=stolen)
    if path.startswith("/bos/") or "Action" in params or path.startswith("/wenxinworkshop/"):
        assert again.status_code == 409 and again.headers["x-bce-error-code"] == "RequestReplayed", again.text
    else:  # an OpenAI-style route: its 401, saying why
        assert again.status_code == 401 and "already used" in again.json()["error"]["message"], again.text


@pytest.mark.parametrize(("method", "path", "action"), [
    ("POST", "/wenxinworkshop/finetune/jobDetail", None), ("POST", "/wenxinworkshop/service/list", None),
    ("POST", "/wenxinworkshop/dataset/exportRecord", None), ("POST", "/wenxinworkshop/modelrepo/eval/report", None),
    ("POST", "/wenxinworkshop/dataset/info", None), ("POST", "/v2/finetuning", "DescribeFineTuningRewardRequests"),
    ("POST", "/v2/dataset", "DescribeDatasets"), ("POST", MODEL_API_PREFIX + "/chat/x", None),
    ("POST", "/v2/chat/completions", None), ("POST", "/v1/embeddings", None),
    ("POST", "/v1/messages/count_tokens", None),
    ("GET", "/bos/b/k", None), ("GET", "/v1/BCE-BEARER/token", None)])
def test_reads_and_model_calls_may_repeat_a_signature(method: str, path: str, action: str | None) -> None:
    """The official SDK signs no unique header: its polls and model calls look alike within a second."""
    assert not changes_state(method, path, action)


class BreakingChat(FakeChat):
    """Answers one word, then its engine fails."""

    def _words(self, text: str, sampling: Sampling) -> Iterator[FakeDelta]:
        yield FakeDelta("partial", None, prompt_tokens=1, completion_tokens=1)
        raise RuntimeError("engine process died: secret internals")


@pytest.mark.parametrize("v2", [False, True])
def test_an_engine_failure_mid_stream_is_an_sse_error_event(tmp_path: Path, v2: bool) -> None:
    registry = FakeRegistry()
    registry.engines["tiny-chat"] = BreakingChat("tiny-chat")
    with client_for(tmp_path, registry) as client:
        if v2:
            resp = client.post("/v2/chat/completions", headers={"Authorization": "Bearer " + bearer(client)},
                               json={"model": "tiny-chat", "messages": MSG, "stream": True})
        else:
            resp = client.post(CHAT, params={"access_token": token(client)}, json={"messages": MSG, "stream": True})
    assert "secret internals" not in resp.text and "RuntimeError" not in resp.text
    decoder = SSEDecoder()
    items = [*decoder.feed(resp.text), *decoder.close()]
    assert not any(i.bare for i in items), resp.text  # every line is SSE, no raw JSON line
    errors = [stream_item_error(i) for i in items]
    assert all(e is None for e in errors[:-1])
    last = errors[-1]
    assert isinstance(last, StreamError) and last.retryable and items[-1].event == "error"
