"""The local platform's state is private and its answers never leak: file modes, hashed
tokens, keys shown once, strong keys for a public bind, and a 4xx naming the field for every
kind of bad input (never a 500 with internals)."""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from platform_doubles import FakeRegistry
from platform_helpers import CREDS, Signer, client_for, console, make_settings, token
from starlette.testclient import TestClient

from qfnb.cli import public_bind_problem
from qfnb.local.server.app import create_app
from qfnb.local.server.routes.daemon import control
from qfnb.local.settings import make_private
from qfnb.protocol.platform.daemon import CONTROL_HEADER, STATUS_ROUTE
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

REPO = Path(__file__).resolve().parents[2]
CHAT = MODEL_API_PREFIX + "/chat/tiny-chat"
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture()
def client(tmp_path: Path):
    with client_for(tmp_path / "data") as c:
        yield c


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def test_an_existing_data_dir_is_made_private_on_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "data"
    (root / "jobs" / "task-1").mkdir(parents=True)
    (root / "jobs" / "task-1" / "train.jsonl").write_text("{}")
    os.chmod(root, 0o755)
    os.chmod(root / "jobs" / "task-1" / "train.jsonl", 0o644)
    with client_for(root):
        pass
    modes = _modes(root)
    assert modes["."] == 0o700 and modes["jobs/task-1/train.jsonl"] == 0o600
    assert all(m & 0o077 == 0 for m in modes.values()), modes
    assert sum("private" in r.getMessage() for r in caplog.records) == 1
    assert make_private(root) == 0  # nothing left to change


def test_daemon_writes_only_private_files(tmp_path: Path) -> None:
    """The real ``qfnb serve`` (umask 077): database, logs, credentials, runtime file, objects."""
    from qfnb._core.backend import daemon

    data = tmp_path / "data"
    platform = daemon.ensure_daemon(data, serve_args=["--registry", "tests.local.platform_doubles:FakeRegistry"])
    try:
        signer = Signer(ak=platform.access_key, sk=platform.iam_secret_key)
        put = httpx.put(platform.base_url + "/bos/b/k.jsonl", content=b'{"prompt": "p"}', auth=signer)
        assert put.status_code == 200
        # a foreign Host (DNS rebinding) or Origin (a web page) is refused whatever it carries
        assert httpx.get(platform.base_url + "/healthz").status_code == 200
        rebound = httpx.get(platform.base_url + "/healthz", headers={"Host": "evil.example"})
        assert rebound.status_code == 403 and "evil.example" in rebound.json()["message"]
        page = httpx.put(platform.base_url + "/bos/b/x.jsonl", content=b"{}", auth=signer,
                         headers={"Origin": "https://evil.example"})
        assert page.status_code == 403 and "Origin" in page.json()["message"]
        modes = _modes(data)
        assert {"platform.sqlite3", "daemon.log", "credentials.json", "runtime.json", "objects/b/k.jsonl"} <= set(modes)
        loose = {k: oct(m) for k, m in modes.items() if m & 0o077}
        assert not loose, loose
    finally:
        daemon.stop_daemon(data, force=True)


def test_tokens_are_stored_hashed_and_purged(client) -> None:
    issued = token(client)
    db = client.app.state.platform.store.path
    raw = db.read_bytes() + (db.with_name(db.name + "-wal").read_bytes() if db.with_name(db.name + "-wal").exists()
                             else b"")
    assert issued.encode() not in raw
    with sqlite3.connect(db) as conn:
        stored = [row[0] for row in conn.execute("SELECT hash FROM token_hashes")]
    assert stored and issued not in stored
    # what the database holds is not a token
    assert client.post(CHAT, params={"access_token": stored[0]}, json={"messages": MSG}).json()["error_code"] == 110
    assert client.post(CHAT, params={"access_token": issued}, json={"messages": MSG}).json()["result"]
    store = client.app.state.platform.store
    store.add_token("old-hash", CREDS.api_key, time.time() - 3 * 86_400)
    assert store.purge_tokens(time.time()) == 1 and store.token("old-hash") is None


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``qfnb serve`` until it answers, stop it, return what it printed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("QIANFAN_")}, **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "qfnb.cli", "serve", "--port", str(port), "--data-dir",
                             str(tmp_path), "--log-level", "warning", "--registry",
                             "tests.local.platform_doubles:FakeRegistry", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.2)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    return out


def test_generated_keys_are_printed_once_and_given_ones_never(tmp_path: Path) -> None:
    given = {"QIANFAN_SECRET_KEY": "user-supplied-secret-xyz"}
    first = _serve(tmp_path, env=given)
    creds = json.loads((tmp_path / "credentials.json").read_text())
    assert creds["secret_key"] in first and creds["api_key"] in first
    assert "user-supplied-secret-xyz" not in first and creds["iam_secret_key"] not in first
    again = _serve(tmp_path, env=given)
    assert str(tmp_path / "credentials.json") in again
    assert not any(v in again for v in (*creds.values(), "user-supplied-secret-xyz")), again


