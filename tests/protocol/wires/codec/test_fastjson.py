"""qfnb.protocol.wires.codec.fastjson reads and writes what json does, orjson or not."""

from __future__ import annotations

import enum
import json
import math
from typing import Any

import pytest

from qfnb.protocol.wires.codec import fastjson


class Color(enum.StrEnum):
    RED = "red"


READ = [b'{"x":[0.1,2,-3e-05],"t":"\xe4\xb8\xad"}', b'{"a":NaN,"b":-Infinity}', b'"\\ud800"', b'"\\ud83d\\ude00"',
        b"123456789012345678901234567890", b'{"n":null,"ok":true}', '{"s":"é"}',
        b'[0.033898305,18446744073709551616]', b'{"v":[9223372036854775807,-1.2345678e-05]}']


@pytest.mark.parametrize("data", READ)
def test_reads_the_values_json_reads(data: bytes | str) -> None:
    got, want = fastjson.loads(data), json.loads(data)
    assert repr(got) == repr(want)  # repr: NaN equals itself this way, and an int stays an int


@pytest.mark.parametrize("data", [b"[1,2", b"", b"{'a': 1}"])
def test_refuses_what_json_refuses(data: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        fastjson.loads(data)


WRITE: list[Any] = [{"t": "中文", "v": [0.1, 1e300, -2]}, {"a": math.nan}, [math.inf, None], {1: 2}, 2**70,
                    {"c": Color.RED}, {"nested": {"deep": [{"x": -math.inf}]}}]


@pytest.mark.parametrize("obj", WRITE)
def test_writes_the_text_json_writes(obj: Any) -> None:
    assert fastjson.dumps_text(obj) == json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize("obj", [*WRITE, {"e": "😀 \u2028"}, {"plain": [1, "a", True]}])
def test_writes_the_ascii_json_writes(obj: Any) -> None:
    assert fastjson.dumps_ascii(obj) == json.dumps(obj, separators=(",", ":")).encode()


def test_refuses_to_write_what_json_refuses() -> None:
    with pytest.raises(TypeError):
        fastjson.dumps_text({"s": {1, 2}})


def test_without_orjson_it_is_the_standard_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastjson, "orjson", None)
    assert fastjson.loads(b'{"a":[1,2.5]}') == {"a": [1, 2.5]}
    assert fastjson.dumps_text({"a": "中"}) == '{"a":"中"}'
