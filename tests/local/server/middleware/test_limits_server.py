"""The body caps on a real server (uvicorn on 127.0.0.1, engine doubles), as a load test would
try them: a 50 MB body is refused before it is read while chat goes on, the keep-alive connection
stays usable, and uploads stream to disk (a refused one leaves no file and no memory behind).
Timings are printed (-s); what is asserted is the order of events."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from platform_doubles import FakeRegistry

from qfnb.local.server.middleware import guard
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX
from qfnb.protocol.wires.qianfan.signing import bce_date, sign
from tests.fakes.local_platform import CREDS, served_platform

CHAT = MODEL_API_PREFIX + "/chat/tiny-chat"
FIFTY_MB = 50 * 1000 * 1000


@dataclass(frozen=True)
class Served:
    """The platform served on 127.0.0.1 with engine doubles, and its keys."""

    base_url: str
    data_dir: Path
    registry: FakeRegistry
    api_key: str = CREDS.api_key
    secret_key: str = CREDS.secret_key
    access_key: str = CREDS.access_key
    iam_secret_key: str = CREDS.iam_secret_key


@pytest.fixture()
def platform(tmp_path: Path) -> Iterator[Served]:
    data_dir = tmp_path / "data"
    with served_platform(data_dir) as served:
        yield Served(served.url, data_dir, served.registry)


def _token(p: Served) -> str:
    resp = httpx.post(p.base_url + "/oauth/2.0/token", params={"grant_type": "client_credentials",
                                                              "client_id": p.api_key, "client_secret": p.secret_key})
    return str(resp.json()["access_token"])


def _signed_headers(p: Served, method: str, path: str) -> dict[str, str]:
    host = p.base_url.removeprefix("http://")
    ts = bce_date()
    headers = {"host": host, "content-type": "application/json", "x-bce-date": ts}
    headers["authorization"] = sign(method, path, {}, headers, p.access_key, p.iam_secret_key, ts, 300)
    return headers


class RawConnection:
    """One keep-alive HTTP/1.1 connection driven by hand (a client that keeps sending)."""

    def __init__(self, p: Served) -> None:
        host, port = p.base_url.removeprefix("http://").split(":")
        self.host = f"{host}:{port}"
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.buf = b""

    def send_head(self, method: str, target: str, headers: dict[str, str]) -> None:
        headers = {"host": self.host, **{k.lower(): v for k, v in headers.items()}}
        lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def read_response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._more()
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(status_line.split()[1]), headers, body

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buf += data

    def close(self) -> None:
        self.sock.close()


def _send_zeros(sock: socket.socket, total: int, *, chunked: bool = False, size: int = 1 << 20) -> threading.Thread:
    """Send ``total`` bytes on a thread (the server may answer before it reads them)."""
    block = b"x" * size

    def run() -> None:
        left = total
        try:
            while left > 0:
                piece = block[:min(size, left)]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                left -= len(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_50mb_body_is_refused_fast_while_chat_goes_on(platform: Served, chunked: bool) -> None:
    tok = _token(platform)
    conn = RawConnection(platform)
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(FIFTY_MB)}
    chats: list[float] = []

    def chat() -> None:
        with httpx.Client(base_url=platform.base_url, timeout=30) as c:
            for _ in range(5):
                t0 = time.perf_counter()
                got = c.post(CHAT, params={"access_token": tok},
                             json={"messages": [{"role": "user", "content": "hello"}]}).json()
                assert got["result"], got
                chats.append(time.perf_counter() - t0)

    try:
        started = time.perf_counter()
        conn.send_head("POST", f"{CHAT}?access_token={tok}", {"Content-Type": "application/json", **framing})
        sender = _send_zeros(conn.sock, FIFTY_MB, chunked=chunked)
        chatter = threading.Thread(target=chat)
        chatter.start()
        status, _, body = conn.read_response()
        refused_in = time.perf_counter() - started
        unread = sender.is_alive()  # the client is still sending: the answer came before the body was read
        chatter.join(30)
        print(f"\n50 MB body ({'chunked' if chunked else 'Content-Length'}) refused in {refused_in * 1000:.0f} ms; "
              f"concurrent chats {max(chats) * 1000:.0f} ms at most")
        assert status == 200 and b'"error_code":336003' in body.replace(b" ", b""), body[:300]
        assert unread and len(chats) == 5
        # the client finishes sending; the server discards it and the connection serves the next request
        sender.join(60)
        conn.send_head("GET", "/healthz", {})
        assert conn.read_response()[0] == 200
    finally:
        conn.close()


def test_a_10001_message_history_is_refused_in_milliseconds(platform: Served) -> None:
    tok = _token(platform)
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(10_001)]
    platform.registry.chat("tiny-chat")
    engine = platform.registry.engines["tiny-chat"]
    with httpx.Client(base_url=platform.base_url, params={"access_token": tok}, timeout=30) as c:
        c.post(CHAT, json={"messages": history[:1]})  # warm: token checked, engine loaded
        took = []
        for _ in range(3):
            t0 = time.perf_counter()
            got = c.post(CHAT, json={"messages": history}).json()
            took.append(time.perf_counter() - t0)
            assert got["error_code"] == 336006 and got["error_msg"].startswith("messages"), got
        assert len(engine.calls) == 1  # refused before anything reached the engine
        assert c.post(CHAT, json={"messages": history[:1]}).json()["result"]
    assert len(engine.calls) == 2
    print(f"\n10,001 messages refused in {min(took) * 1000:.0f} ms (best of 3)")


def _objects(p: Served) -> list[Path]:
    return [f for f in (p.data_dir / "objects").rglob("*") if f.is_file()]


def _put(p: Served, key: str, content: Any) -> httpx.Response:
    path = f"/bos/b/{key}"
    return httpx.put(p.base_url + path, content=content, headers=_signed_headers(p, "PUT", path), timeout=60)


def _stream(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    block = b"y" * size
    for start in range(0, total, size):
        yield block[:min(size, total - start)]


def _rss() -> int:
    return int(psutil.Process(os.getpid()).memory_info().rss)


def test_uploads_stream_to_disk_and_a_refused_one_leaves_nothing(platform: Served,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    mib = 1 << 20
    monkeypatch.setattr(guard, "MAX_UPLOAD_BYTES", 64 * mib)
    # declared over the cap: refused before a byte is read
    conn = RawConnection(platform)
    try:
        conn.send_head("PUT", "/bos/b/declared", {**_signed_headers(platform, "PUT", "/bos/b/declared"),
                                                  "Content-Length": str(600 * 1000 * 1000)})
        status, headers, _ = conn.read_response()  # answered though not one body byte was sent
        assert status == 400 and headers["x-bce-error-code"] == "EntityTooLarge"
    finally:
        conn.close()
    # chunked over the cap: read up to the cap, refused, the partial file removed
    before = _rss()
    resp = _put(platform, "chunked", _stream(96 * mib))
    assert resp.status_code == 400 and resp.headers["X-Bce-Error-Code"] == "EntityTooLarge", resp.text
    assert _objects(platform) == []
    # under the cap: streamed to a private file, never held whole
    resp = _put(platform, "fits", _stream(48 * mib))
    grown = (_rss() - before) / mib
    print(f"\nRSS grew {grown:.1f} MiB over a refused 96 MiB and a stored 48 MiB upload")
    assert resp.status_code == 200 and resp.headers["ETag"] == str(48 * mib)
    (stored,) = _objects(platform)
    assert stored.name == "fits" and stored.stat().st_size == 48 * mib
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert grown < 40, f"RSS grew {grown:.1f} MiB: the upload was buffered"
    got = httpx.get(platform.base_url + "/bos/b/fits", headers=_signed_headers(platform, "GET", "/bos/b/fits"))
    assert len(got.content) == 48 * mib
