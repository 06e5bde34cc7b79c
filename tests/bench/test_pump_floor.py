"""bench/pump_floor.py: each engine event becomes a v1 chunk, written as it is read."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.bench.stand_ins import ChunkedUpstream, stand_in

WORDS = [" one", " two", " three", "", " four"]  # an event without text (a finish) is not a chunk


class _Engine(ChunkedUpstream):
    """Streams ``WORDS`` as llama-server's /v1/completions events, then ``[DONE]``."""

    def pieces(self, body: bytes) -> list[bytes]:
        events = [{"choices": [{"text": w, "index": 0, "finish_reason": None if w else "length"}]} for w in WORDS]
        return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


@pytest.fixture
def pumped() -> Iterator[str]:
    with stand_in("pump_floor.py", _Engine) as url:
        yield url


def test_each_engine_event_is_a_v1_chunk_written_as_it_is_read(pumped: str) -> None:
    arrived: list[tuple[float, dict[str, object]]] = []
    with httpx.Client(timeout=10) as client, \
            client.stream("POST", pumped + "/v1/completions", json={"prompt": "x", "stream": True}) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: "):
                arrived.append((time.monotonic(), json.loads(line[6:])))
    chunks = [chunk for _, chunk in arrived]
    assert [c["result"] for c in chunks] == [w for w in WORDS if w]
    assert [c["sentence_id"] for c in chunks] == [1, 2, 3, 4]
    assert chunks[-1]["usage"] == {"prompt_tokens": 0, "completion_tokens": 4, "total_tokens": 4}
    # the engine paused 50 ms between events: each was passed on as it came, not at the end
    assert arrived[-1][0] - arrived[0][0] > 0.15
