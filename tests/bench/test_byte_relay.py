"""bench/byte_relay.py: what a client sends reaches the upstream, and a streamed answer comes back
byte for byte, piece by piece as the upstream writes it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.bench.stand_ins import ChunkedUpstream, stand_in

PIECES = [f"data: {{\"n\": {i}}}\n\n".encode() for i in range(5)]


class _Streaming(ChunkedUpstream):
    def pieces(self, body: bytes) -> list[bytes]:
        return [b"echo: " + body + b"\n\n", *PIECES]


@pytest.fixture
def relayed() -> Iterator[str]:
    with stand_in("byte_relay.py", _Streaming) as url:
        yield url


def test_a_streamed_answer_passes_through_the_relay_unchanged_and_as_it_is_written(relayed: str) -> None:
    arrived: list[tuple[float, bytes]] = []
    with httpx.Client(timeout=10) as client, client.stream("POST", relayed + "/x", content=b"hello") as resp:
        assert resp.status_code == 200
        for chunk in resp.iter_raw():
            arrived.append((time.monotonic(), chunk))
    body = b"".join(chunk for _, chunk in arrived)
    assert body == b"echo: hello\n\n" + b"".join(PIECES)
    # the upstream paused 50 ms between pieces: the relay passed them on as they came, not at the end
    assert len(arrived) >= 4 and arrived[-1][0] - arrived[0][0] > 0.15
