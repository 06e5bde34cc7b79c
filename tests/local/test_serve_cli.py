"""The platform's app on a data dir (credentials kept there) and ``qfnb serve``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from platform_doubles import FakeRegistry

from qfnb.local.server.app import create_app
from qfnb.local.server.middleware.guard import LoopbackOnly, NoWebPages, host_guard
from qfnb.local.settings import Settings
from qfnb.protocol.platform.netguard import is_loopback
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

REPO = Path(__file__).resolve().parents[2]


def _chat(settings: Settings) -> str:
    """One chat through the app in-process (httpx's ASGI transport), with the data dir's keys."""
    async def go() -> str:
        transport = httpx.ASGITransport(app=create_app(settings, FakeRegistry()))
        async with httpx.AsyncClient(transport=transport, base_url="http://qfnb.test") as client:
            creds = settings.credentials
            tok = (await client.post("/oauth/2.0/token", params={
                "grant_type": "client_credentials", "client_id": creds.api_key,
                "client_secret": creds.secret_key})).json()["access_token"]
            answer = await client.post(MODEL_API_PREFIX + "/chat/tiny-chat", params={"access_token": tok},
                                       json={"messages": [{"role": "user", "content": "hi"}]})
            return str(answer.json()["result"])

    return asyncio.run(go())


def test_a_data_dir_keeps_its_credentials_private_and_across_starts(tmp_path: Path) -> None:
    first = Settings.from_env(data_dir=tmp_path, env={})
    creds_file = tmp_path / "credentials.json"
    assert creds_file.stat().st_mode & 0o777 == 0o600
    assert json.loads(creds_file.read_text())["secret_key"] == first.credentials.secret_key
    text = repr(first.credentials)
    assert first.credentials.secret_key not in text and first.credentials.iam_secret_key not in text
    assert _chat(first) == "tiny-chat: hi"
    again = Settings.from_env(data_dir=tmp_path, env={})
    assert again.credentials == first.credentials and _chat(again) == "tiny-chat: hi"


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


def test_serve_refuses_public_host_without_keys(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIANFAN_")}
    proc = subprocess.run([sys.executable, "-m", "qfnb.cli", "serve", "--host", "0.0.0.0", "--data-dir",
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert proc.returncode == 2 and "refusing" in proc.stderr


def test_serve_prints_generated_credentials_and_answers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIANFAN_")}
    env["QIANFAN_AK"] = "given-ak"
    # port 0: the server binds a free port once and prints it (no pick-release-reuse race)
    proc = subprocess.Popen([sys.executable, "-m", "qfnb.cli", "serve", "--port", "0", "--data-dir",
                             str(tmp_path), "--log-level", "warning"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=str(REPO))
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if ("export " in line and "QIANFAN_BASE_URL" not in line) or "credentials:" in line:
                break  # the last line it prints before serving
        out = "".join(lines)
        found = re.search(r"QIANFAN_BASE_URL=(http://127\.0\.0\.1:(\d+))", out)
        assert found and int(found.group(2)) > 0, out
        base = found.group(1)
        creds = json.loads((tmp_path / "credentials.json").read_text())
        ok = _wait_for_token(base, creds["secret_key"], proc)
        assert ok.status_code == 200 and ok.json()["access_token"].startswith("24."), ok.text
        # on a loopback address, as the daemon: a foreign Host (DNS rebinding) or Origin (a web page) is refused
        for headers in ({"Host": "rebind.example"}, {"Origin": "https://evil.example"}):
            refused = httpx.get(f"{base}/healthz", headers=headers, timeout=30)
            assert refused.status_code == 403 and refused.json()["code"] == "ForbiddenHost", (headers, refused.text)
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    out += rest
    assert "given-ak" not in out  # a user-supplied key is never printed
    assert creds["secret_key"] in out and "only time they are printed" in out


def _wait_for_token(base: str, secret: str, proc: subprocess.Popen[str]) -> httpx.Response:
    """The token answer once the server is up (its socket queues connections while the app starts)."""
    params = {"grant_type": "client_credentials", "client_id": "given-ak", "client_secret": secret}
    for _ in range(600):
        assert proc.poll() is None, "qfnb serve exited"
        try:
            return httpx.post(f"{base}/oauth/2.0/token", params=params, timeout=30)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("qfnb serve never answered")


def test_a_platform_on_a_network_address_refuses_web_pages_and_serves_programs(tmp_path: Path) -> None:
    """``qfnb serve --host 0.0.0.0`` had no Origin check: a page in a browser on the network could send the
    requests a browser sends unasked (a form's POST with an access token in its query). Programs send no
    Origin and pass; any Origin is refused before a route runs. On loopback the Host/Origin guard applies."""
    settings = Settings.from_env(data_dir=tmp_path, env={})
    app = create_app(settings, FakeRegistry())
    assert isinstance(host_guard(app, "0.0.0.0"), NoWebPages) and isinstance(host_guard(app, "::1"), LoopbackOnly)

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=host_guard(app, "0.0.0.0"))
        async with httpx.AsyncClient(transport=transport, base_url="http://gpu-box.lan:8866") as client:
            creds = settings.credentials
            token = (await client.post("/oauth/2.0/token", params={
                "grant_type": "client_credentials", "client_id": creds.api_key,
                "client_secret": creds.secret_key})).json()["access_token"]
            chat = [client.post(MODEL_API_PREFIX + "/chat/tiny-chat", params={"access_token": token},
                                json={"messages": [{"role": "user", "content": "hi"}]}, headers=headers)
                    for headers in ({}, {"Origin": "http://gpu-box.lan:8866"}, {"Origin": "null"})]
            return [*(await asyncio.gather(*chat)), await client.get("/healthz", headers={"Origin": "https://x.io"})]

    program, same_name, sandboxed, health = asyncio.run(go())
    assert program.json()["result"] == "tiny-chat: hi"  # a program, on any Host name
    for refused in (same_name, sandboxed, health):  # a page, even one served under the platform's own name
        assert refused.status_code == 403 and refused.json()["code"] == "ForbiddenOrigin", refused.text