def test_a_public_bind_needs_strong_keys(tmp_path: Path) -> None:
    weak = {"api_key": None, "secret_key": None, "access_key": "a", "iam_secret_key": "b"}
    assert "too short" in (public_bind_problem(weak) or "")
    assert "too weak" in (public_bind_problem({**weak, "access_key": "access-key-1"}) or "")
    assert "too weak" in (public_bind_problem({**weak, "access_key": "access-key-1",
                                               "iam_secret_key": "a" * 40}) or "")
    assert public_bind_problem({**weak, "access_key": "access-key-1",
                                "iam_secret_key": "Zq8!vR2#kLm9$Tw4^Np7&Xs1*"}) is None
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("QIANFAN_")},
           "QIANFAN_ACCESS_KEY": "a", "QIANFAN_SECRET_KEY": "b"}
    proc = subprocess.run([sys.executable, "-m", "qfnb.cli", "serve", "--host", "0.0.0.0", "--data-dir",
                           str(tmp_path)], cwd=REPO, capture_output=True, env=env, text=True, timeout=60)
    assert proc.returncode == 2 and "too short" in proc.stderr and "b" not in proc.stdout


@pytest.mark.parametrize(("argv", "option"), [(["serve", "--sk", "x"], "--sk"),
                                              (["serve", "--secret-key", "x"], "--secret-key"),
                                              (["serve", "--daemon", "--ak", "x"], "--ak"),
                                              (["--sk", "x", "serve"], "--sk"),
                                              (["--secret-key", "x", "mcp", "--http"], "--secret-key")])
def test_a_long_running_server_refuses_a_secret_on_argv(argv: list[str], option: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """``ps`` shows argv to every user for the server's whole life: refused by name before it starts,
    pointing at the environment (and, for serve, the credentials file)."""
    from qfnb.cli import main

    assert main([*argv, *(["--data-dir", str(tmp_path)] if "serve" in argv else [])]) == 2
    err = capsys.readouterr().err
    assert f"{option} is refused" in err and "$QIANFAN_" in err and "x" not in err.split("refused", 1)[0]
    assert ("credentials.json" in err) == ("serve" in argv)
    assert not (tmp_path / "credentials.json").exists()  # nothing started


BAD_V1 = [
    ({"temperature": math.nan}, "temperature"),
    ({"top_p": math.inf}, "top_p"),
    ({"top_k": -5}, "top_k"),
    ({"top_k": 2**40}, "top_k"),
    ({"seed": 2**70}, "seed"),
    ({"penalty_score": 7}, "penalty_score"),
    ({"max_output_tokens": 10**12}, "max_output_tokens"),
    ({"max_output_tokens": 2**70}, "max_output_tokens"),
    ({"stop": ["x"] * 9}, "stop"),
]


@pytest.mark.parametrize(("extra", "field"), BAD_V1)
def test_v1_bad_sampling_values_name_the_field(client, extra: dict, field: str) -> None:  # type: ignore[type-arg]
    resp = client.post(CHAT, params={"access_token": token(client)},
                       content=json.dumps({"messages": MSG, **extra}, allow_nan=True))
    body = resp.json()
    assert resp.status_code == 200 and body["error_code"] == 336003 and field in body["error_msg"], body


BAD_V2 = [
    ({"temperature": -3}, "temperature"),
    ({"temperature": 50}, "temperature"),
    ({"top_p": 7}, "top_p"),
    ({"max_tokens": -5}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"stream_options": "x"}, "stream_options"),
    ({"seed": 2**70}, "seed"),
    ({"temperature": math.nan}, "temperature"),
]


def _bearer(client) -> str:  # type: ignore[no-untyped-def]
    return str(client.get("/v1/BCE-BEARER/token", params={"expireInSeconds": 600}, auth=Signer()).json()["token"])


@pytest.mark.parametrize(("extra", "field"), BAD_V2)
def test_v2_bad_values_name_the_field(client, extra: dict, field: str) -> None:  # type: ignore[type-arg]
    resp = client.post("/v2/chat/completions", headers={"Authorization": f"Bearer {_bearer(client)}"},
                       content=json.dumps({"model": "tiny-chat", "messages": MSG, **extra}, allow_nan=True))
    assert resp.status_code == 400 and field in resp.json()["error"]["message"], resp.text


