"""The prompt hub's documents (qfnb.resources.prompts.hub) beyond one Prompt: a dict, a list and an enum go
through ``dumps``/``loads`` as the official SDK writes them (each type beside its official module), a type
nested inside a document is refused like one at its top, and a variable left in a rendered template names
itself (qfnb.resources.prompts.template)."""

from __future__ import annotations

import pytest

from qfnb._core.errors import ValidationError
from qfnb.resources.console.consts import PromptSceneType
from qfnb.resources.prompts.hub import dumps, loads
from qfnb.resources.prompts.template import Prompt, PromptLabel


def test_nested_values_round_trip_with_their_official_modules() -> None:
    value = {"labels": [PromptLabel(2, "eval", "blue"), PromptLabel("x", "draft")],
             "scene": PromptSceneType.Text2Image, "count": 3, "names": ["a", "b"]}
    document = dumps(value)
    assert document["type"] == "dict"
    assert document["args"]["scene"] == {"module": "qianfan.consts", "type": "PromptSceneType",
                                         "args": {"value": PromptSceneType.Text2Image.value}}
    assert {label["module"] for label in document["args"]["labels"]} == {"qianfan.common.prompt.prompt"}
    assert loads(document) == value


def test_an_unknown_type_deep_in_a_document_is_refused() -> None:
    nested = {"type": "dict", "args": {"inner": [{"module": "os", "type": "system", "args": {"command": "id"}}]}}
    with pytest.raises(ValidationError, match="loads only"):
        loads(nested)


def test_a_prompt_with_double_braces_renders_and_names_a_missing_variable() -> None:
    prompt = Prompt(template="{{greeting}}, {{name}}!", identifier="{{}}")
    assert prompt.variables == ["greeting", "name"]
    assert prompt.render(greeting="Hello", name="Ada") == ("Hello, Ada!", None)
    with pytest.raises(ValidationError) as missing:
        prompt.render(greeting="Hi")
    assert "`name`" in str(missing.value)
