"""The protocol layer: message validation rules, parameter ranges, SSE codec, catalog."""

from __future__ import annotations

import pytest

from qfnb.protocol import ErrorCode, ProtocolError, validate_messages
from qfnb.protocol.wires.codec.sse import SSEDecoder, encode_event
from qfnb.protocol.wires.qianfan.inference import (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    Text2ImageRequest,
    parse_request,
)
from qfnb.protocol.wires.qianfan.routes import Target, builtin_endpoint, default_model


def u(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def a(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def test_valid_history_passes_through() -> None:
    msgs = [u("hi"), a("hello"), u("how are you?")]
    assert validate_messages(msgs) == msgs


@pytest.mark.parametrize(
    ("messages", "field", "needle"),
    [
        ([], "messages", "empty"),
        ("hi", "messages", "list"),
        ([a("x")], "messages[0].role", "expected 'user'"),
        ([u("x"), u("y")], "messages[1].role", "alternate"),
        ([u("x"), a("y")], "messages", "odd number"),
        ([{"role": "system", "content": "be nice"}, u("x")], "messages[0].role", "system="),
        ([{"role": "bot", "content": "x"}], "messages[0].role", "unknown role"),
        ([u("")], "messages[0].content", "empty"),
        ([{"role": "user", "content": 3}], "messages[0].content", "string"),
        ([u("x"), {"role": "function", "content": "{}"}, u("y")], "messages[1].name", "name"),
        ([42], "messages[0]", "dict"),
    ],
)
def test_bad_history_names_the_field(messages: object, field: str, needle: str) -> None:
    with pytest.raises(ProtocolError) as info:
        validate_messages(messages)
    assert info.value.field == field
    assert needle in str(info.value)
    assert info.value.code == ErrorCode.INVALID_MESSAGES


def test_function_turn_and_function_call_are_accepted() -> None:
    msgs = [
        u("weather?"),
        {"role": "assistant", "content": "", "function_call": {"name": "w", "arguments": "{}"}},
        u("and tomorrow?"),
    ]
    assert len(validate_messages(msgs)) == 3
    msgs2 = [u("weather?"), {"role": "function", "name": "w", "content": '{"t": 1}'}, u("thanks")]
    assert len(validate_messages(msgs2)) == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": 1.5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"penalty_score": 3}, "penalty_score"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"stop": "END"}, "stop"),
        ({"stream": "yes"}, "stream"),
    ],
)
def test_parameter_ranges(params: dict[str, object], field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(ChatRequest, {"messages": [u("hi")], **params})
    assert info.value.field == field


def test_extra_model_specific_keys_are_kept() -> None:
    req = parse_request(ChatRequest, {"messages": [u("hi")], "disable_search": True, "temperature": 0.5})
    dumped = req.model_dump(exclude_none=True)
    assert dumped["disable_search"] is True and dumped["temperature"] == 0.5


def test_other_request_models_validate() -> None:
    with pytest.raises(ProtocolError, match="prompt"):
        parse_request(CompletionRequest, {"prompt": "  "})
    with pytest.raises(ProtocolError, match="at most 16"):
        parse_request(EmbeddingRequest, {"input": ["x"] * 17})
    with pytest.raises(ProtocolError) as info:
        parse_request(EmbeddingRequest, {"input": ["ok", ""]})
    assert info.value.field == "texts[1]"
    with pytest.raises(ProtocolError, match="size"):
        parse_request(Text2ImageRequest, {"prompt": "cat", "size": "big"})
    assert parse_request(Text2ImageRequest, {"prompt": "cat"}).size == "1024x1024"


def test_sse_decoder_handles_split_chunks_crlf_done_and_bare_errors() -> None:
    wire = (encode_event({"result": "你好", "is_end": False}) + encode_event({"result": "!", "is_end": True})).decode()
    wire = wire.replace("\n", "\r\n") + 'data: [DONE]\n\n{"error_code": 336100, "error_msg": "busy"}\n'
    dec = SSEDecoder()
    items = []
    for i in range(0, len(wire), 7):  # arbitrary chunk boundaries
        items.extend(dec.feed(wire[i : i + 7]))
    items.extend(dec.close())
    assert [it.data["result"] for it in items[:2]] == ["你好", "!"]
    assert items[2].done
    assert items[3].bare and items[3].data["error_code"] == 336100


def test_sse_event_names_and_last_event_without_blank_line() -> None:
    dec = SSEDecoder()
    items = list(dec.feed("event: ping\ndata: {\"a\": 1}\n\ndata: {\"b\": 2}"))
    items += list(dec.close())
    assert items[0].event == "ping" and items[0].data == {"a": 1}
    assert items[1].data == {"b": 2}


def test_sse_feed_consumes_its_chunk_even_if_the_result_is_not_iterated() -> None:
    dec = SSEDecoder()
    dec.feed('data: {"a": 1}\n')  # result ignored: the chunk must still be taken in
    items = dec.feed("\n")
    assert [it.data for it in items] == [{"a": 1}]


@pytest.mark.parametrize("chunks", [
    ['data: {"a": 1}\r\rdata: {"b": 2}\r\r'],
    ['data: {"a": 1}\r', '\rdata: {"b": 2}\r', "\r"],
    ['data: {"a": 1}\r', "\n\r\n", 'data: {"b": 2}\r\n\r\n'],  # \r\n split across chunks
])
def test_sse_lines_may_end_in_a_bare_carriage_return(chunks: list[str]) -> None:
    dec = SSEDecoder()
    items = [it for chunk in chunks for it in dec.feed(chunk)] + dec.close()
    assert [it.data for it in items] == [{"a": 1}, {"b": 2}]


def test_catalog_and_paths() -> None:
    assert builtin_endpoint("chat", "ernie-lite-8k") == "ernie-lite-8k"
    assert builtin_endpoint("chat", "ERNIE-Bot") == "completions"
    assert builtin_endpoint("chat", "no-such-model") is None
    assert default_model("chat") == "ERNIE-Lite-8K"


def test_parse_request_reports_missing_required_field() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(ChatRequest, {"temperature": 0.5})
    assert info.value.field == "messages"


def test_a_target_makes_its_own_path_below_the_model_api_prefix() -> None:
    assert Target("chat", "ernie-lite-8k").path == "/chat/ernie-lite-8k"
    assert Target("chat", "/chat/my-ep/").path == "/chat/my-ep"  # an endpoint given with its api type
    assert Target("plugin", "my_app").path == "/plugin/my_app/"
    assert Target("plugin", "/erniebot/plugins").path == "/erniebot/plugins"
    assert Target("plugin", "/erniebot/plugin").path == "/erniebot/plugin"
    assert Target("chat", "/custom/deep/path", verbatim=True).path == "/custom/deep/path"