def test_malformed_requests_get_4xx_and_the_connection_survives(client) -> None:
    tok = token(client)
    deep = "[" * 50_000 + "]" * 50_000
    resp = client.post(CHAT, params={"access_token": tok}, content=deep)
    assert resp.status_code == 200 and resp.json()["error_code"] == 336002, resp.text
    resp = client.post("/v2/chat/completions", headers={"Authorization": f"Bearer {_bearer(client)}"},
                       content='{"model": "tiny-chat", "messages": ' + deep + "}")
    assert resp.status_code == 400 and "Traceback" not in resp.text
    # ids beyond SQLite's integers and over-long object keys are plain 'not found' / 'invalid'
    for value in (2**63, 2**64 + 5, "9" * 40):
        got = console(client, "/wenxinworkshop/service/detail", {"serviceId": value})
        assert "error_code" in got and "Overflow" not in json.dumps(got), got
    put = client.put("/bos/b/" + "k" * 300, content=b"x", auth=Signer())
    assert put.status_code == 400 and put.headers.get("X-Bce-Error-Code") == "InvalidObjectName"
    assert client.post(CHAT, params={"access_token": tok}, json={"messages": MSG}).json()["result"]


def test_resource_names_and_signature_expiry(client) -> None:
    version = client.app.state.platform.store.all("versions")[0]
    bad = console(client, "/wenxinworkshop/service/apply", {"modelId": version["modelId"],
                                                            "modelVersionId": version["id"], "name": "..",
                                                            "uri": "ok_uri"})
    assert "name" in bad["error_msg"]
    bad = console(client, "/wenxinworkshop/service/apply", {"modelId": version["modelId"],
                                                            "modelVersionId": version["id"], "name": "svc",
                                                            "uri": "../x"})
    assert "uri" in bad["error_msg"]
    long_lived = client.post(CHAT, json={"messages": MSG}, auth=Signer(expiration=100_000))
    assert long_lived.status_code == 400 and "1800" in long_lived.text


def test_healthz_says_only_up(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_an_object_key_under_an_existing_object_is_a_conflict_not_a_500(client) -> None:
    """Found by the fuzz suite: ``PUT b/0`` then ``PUT b/0/0`` raised NotADirectoryError (a 500)."""
    assert client.put("/bos/b/0", content=b"x", auth=Signer()).status_code == 200
    resp = client.put("/bos/b/0/0", content=b"y", auth=Signer())
    assert resp.status_code == 409 and resp.headers["X-Bce-Error-Code"] == "ObjectConflict"


def test_a_credential_with_non_ascii_characters_is_refused_not_a_500(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``hmac.compare_digest`` raises TypeError on a ``str`` holding non-ASCII characters: a client id, an
    access key, a signature or a control token such as ``é`` (anyone may send one) was a 500 and a
    traceback in the log, not the refusal."""
    oauth = client.post("/oauth/2.0/token", params={"grant_type": "client_credentials", "client_id": "é",
                                                   "client_secret": "x"})
    assert oauth.status_code == 401 and oauth.json()["error"] == "invalid_client"
    oauth = client.post("/oauth/2.0/token", params={"grant_type": "client_credentials", "client_id": CREDS.api_key,
                                                   "client_secret": "sécret"})
    assert oauth.status_code == 401 and oauth.json()["error"] == "invalid_client"
    date = "2024-01-01T00:00:00Z"
    for authorization in (f"bce-auth-v1/accèss/{date}/300/host/{'0' * 64}",
                          f"bce-auth-v1/{CREDS.access_key}/{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
                          f"/300/host/{'é' * 64}"):
        signed = client.post("/v2/dataset", params={"Action": "DescribeDatasets"}, json={},
                             headers={b"authorization": authorization.encode("latin-1")})
        assert signed.status_code == 401, signed.text
    app = create_app(make_settings(tmp_path / "other"), FakeRegistry(),
                     extra_routes=control.routes("the-token", time.time(), "test", lambda: None))
    with TestClient(app) as other:
        refused = other.get(STATUS_ROUTE, headers={CONTROL_HEADER.encode(): "tökén".encode("latin-1")})
        assert refused.status_code == 403, refused.text


def test_a_request_path_cannot_forge_log_lines(client, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """The path is logged as the request named it (percent-decoded): a ``%0A`` in it wrote a line of the
    sender's choosing into daemon.log (``%1B``: a terminal escape), before any credential was checked."""
    forged = "%0A2025-01-01 00:00:00 WARNING qfnb.local: forged%1B[2J"
    caplog.set_level("INFO", logger="qfnb")
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    refused = client.get(f"/bos/b{forged}/k", headers={"Authorization": f"bce-auth-v1/x/{date}/300/host/{'0' * 64}"})
    assert refused.status_code == 401
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("qfnb")]
    assert any("rejected bce-auth-v1" in m for m in logged), logged
    assert not any("\n" in m or "\x1b" in m for m in logged), logged
