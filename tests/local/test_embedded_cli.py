"""Contract 1 (embedded platform) and ``qfnb serve``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from platform_doubles import FakeRegistry

from qfnb.cli import is_loopback
from qfnb.local import embedded
from qfnb.protocol.routes import MODEL_API_PREFIX

REPO = Path(__file__).resolve().parents[2]


def test_ensure_started_once_with_persistent_credentials(tmp_path: Path) -> None:
    info = embedded.ensure_started(tmp_path, registry=FakeRegistry())
    try:
        assert embedded.ensure_started(tmp_path) is info
        assert info.base_url.startswith("http://127.0.0.1:")
        creds_file = tmp_path / "credentials.json"
        assert creds_file.stat().st_mode & 0o777 == 0o600
        assert json.loads(creds_file.read_text())["secret_key"] == info.secret_key
        text = repr(info)
        assert info.secret_key not in text and info.iam_secret_key not in text and info.api_key in text
        assert info.default_models["chat"] == "Qwen2.5-Coder-0.5B-Instruct"
        tok = httpx.post(info.base_url + "/oauth/2.0/token", params={
            "grant_type": "client_credentials", "client_id": info.api_key, "client_secret": info.secret_key}).json()
        answer = httpx.post(info.base_url + MODEL_API_PREFIX + "/chat/tiny-chat",
                            params={"access_token": tok["access_token"]},
                            json={"messages": [{"role": "user", "content": "hi"}]}).json()
        assert answer["result"] == "tiny-chat: hi"
    finally:
        embedded.stop(tmp_path)
    again = embedded.ensure_started(tmp_path, registry=FakeRegistry())
    try:
        assert again.secret_key == info.secret_key and again is not info
    finally:
        embedded.stop(tmp_path)


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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "qfnb.cli", "serve", "--port", str(port), "--data-dir",
                             str(tmp_path), "--log-level", "warning"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=str(REPO))
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                httpx.post(f"http://127.0.0.1:{port}/oauth/2.0/token")
                break
            except httpx.TransportError:
                time.sleep(0.2)
        creds = json.loads((tmp_path / "credentials.json").read_text())
        ok = httpx.post(f"http://127.0.0.1:{port}/oauth/2.0/token", params={
            "grant_type": "client_credentials", "client_id": "given-ak", "client_secret": creds["secret_key"]})
        assert ok.status_code == 200 and ok.json()["access_token"].startswith("24.")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"QIANFAN_BASE_URL=http://127.0.0.1:{port}" in out
    assert "given-ak" not in out  # a user-supplied key is never printed
    assert creds["secret_key"] in out and "only time they are printed" in out
