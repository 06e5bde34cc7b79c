"""Helpers for local-platform route tests: a platform on a temp dir with test doubles."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from platform_doubles import FakeRegistry
from starlette.testclient import TestClient

from qfnb.local.server.app import create_app
from qfnb.local.settings import Credentials, Settings
from qfnb.protocol.wires.qianfan.signing import bce_date, sign

FAKE_WORKER = Path(__file__).with_name("fake_worker.py")
CREDS = Credentials(api_key="test-ak", secret_key="test-sk", access_key="test-access", iam_secret_key="test-secret")


def make_settings(data_dir: Path, **kw: Any) -> Settings:
    return Settings(data_dir=data_dir, credentials=CREDS, worker_command=(sys.executable, str(FAKE_WORKER)),
                    poll_interval=0.05, **kw)


class Signer:
    """bce-auth-v1 signing for TestClient requests (what the client does)."""

    def __init__(self, ak: str = CREDS.access_key, sk: str = CREDS.iam_secret_key, when: float | None = None,
                 expiration: int = 300) -> None:
        self.ak, self.sk, self.when, self.expiration = ak, sk, when, expiration

    def __call__(self, request: Any) -> Any:
        ts = bce_date(self.when)
        request.headers["x-bce-date"] = ts
        # a nonce signed in, as qfnb's client does: the platform refuses a signature seen before on
        # a call that changes state
        nonce = str(uuid.uuid4())
        headers = {"host": request.headers["host"], "content-type": "application/json", "x-bce-date": ts,
                   "x-bce-request-id": nonce}
        request.headers["content-type"] = "application/json"
        request.headers["x-bce-request-id"] = nonce
        params = dict(request.url.params)
        request.headers["authorization"] = sign(request.method, request.url.path, params, headers, self.ak, self.sk, ts,
                                             self.expiration)
        return request


def console(client: TestClient, path: str, body: dict[str, Any], **params: str) -> dict[str, Any]:
    resp = client.post(path, json=body, params=params, auth=Signer())
    return resp.json()  # type: ignore[no-any-return]


def token(client: TestClient) -> str:
    resp = client.post("/oauth/2.0/token", params={"grant_type": "client_credentials", "client_id": CREDS.api_key,
                                                  "client_secret": CREDS.secret_key}, json={})
    return str(resp.json()["access_token"])


def bearer(client: TestClient, seconds: int = 600) -> str:
    """A minted v2 bearer token (an OAuth access token does not work on v2)."""
    resp = client.get("/v1/BCE-BEARER/token", params={"expireInSeconds": seconds}, auth=Signer())
    return str(resp.json()["token"])


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def client_for(data_dir: Path, registry: FakeRegistry | None = None, **kw: Any) -> TestClient:
    return TestClient(create_app(make_settings(data_dir, **kw), registry or FakeRegistry()),
                      base_url="http://127.0.0.1:8123")


def wait_up(url: str, proc: Any, timeout: float = 120.0, log: Path | None = None) -> None:
    """Wait until ``url`` answers 200 while ``proc`` (a server this test started) is alive."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text() if log else url
        time.sleep(0.1)


#: what ``qfnb serve --port 0`` prints once it has bound its port
SERVE_URL = re.compile(rb"QIANFAN_BASE_URL=http://127\.0\.0\.1:(\d+)")


def spawn_reporting(argv: list[str], log_path: Path, port_of: Callable[[bytes], int | None], timeout: float = 180,
                    **popen: Any) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server that binds a free port itself and logs it; ``port_of(log bytes)`` finds it."""
    with log_path.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **popen)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        port = port_of(log_path.read_bytes())
        if port:
            return proc, int(port)
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"{argv[0]} reported no port")


def serve_port(log: bytes) -> int | None:
    found = SERVE_URL.search(log)
    return int(found.group(1)) if found else None
