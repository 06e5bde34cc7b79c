"""``qfnb openai`` / ``qfnb proxy`` let no one in: key, Host/Origin, paths, bodies, fields, file modes.

In-process (Starlette's test client): every refusal here happens before a route calls Qianfan,
so no backend is needed; tests/cli/test_official_cli.py runs the adapters against the platform.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from qfnb.common.cli import adapter_guard
from qfnb.common.cli._shared import CliError
from qfnb.common.cli.openai_adapter import OpenAIAdapter, openai_app
from qfnb.common.cli.servers import direct_app, proxy_app
from qfnb.local.server.middleware.replay import from_loopback
from qfnb.protocol.limits import MAX_BODY_BYTES
from qfnb.protocol.platform import netguard

KEY = "k" * 43
CHAT = "/v1/chat/completions"
GOOD = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def client() -> TestClient:
    return TestClient(openai_app(OpenAIAdapter(), KEY, ["notebook.lan"]), base_url="http://127.0.0.1:8001")


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_no_key_or_a_wrong_key_is_refused(client: TestClient) -> None:
    for headers in ({}, auth("wrong"), {"Authorization": KEY}):
        answer = client.post(CHAT, json=GOOD, headers=headers)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("headers", [{"Host": "evil.example"}, {"Host": "evil.example:8001"},
                                     {"Host": "127.0.0.1.evil.example"}, {"Origin": "http://evil.example"},
                                     {"Origin": "null"}, {"Origin": "https://127.0.0.1.nip.io"}])
def test_a_foreign_host_or_origin_is_refused_before_the_key(client: TestClient, headers: dict[str, str]) -> None:
    answer = client.post(CHAT, json=GOOD, headers={**auth(), **headers})
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden_host", answer.text


@pytest.mark.parametrize("headers", [{"Host": "localhost:8001"}, {"Host": "[::1]:8001"},
                                     {"Origin": "http://localhost:8888"}, {"Host": "notebook.lan"}])
def test_loopback_names_and_allowed_names_pass_the_guard(client: TestClient, headers: dict[str, str]) -> None:
    answer = client.post(CHAT, json={"model": "m", "messages": [1]}, headers={**auth(), **headers})
    assert answer.status_code == 400 and "messages[0]" in answer.json()["error"]["message"]


@pytest.mark.parametrize("body, field", [({"messages": [1]}, "messages[0]"), ({"stop": 5}, "stop"),
                                         ({"response_format": 5}, "response_format"),
                                         ({"temperature": "hot"}, "temperature"), ({"n": 0}, "n"),
                                         ({"frobnicate": 1}, "frobnicate")])
def test_malformed_fields_get_a_400_naming_them(client: TestClient, body: dict[str, object], field: str) -> None:
    answer = client.post(CHAT, json={**GOOD, **body}, headers=auth())
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"].startswith(field), error
    assert (error["param"] or "").startswith(field), error  # the field, as the platform's own routes name it


def test_a_turn_that_is_not_an_object_is_named_as_such(client: TestClient) -> None:
    error = client.post(CHAT, json={**GOOD, "messages": [1]}, headers=auth()).json()["error"]
    assert error["param"] == "messages[0]" and "must be an object" in error["message"], error


def test_an_oversized_or_unsized_body_is_refused(client: TestClient) -> None:
    big = b"x" * (MAX_BODY_BYTES + 1)
    answer = client.post(CHAT, content=big, headers={**auth(), "content-type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "body_too_large"

    def chunks() -> object:
        yield b"{}"
    answer = client.post(CHAT, content=chunks(), headers=auth())  # type: ignore[arg-type]
    assert answer.status_code == 411


@pytest.mark.parametrize("path", ["/v1/../x/y", "/v1/%2e%2e/x", "/v1/%252e%252e/x", "/v1/..%2fx", "/v1/a%2f..%2fb",
                                  "/v1/.%2E/x", "/v1/a\\..\\b", "/v1/%25252e%25252e/x"])
def test_dot_dot_and_its_encodings_are_refused_before_forwarding(path: str) -> None:
    assert netguard.path_problem(path) is not None
    proxy = adapter_guard.RequestGuard(proxy_app("base", "tok"), refusal=lambda s, c, m: {"error_msg": m},
                                       key_ok=None)
    status, body = asyncio.run(_raw_call(proxy, path))  # as curl --path-as-is sends it (httpx would tidy it)
    assert status == 400 and ("'..'" in body or "encoded" in body or "backslash" in body), body


async def _raw_call(app: adapter_guard.ASGIApp, raw_path: str) -> tuple[int, str]:
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "method": "POST", "path": urllib.parse.unquote(raw_path), "raw_path": raw_path.encode(),
             "query_string": b"access_token=tok", "headers": [(b"host", b"127.0.0.1:8002")], "http_version": "1.1",
             "scheme": "http", "server": ("127.0.0.1", 8002), "client": ("127.0.0.1", 5000), "root_path": ""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
    await app(scope, receive, send)  # type: ignore[arg-type]
    return int(sent[0]["status"]), b"".join(m.get("body", b"") for m in sent[1:]).decode()


def test_plain_paths_pass_the_path_check() -> None:
    assert netguard.path_problem("/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/ernie-lite-8k?x=%2e%2e") is None
    assert netguard.path_problem("/v2/dataset/a%20b") is None


def test_is_loopback_is_one_pure_function() -> None:
    assert all(netguard.is_loopback(h) for h in ("127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost", "LOCALHOST.",
                                                 "app.localhost"))
    assert not any(netguard.is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "evil.example", "127.0.0.1.evil.example",
                                                     "localhost.evil.example", ""))


def test_a_generated_key_is_stored_0600_in_a_0700_dir_and_kept(tmp_path: Path) -> None:
    env = {"QFNB_DATA_DIR": str(tmp_path / "data")}
    key, created = adapter_guard.adapter_secret("openai", "QFNB_OPENAI_API_KEY", None, env)
    assert created is not None and len(key) >= 40
    assert stat.S_IMODE(created.stat().st_mode) == 0o600
    assert stat.S_IMODE(created.parent.stat().st_mode) == 0o700
    again, second = adapter_guard.adapter_secret("openai", "QFNB_OPENAI_API_KEY", None, env)
    assert (again, second) == (key, None)  # printed once: only when created
    assert adapter_guard.adapter_secret("openai", "QFNB_OPENAI_API_KEY", None,
                                        {**env, "QFNB_OPENAI_API_KEY": "from-env"}) == ("from-env", None)


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "key"
    file.write_text("secret-from-file\n")
    file.chmod(0o644)
    with pytest.raises(CliError, match="0644"):
        adapter_guard.adapter_secret("openai", "QFNB_OPENAI_API_KEY", file, {})
    file.chmod(0o600)
    assert adapter_guard.adapter_secret("openai", "X", file, {}) == ("secret-from-file", None)


def test_log_files_are_0600_and_tokens_are_redacted(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "proxy.log"
    (tmp_path / "old.log").write_text("")
    (tmp_path / "old.log").chmod(0o644)
    os.close(adapter_guard.private_file(tmp_path / "old.log"))
    assert stat.S_IMODE((tmp_path / "old.log").stat().st_mode) == 0o600
    saved = logging.getLogger().handlers[:]
    try:
        adapter_guard.log_to(str(log_file), ["the-secret-key"])
        logging.getLogger("uvicorn.access").info('127.0.0.1 - "POST /chat?access_token=24.abc&x=1 HTTP/1.1" 200')
        logging.getLogger("qfnb.cli").info("Authorization: Bearer sk-live and the-secret-key")
        for handler in logging.getLogger("uvicorn.access").handlers:
            handler.flush()
    finally:
        logging.basicConfig(handlers=saved, force=True)
    text = log_file.read_text()
    assert "24.abc" not in text and "sk-live" not in text and "the-secret-key" not in text
    assert "access_token=***" in text and text.count("***") >= 3
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600 and stat.S_IMODE(log_file.parent.stat().st_mode) == 0o700


def test_log_to_takes_uvicorns_loggers_back_from_a_server_started_earlier(tmp_path: Path) -> None:
    """A server started before in the same process (here: as the test fakes start theirs) leaves
    uvicorn's access logger at CRITICAL; the adapter's log still gets its lines, redacted."""
    import uvicorn

    uvicorn.Config(lambda *_: None, log_level="critical", access_log=False).configure_logging()
    log_file = tmp_path / "proxy.log"
    saved = logging.getLogger().handlers[:]
    try:
        adapter_guard.log_to(str(log_file))
        logging.getLogger("uvicorn.access").info('"GET /x?access_token=24.abc HTTP/1.1" 200')
        for handler in logging.getLogger("uvicorn.access").handlers:
            handler.flush()
    finally:
        logging.basicConfig(handlers=saved, force=True)
    assert "access_token=***" in log_file.read_text()


def test_a_log_file_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("")
    (tmp_path / "link.log").symlink_to(tmp_path / "target")
    with pytest.raises(CliError, match="cannot write the log file"):
        adapter_guard.private_file(tmp_path / "link.log")


def test_tools_pass_through_as_functions() -> None:
    tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
    turns, kwargs = OpenAIAdapter().chat_request({**GOOD, "tools": [tool], "tool_choice": "required"})
    assert kwargs["functions"] == [tool["function"]] and kwargs["tool_choice"] == "required"
    assert turns == [{"role": "user", "content": "hi"}]


def test_a_call_forwarded_from_another_address_keeps_the_replay_check() -> None:
    """``qfnb proxy --direct`` on a network address reaches the platform from loopback; it says whom it
    forwards for, and the platform checks that call's signature for replays as if it came directly."""
    def call(host: str, headers: list[tuple[bytes, bytes]]) -> Request:
        return Request({"type": "http", "client": (host, 50000), "headers": headers})

    local, remote = call("127.0.0.1", []), call("10.0.0.7", [])
    forwarded = call("127.0.0.1", [(b"x-forwarded-for", b"10.0.0.7")])
    assert from_loopback(local) and not from_loopback(forwarded) and not from_loopback(remote)


