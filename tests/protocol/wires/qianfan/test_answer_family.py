"""One answer family (issue 46, item 4): the generated models of ``qfnb/protocol/wires/qianfan/answers.py`` are the
only answer models, the official names are aliases of them, and the house gives each public class
one definition (the official SDK's own homonyms aside, as ``bench/house_metrics.py`` counts)."""

from __future__ import annotations

import ast
import collections
import sys
from pathlib import Path

from qfnb import QfResponse
from qfnb.protocol.wires.qianfan import answers
from qfnb.protocol.wires.qianfan.answer import AnswerModel
from qfnb.resources import typing_client
from tests.source_trees import parse_source

REPO = Path(__file__).resolve().parents[4]


def test_the_official_names_are_the_answer_models() -> None:
    models = {cls for cls in vars(answers).values() if isinstance(cls, type) and issubclass(cls, AnswerModel)}
    assert typing_client.__all__ and all(getattr(typing_client, name) in models for name in typing_client.__all__)
    assert typing_client.Completion is answers.ChatAnswer and typing_client.CompletionChunk is answers.ChatChunk
    assert typing_client.ToolCall is answers.ToolCall and typing_client.CompletionUsage is answers.TokenUsage
    assert typing_client.ChoiceDelta is typing_client.ChatCompletionMessage is answers.ChoiceMessage


def test_a_response_reads_its_body_into_the_same_models() -> None:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}}
    resp = QfResponse(200, {}, body).with_answer(answers.ChatAnswer)
    assert type(resp.usage) is answers.TokenUsage and resp.usage == resp.parsed.usage
    assert resp.choices == resp.parsed.choices and type(resp.choices[0]) is answers.Choice
    assert type(resp.choices[0].message.tool_calls[0]) is typing_client.ToolCall
    assert resp.result == "" and resp["choices"] is body["choices"]  # the dict access stays the raw body


def test_each_public_class_is_defined_once() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import house_metrics
    finally:
        sys.path.remove(str(REPO / "bench"))
    defined: dict[str, set[str]] = collections.defaultdict(set)
    for path in sorted((REPO / "qfnb").rglob("*.py")):
        for node in parse_source(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                defined[node.name].add(str(path.relative_to(REPO)))
    twice = {name: sorted(where) for name, where in defined.items()
             if len(where) > 1 and house_metrics.OFFICIAL_HOMONYMS.get(name) != where}
    assert twice == {}
