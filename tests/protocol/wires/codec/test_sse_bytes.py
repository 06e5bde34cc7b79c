"""The byte-level SSE splitter (DataEvents) hands on what the text decoder (SSEDecoder) reads, at any
chunk boundary and line ending; and encode_event writes what json writes."""

from __future__ import annotations

import codecs
import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qfnb.protocol.wires.codec.sse import DataEvents, SSEDecoder, encode_event

_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8)


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[Any]]:
    """An SSE stream (comments, event names, one or many data lines an event, any line ending) and the
    JSON values its events carry, in order."""
    values = draw(st.lists(_VALUES, max_size=6))
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    parts = []
    for value in values:
        text = json.dumps(value, ensure_ascii=False, indent=draw(st.sampled_from([None, 1])))
        lines = [f"data:{draw(st.sampled_from(['', ' ']))}{line}" for line in text.split("\n")]
        if draw(st.booleans()):
            lines.insert(0, ": keep-alive")
        if draw(st.booleans()):
            lines.insert(0, "event: chunk")
        parts.append(eol.join(lines) + eol + eol)
    return "".join(parts).encode(), values


@settings(max_examples=200, deadline=None)
@given(_streams(), st.lists(st.integers(1, 40), max_size=12))
def test_the_events_data_at_any_chunk_boundary(stream: tuple[bytes, list[Any]], cuts: list[int]) -> None:
    wire, values = stream
    events, chunks, at = DataEvents(), [], 0
    for size in [*cuts, len(wire)]:  # byte cuts: a \r\n or a multi-byte character may be split
        chunks.append(wire[at:at + size])
        at += size
    got = [json.loads(data) for chunk in chunks for data in events.feed(chunk)]
    got += [json.loads(data) for data in events.close()]
    assert got == values
    decoder, text = SSEDecoder(), codecs.getincrementaldecoder("utf-8")()
    read = [item.data for chunk in chunks for item in decoder.feed(text.decode(chunk))]
    assert read + [item.data for item in decoder.close()] == got


def test_the_usual_event_and_done() -> None:
    events = DataEvents()
    assert events.feed(b'data: {"a":1}\n\ndata: [DONE]') == [b'{"a":1}']
    assert events.feed(b"\n\n") == [b"[DONE]"]
    assert events.feed(b": ping\n\nevent: x\n\ndata: 1\r") == []
    assert events.close() == [b"1"]


@settings(max_examples=100, deadline=None)
@given(_VALUES)
def test_encode_event_writes_what_json_writes(value: Any) -> None:
    data = {"v": value}
    want = "data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n\n"
    assert encode_event(data) == want.encode()
    assert encode_event(data, "delta") == ("event: delta\n" + want).encode()


def test_encode_event_keeps_what_only_json_writes() -> None:
    data = {"x": -math.inf, "n": None, "big": 2**70}
    assert encode_event(data) == ("data: " + json.dumps(data, separators=(",", ":")) + "\n\n").encode()
