"""The request caps (``qfnb.protocol.limits``) on the local platform: every cap is refused in the
route's own format naming the field, before any work; a body over the cap is refused before it
is read (declared or chunked); uploads stream to disk and a refused one leaves no file."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from platform_doubles import FakeRegistry
from platform_helpers import Signer, client_for, console, token
from starlette.testclient import TestClient

from qfnb.local.server.middleware import guard
from qfnb.protocol import limits
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

CHAT = MODEL_API_PREFIX + "/chat/tiny-chat"
EMBED = MODEL_API_PREFIX + "/embeddings/tiny-embed"
COMPLETE = MODEL_API_PREFIX + "/completions/tiny-chat"
V2 = "/v2/chat/completions"


def history(n: int, content: str = "hi") -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": content} for i in range(n)]


@pytest.fixture()
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture()
def client(tmp_path: Path, registry: FakeRegistry) -> Iterator[TestClient]:
    with client_for(tmp_path / "data", registry) as c:
        yield c


def _bearer(client: TestClient) -> str:
    return str(client.get("/v1/BCE-BEARER/token", params={"expireInSeconds": 600}, auth=Signer()).json()["token"])


BIG = "x" * (limits.MAX_PROMPT_CHARS + 1)
V1_CAPS: list[tuple[str, dict[str, Any], str, int]] = [
    (CHAT, {"messages": history(10_001)}, "messages", 336006),
    (CHAT, {"messages": history(limits.MAX_MESSAGES + 1)}, "messages", 336006),
    (CHAT, {"messages": history(limits.LOCAL_MAX_MESSAGES + 2)}, "messages", 336006),
    (CHAT, {"messages": [{"role": "user", "content": BIG}]}, "messages", 336006),
    (CHAT, {"messages": history(1), "system": BIG}, "messages", 336006),
    (CHAT, {"messages": history(1), "max_output_tokens": limits.LOCAL_MAX_OUTPUT_TOKENS + 1},
     "max_output_tokens", 336003),
    (CHAT, {"messages": history(1), "max_output_tokens": 10**12}, "max_output_tokens", 336003),
    (COMPLETE, {"prompt": BIG}, "prompt", 336003),
    (EMBED, {"input": ["a"] * (limits.MAX_EMBEDDING_TEXTS + 1)}, "texts", 336003),
    (EMBED, {"input": ["a", "y" * (limits.MAX_EMBEDDING_CHARS + 1)]}, "texts[1]", 336003),
]


@pytest.mark.parametrize(("path", "body", "field", "code"), V1_CAPS)
def test_v1_caps_name_the_field_and_never_reach_the_engine(client: TestClient, registry: FakeRegistry, path: str,
                                                           body: dict[str, Any], field: str, code: int) -> None:
    resp = client.post(path, params={"access_token": token(client)}, json=body)
    got = resp.json()
    assert resp.status_code == 200 and got["error_code"] == code and got["error_msg"].startswith(field), got
    assert all(not e.calls for e in registry.engines.values())


V2_CAPS: list[tuple[dict[str, Any], str]] = [
    ({"messages": history(limits.MAX_MESSAGES + 1)}, "messages"),
    ({"messages": history(limits.LOCAL_MAX_MESSAGES + 1)}, "messages"),
    ({"messages": [{"role": "system", "content": BIG}, {"role": "user", "content": "hi"}]}, "messages"),
    ({"messages": history(1), "max_tokens": limits.LOCAL_MAX_OUTPUT_TOKENS + 1}, "max_tokens"),
    ({"messages": history(1), "max_completion_tokens": 2**70}, "max_completion_tokens"),
]


@pytest.mark.parametrize(("body", "field"), V2_CAPS)
def test_v2_caps_name_the_field(client: TestClient, registry: FakeRegistry, body: dict[str, Any], field: str) -> None:
    resp = client.post(V2, headers={"Authorization": f"Bearer {_bearer(client)}"},
                       json={"model": "tiny-chat", **body})
    assert resp.status_code == 400 and resp.json()["error"]["message"].startswith(field), resp.text
    assert all(not e.calls for e in registry.engines.values())


def test_the_local_caps_are_inclusive(client: TestClient) -> None:
    body = {"messages": history(1), "max_output_tokens": limits.LOCAL_MAX_OUTPUT_TOKENS}
    assert client.post(CHAT, params={"access_token": token(client)}, json=body).json()["result"]
    longest = history(limits.LOCAL_MAX_MESSAGES if limits.LOCAL_MAX_MESSAGES % 2 else limits.LOCAL_MAX_MESSAGES - 1)
    assert client.post(CHAT, params={"access_token": token(client)}, json={"messages": longest}).json()["result"]


def _oversize(n: int = limits.MAX_BODY_BYTES + 1) -> bytes:
    return b'{"messages": [{"role": "user", "content": "' + b"x" * n + b'"}]}'


def test_an_oversize_body_is_refused_in_each_routes_format(client: TestClient) -> None:
    data = _oversize()
    v1 = client.post(CHAT, params={"access_token": token(client)}, content=data).json()
    assert v1["error_code"] == 336003 and v1["error_msg"].startswith("body") and "id" in v1
    v2 = client.post(V2, headers={"Authorization": f"Bearer {_bearer(client)}"}, content=data)
    assert v2.status_code == 413 and v2.json()["error"]["code"] == "invalid_argument"
    v1_console = client.post("/wenxinworkshop/service/list", content=data, auth=Signer()).json()
    assert v1_console["error_code"] == 336003 and "log_id" in v1_console
    v1_data = client.post("/wenxinworkshop/dataset/create", content=data, auth=Signer()).json()
    assert v1_data["success"] is False and v1_data["error_msg"].startswith("body")
    v2_console = client.post("/v2/finetuning", params={"Action": "DescribeFineTuningTasks"}, content=data,
                             auth=Signer())
    assert v2_console.status_code == 413 and v2_console.json()["code"] == "RequestEntityTooLarge"
    # the connection and the platform go on
    assert client.post(CHAT, params={"access_token": token(client)}, json={"messages": history(1)}).json()["result"]


def _chunks(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_a_chunked_body_over_the_cap_is_refused_in_the_routes_format(client: TestClient) -> None:
    """No Content-Length: the guard counts the bytes and stops reading at the cap."""
    resp = client.post(CHAT, params={"access_token": token(client)}, content=_chunks(_oversize()))
    assert "content-length" not in resp.request.headers
    got = resp.json()
    assert got["error_code"] == 336003 and got["error_msg"].startswith("body"), got
    resp = client.post(V2, headers={"Authorization": f"Bearer {_bearer(client)}"}, content=_chunks(_oversize()))
    assert resp.status_code == 413 and resp.json()["error"]["message"].startswith("body"), resp.text
    resp = client.post("/v2/finetuning", params={"Action": "DescribeFineTuningTasks"}, content=_chunks(_oversize()),
                       auth=Signer())
    assert resp.status_code == 413 and resp.json()["code"] == "RequestEntityTooLarge", resp.text
    resp = client.post("/oauth/2.0/token", content=_oversize())
    assert resp.status_code == 413 and resp.json()["error"] == "invalid_request", resp.text


async def _asgi_post(app: Any, path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """POST through the raw ASGI interface; returns (status, chunks the app pulled)."""
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < len(chunks)}
        return {"type": "http.disconnect"}

    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers, "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
             "http_version": "1.1", "root_path": "", "app": app}
    await guard.BodyLimit(app)(scope, receive, send)
    return status, pulled


async def test_a_lying_content_length_is_counted_and_reading_stops_at_the_cap() -> None:
    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:  # reads everything, as request.body() would
        while True:
            message = await receive()
            seen.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    chunk = b"x" * (1024 * 1024)
    chunks = [chunk] * 20  # 20 MiB behind a Content-Length of 10 bytes
    status, pulled = await _asgi_post(app, "/v2/chat/completions", chunks, [(b"content-length", b"10")])
    assert status == 413 and pulled == limits.MAX_BODY_BYTES // len(chunk) + 1
    status, pulled = await _asgi_post(app, "/v2/chat/completions", chunks,
                                      [(b"content-length", str(20 * len(chunk)).encode())])
    assert status == 413 and pulled == 0  # declared over the cap: not a byte read


def test_the_caps_table_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[4] / "docs" / "local-platform.md").read_text(encoding="utf-8")
    for value in ("8 MiB", f"{limits.MAX_MESSAGES}; {limits.LOCAL_MAX_MESSAGES} here", f"{limits.MAX_PROMPT_CHARS:,}",
                  f"{limits.MAX_EMBEDDING_CHARS:,}", f"{limits.LOCAL_MAX_OUTPUT_TOKENS}", "512 MiB"):
        assert value in doc, value


def test_console_bodies_within_the_cap_still_work(client: TestClient) -> None:
    got = console(client, "/wenxinworkshop/service/list", {"pad": "x" * 1000})
    assert "result" in got, got
    assert json.dumps(got)


def test_dataset_files_are_read_line_by_line(client: TestClient) -> None:
    """Import and export read their files by '\\n' lines (never whole): a row holding U+2028 survives."""
    rows = [{"prompt": f"q{i}\u2028line", "response": "a\x85b"} for i in range(3)]
    put = client.put("/bos/b/rows.jsonl", content="\n".join(json.dumps(r) for r in rows).encode(), auth=Signer())
    assert put.status_code == 200 and put.headers["ETag"] == str(len(put.request.content))
    ds = console(client, "/wenxinworkshop/dataset/create", {"name": "sep", "projectType": 20, "templateType": 2000,
                                                            "dataType": 4})["result"]
    imp = console(client, "/wenxinworkshop/dataset/import", {"datasetId": ds["id"], "files": ["bos:/b/rows.jsonl"]})
    assert imp["result"] is True, imp
    info = console(client, "/wenxinworkshop/dataset/info", {"datasetId": ds["id"]})["result"]["versionInfo"]
    assert info["entityCount"] == 3
    assert console(client, "/wenxinworkshop/dataset/export", {"datasetId": ds["id"]})["result"] is True
    url = console(client, "/wenxinworkshop/dataset/exportRecord", {"datasetId": ds["id"]})["result"][0]["downloadUrl"]
    with zipfile.ZipFile(io.BytesIO(client.get(url).content)) as archive:  # a pre-signed link to a zip
        text = archive.read(archive.namelist()[0]).decode()
    got = [json.loads(line) for line in text.split("\n") if line]
    assert [t[0]["prompt"] for t in got] == [r["prompt"] for r in rows]
