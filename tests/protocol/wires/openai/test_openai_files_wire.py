"""OpenAI's wires as data: a fine-tuning file's format read from its lines (chat, preference, prompts; a bad
line refused naming the line and the field, a file of two formats refused), a chat file as the platform's
single-turn SFT rows, and an OpenAI chat body's unknown or renamed fields refused by name."""

from __future__ import annotations

import json

import pytest

from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.wires.openai.fine_tune_files import FileShape, FormatProblem, inspect_lines, sft_rows
from qfnb.protocol.wires.openai.requests import check_openai_chat

CHAT_LINE = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": "4"}]}
PREFERENCE_LINE = {"input": {"messages": [{"role": "user", "content": "hi"}]},
                   "preferred_output": [{"role": "assistant", "content": "hello"}],
                   "non_preferred_output": [{"role": "assistant", "content": "go away"}]}
PROMPT_LINE = {"messages": [{"role": "user", "content": "Name a prime."}], "answer": "7"}


def lines(*items: object) -> list[str]:
    return [json.dumps(item) + "\n" for item in items]


@pytest.mark.parametrize(("item", "shape"), [(CHAT_LINE, FileShape("chat", 2)),
                                             (PREFERENCE_LINE, FileShape("preference", 2)),
                                             (PROMPT_LINE, FileShape("prompts", 2))])
def test_a_files_format_and_method_are_read_from_its_lines(item: object, shape: FileShape) -> None:
    assert inspect_lines([*lines(item), "\n", *lines(item)]) == shape
    assert shape.method == {"chat": "supervised", "preference": "dpo", "prompts": "reinforcement"}[shape.format]


def test_a_bad_line_is_refused_naming_its_line_and_field() -> None:
    bad = {"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "beep"}]}
    with pytest.raises(FormatProblem, match=r"^line 2: messages\[1\]\.role") as caught:
        inspect_lines(lines(CHAT_LINE, bad))
    assert (caught.value.line, caught.value.field) == (2, "messages[1].role")
    with pytest.raises(FormatProblem, match=r"^line 1: .*no examples"):
        inspect_lines(["\n"])


def test_a_file_holds_one_format() -> None:
    with pytest.raises(FormatProblem, match=r"^line 2: is in the preference format but .* the chat format"):
        inspect_lines(lines(CHAT_LINE, PREFERENCE_LINE))


def test_a_chat_file_becomes_single_turn_sft_rows() -> None:
    two_turns = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                              {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}
    assert list(sft_rows(lines(CHAT_LINE, two_turns))) == [
        {"prompt": "2+2?", "response": "4", "system": "Be brief."},
        {"prompt": "a", "response": "b"}, {"prompt": "c", "response": "d"}]
    with pytest.raises(FormatProblem, match="not the chat format"):
        list(sft_rows(lines(PREFERENCE_LINE)))


def test_an_openai_chat_body_refuses_unknown_and_renamed_fields_by_name() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    check_openai_chat(body)
    with pytest.raises(ProtocolError) as renamed:
        check_openai_chat({**body, "functions": []})
    assert "functions" in str(renamed.value) and "tools" in str(renamed.value)
    with pytest.raises(ProtocolError) as unknown:
        check_openai_chat({**body, "temprature": 0.5})
    assert "temprature" in str(unknown.value)
    with pytest.raises(ProtocolError, match="stop"):
        check_openai_chat({**body, "stop": ["a", ""]})
