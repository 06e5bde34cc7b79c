"""OpenAI's batch limits and every batch/file route's input checks, each answered in its route's
own error shape with the field named (issue 34 §3-4)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from batch_doubles import paced_platform
from platform_helpers import Signer

from tests.fakes.local_platform import ServedPlatform


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    with paced_platform(tmp_path / "data", monkeypatch, delay="0.001") as platform:
        yield platform


@pytest.fixture()
def client(served: ServedPlatform) -> Iterator[httpx.Client]:
    bearer = served.bearer_token()
    with httpx.Client(base_url=served.url + "/v1/", headers={"Authorization": f"Bearer {bearer}"},
                      timeout=30) as c:
        yield c


def _rows(*ids: str) -> bytes:
    return b"".join(json.dumps({"custom_id": i, "method": "POST", "url": "/v1/chat/completions", "body": {
        "model": "tiny-chat", "messages": [{"role": "user", "content": f"hi {i}"}]}}).encode() + b"\n" for i in ids)


def _upload(client: httpx.Client, data: bytes, purpose: str = "batch", name: str = "in.jsonl") -> dict[str, Any]:
    resp = client.post("files", data={"purpose": purpose}, files={"file": (name, data)})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def _openai_refusal(resp: httpx.Response, status: int, param: str | None) -> str:
    """The OpenAI error object, naming ``param`` in its sentence; its message."""
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param, error
    assert "Traceback" not in error["message"] and "Error(" not in error["message"]
    if param:
        assert error["message"].startswith(param.split(".")[0]), error
    return str(error["message"])


def _create(client: httpx.Client, file_id: str, **extra: Any) -> httpx.Response:
    return client.post("batches", json={"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                                        "completion_window": "24h", **extra})


def _wait(client: httpx.Client, batch_id: str) -> dict[str, Any]:
    for _ in range(600):
        view = client.get(f"batches/{batch_id}").json()
        if view["status"] in ("completed", "failed", "cancelled", "expired"):
            return view  # type: ignore[no-any-return]
        __import__("time").sleep(0.05)
    raise AssertionError(view)


def test_batch_create_checks_its_fields(client: httpx.Client) -> None:
    file = _upload(client, _rows("a"))
    _openai_refusal(_create(client, file["id"], metadata={f"k{i}": "v" for i in range(17)}), 400, "metadata")
    _openai_refusal(_create(client, file["id"], metadata={"k" * 65: "v"}), 400, "metadata")
    _openai_refusal(_create(client, file["id"], metadata={"k": "v" * 513}), 400, "metadata.k")
    _openai_refusal(_create(client, file["id"], metadata={"k": 5}), 400, "metadata.k")
    _openai_refusal(_create(client, file["id"], completion_window={}), 400, "completion_window")
    _openai_refusal(_create(client, file["id"], endpoint={}), 400, "endpoint")
    # a fine-tuning file is checked as one when uploaded (tests/clients/test_openai_fine_tuning.py)
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    tuning = _upload(client, json.dumps(chat).encode() + b"\n", purpose="fine-tune")
    assert "purpose 'fine-tune'" in _openai_refusal(_create(client, tuning["id"]), 400, "input_file_id")
    sixteen = _create(client, file["id"], metadata={f"k{i}": "v" * 512 for i in range(16)})
    assert sixteen.status_code == 200, sixteen.text
    done = _wait(client, sixteen.json()["id"])
    assert done["status"] == "completed"
    # a batch's own output is not an input, and a finished batch cannot be cancelled
    _openai_refusal(_create(client, done["output_file_id"]), 400, "input_file_id")
    assert "status 'completed'" in _openai_refusal(client.post(f"batches/{done['id']}/cancel"), 400, None)


def test_duplicate_custom_ids_fail_the_batch_naming_them(client: httpx.Client) -> None:
    file = _upload(client, _rows("a", "b", "a"))
    view = _wait(client, _create(client, file["id"]).json()["id"])
    assert view["status"] == "failed", view
    message = view["errors"]["data"][0]["message"]
    assert "custom_id 'a' on line 3 is also on line 1" in message


def test_list_limit_is_checked(client: httpx.Client) -> None:
    for bad in ("x", "0", "101", "-1", "1e3", "99999999999999999999"):
        _openai_refusal(client.get("batches", params={"limit": bad}), 400, "limit")
    assert client.get("batches", params={"limit": "100"}).status_code == 200


def test_uploads_keep_names_bound_their_fields_and_leave_nothing_when_refused(served: ServedPlatform,
                                                                               client: httpx.Client) -> None:
    assert _upload(client, _rows("a"), name="名字.jsonl")["filename"] == "名字.jsonl"
    assert _upload(client, _rows("a"), name="../../x/.hidden.jsonl")["filename"] == "hidden.jsonl"
    folder = served.app.state.platform.objects.path("qfnb-files", "x").parent
    before = sorted(p.name for p in folder.iterdir())
    refused = client.post("files", data={"purpose": "nonsense"}, files={"file": ("a.jsonl", _rows("a"))})
    _openai_refusal(refused, 400, "purpose")
    fields = client.post("files", data={f"f{i}": "x" for i in range(40)} | {"purpose": "batch"},
                         files={"file": ("a.jsonl", _rows("a"))})
    assert "more than 16 fields" in _openai_refusal(fields, 400, "form")
    big = client.post("files", data={"purpose": "batch", "note": "x" * 70_000}, files={"file": ("a.jsonl", b"{}")})
    _openai_refusal(big, 400, "note")
    assert sorted(p.name for p in folder.iterdir()) == before  # no object, no empty folder left


def _console(served: ServedPlatform, action: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(served.url + "/v2/batchinference", params={"Action": action}, json=body, auth=Signer(),
                      timeout=30)


def test_qianfan_batch_routes_name_the_field_in_their_own_shape(served: ServedPlatform) -> None:
    for field, value in (("maxKeys", "x"), ("maxKeys", [1]), ("maxKeys", 0), ("maxKeys", 1001),
                         ("maxKeys", 2**63), ("runStatus", 5), ("runStatus", ["Done", 5]), ("marker", 3)):
        resp = _console(served, "DescribeBatchInferenceTasks", {field: value})
        assert resp.status_code == 400, (field, value, resp.text)
        body = resp.json()
        assert body["code"] == "InvalidParameter" and body["message"].startswith(field), body
    assert _console(served, "DescribeBatchInferenceTasks", {"maxKeys": 1000, "runStatus": "Done"}).status_code == 200
    base = {"name": "t", "inputBosUri": "bos:/in/a.jsonl", "outputBosUri": "bos:/out/", "endpoint": "tiny-chat"}
    for change, field in (({"completion_window": {}}, "completion_window"),
                          ({"inferenceParams": {"temperature": 50}}, "inferenceParams.temperature"),
                          ({"inferenceParams": {"max_output_tokens": 10**9}}, "inferenceParams.max_output_tokens")):
        resp = _console(served, "CreateBatchInferenceTask", {**base, **change})
        assert resp.status_code == 400 and resp.json()["message"].startswith(field), resp.text


def test_a_client_gone_mid_upload_is_one_log_line_and_leaves_nothing(served: ServedPlatform,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    import socket
    import time

    bearer = served.bearer_token()
    folder = served.app.state.platform.objects.path("qfnb-files", "x").parent
    before = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    host, port = served.url.removeprefix("http://").split(":")
    head = (f"POST /v1/files HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {bearer}\r\n"
            "Content-Type: multipart/form-data; boundary=bb\r\nContent-Length: 10000000\r\n\r\n"
            "--bb\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\r\n")
    with caplog.at_level("INFO"), socket.create_connection((host, int(port))) as sock:
        sock.sendall(head.encode() + b"x" * 300_000)
        time.sleep(0.5)
        sock.close()
        for _ in range(100):  # the server notices the disconnect
            if any("went away" in r.getMessage() for r in caplog.records):
                break
            time.sleep(0.05)
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(gone) == 1 and gone[0].exc_info is None
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith(("qfnb", "uvicorn"))]
    after = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    assert after == before  # no partial object, no empty folder