@pytest.mark.parametrize(("client", "sent", "forwarded"), [
    (("10.0.0.7", 50000), {}, "10.0.0.7"),
    (("10.0.0.7", 50000), {"X-Forwarded-For": ""}, "10.0.0.7"),  # a client cannot blank it
    (("10.0.0.7", 50000), {"X-Forwarded-For": "127.0.0.1"}, "10.0.0.7"),  # nor claim loopback
    (("127.0.0.1", 50000), {}, None),
])
def test_the_direct_proxy_says_whom_it_forwards_for(monkeypatch: pytest.MonkeyPatch, client: tuple[str, int],
                                                    sent: dict[str, str], forwarded: str | None) -> None:
    """``qfnb proxy --direct`` reaches the platform from loopback whatever its own address: it adds the
    caller's address as ``X-Forwarded-For`` (replacing any the caller sent), so the platform's
    ``from_loopback`` sees a network call and keeps its replay check."""
    seen: list[dict[str, Any]] = []

    async def platform(request: Request) -> JSONResponse:  # the daemon side: what its replay check reads
        seen.append({"forwarded": request.headers.get("x-forwarded-for"), "checked": not from_loopback(request),
                     "path": request.url.path})
        return JSONResponse({"result": "ok"})

    upstream = Starlette(routes=[Route("/{path:path}", platform, methods=["POST"])])
    real = httpx.AsyncClient
    monkeypatch.setattr(httpx, "AsyncClient", lambda **kw: real(transport=httpx.ASGITransport(app=upstream), **kw))
    proxy = TestClient(direct_app("http://127.0.0.1:8866"), base_url="http://127.0.0.1:8002", client=client)
    answer = proxy.post("/v2/dataset?Action=DeleteDataset", json={}, headers=sent)
    assert answer.status_code == 200 and answer.json() == {"result": "ok"}, answer.text
    assert seen == [{"forwarded": forwarded, "checked": forwarded is not None, "path": "/v2/dataset"}]


@pytest.mark.parametrize("command", ["openai", "proxy"])
def test_the_help_names_no_refused_option(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    # --host's help said "another needs --api-key" (or --access-token): both are refused as argv
    from qfnb.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "needs --api-key" not in text and "needs --access-token" not in text
    assert "whatever the address" in text
