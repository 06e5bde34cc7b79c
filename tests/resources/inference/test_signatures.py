"""The inference resources' public surface is typed: ``do``/``ado`` declare the official SDK's
parameters in its positional order, the documented body fields keyword-only, one ``**kwargs``
passthrough, a docstring per parameter, and ``stream``-dependent return types; the sync call
runs the async one's single implementation."""

from __future__ import annotations

import inspect
import typing
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from qfnb import ChatCompletion, Completion, Embedding, Plugin, Text2Image
from qfnb._core.config import Config
from qfnb._core.http.response import QfResponse
from qfnb._core.runtime import sync
from qfnb.protocol.wires.qianfan import answers
from qfnb.protocol.wires.qianfan.sampling import SamplingOptions
from qfnb.resources import Image2Text, Reranker
from qfnb.resources.inference.base import BaseInference
from qfnb.resources.inference.params import ChatCall, EmbeddingCall, InferenceCall, Text2ImageCall

RETRY = ["retry_count", "request_timeout", "request_id", "backoff_factor"]
#: the official SDK's positional parameters of ``do``/``ado`` (after ``self``), in order
OFFICIAL: dict[type[BaseInference[Any]], list[str]] = {
    ChatCompletion: ["messages", "model", "endpoint", "stream", *RETRY, "auto_concat_truncate",
                     "truncated_continue_prompt", "truncate_overlong_msgs"],
    Completion: ["prompt", "model", "endpoint", "stream", *RETRY],
    Embedding: ["texts", "model", "endpoint", *RETRY],
    Plugin: ["query", "plugins", "model", "endpoint", "stream", *RETRY],
    Text2Image: ["prompt", "model", "endpoint", "with_decode", *RETRY],
    Image2Text: ["prompt", "image", "model", "endpoint", "stream", *RETRY],
    Reranker: ["query", "documents", "top_n", "model", "endpoint", "retry_count", "request_timeout",
               "backoff_factor"],
}
#: documented body fields, keyword-only
KEYWORD_ONLY: dict[type[BaseInference[Any]], set[str]] = {
    ChatCompletion: {"system", "temperature", "top_p", "top_k", "penalty_score", "stop", "max_output_tokens",
                     "user_id", "sampling", "idempotency_key"},
    Completion: {"temperature", "top_p", "top_k", "penalty_score", "stop", "max_output_tokens", "user_id",
                 "sampling", "idempotency_key"},
    Embedding: {"user_id", "idempotency_key"},
    Plugin: {"prompt", "messages"},
    Text2Image: {"negative_prompt", "size", "n", "steps", "sampler_index", "seed", "cfg_scale", "style", "user_id"},
    Image2Text: set(),
    Reranker: {"request_id"},
}
STREAMING = (ChatCompletion, Completion, Plugin, Image2Text)
CFG = Config(ak="a1B2c3D4e5F6g7H8", sk="x1y2z3Xx9")


@pytest.mark.parametrize("cls", list(OFFICIAL), ids=lambda c: c.__name__)
@pytest.mark.parametrize("method", ["do", "ado"])
def test_do_and_ado_declare_the_official_parameters(cls: type[BaseInference[Any]], method: str) -> None:
    bound = getattr(cls(config=CFG), method)  # what a notebook's shift-Tab inspects
    params = inspect.signature(bound).parameters
    positional = [n for n, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == OFFICIAL[cls], f"{cls.__name__}.{method}{inspect.signature(bound)}"
    keyword_only = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    assert keyword_only == KEYWORD_ONLY[cls]
    kinds = [p.kind for p in params.values()]
    assert kinds.count(inspect.Parameter.VAR_KEYWORD) == 1 and inspect.Parameter.VAR_POSITIONAL not in kinds
    assert all(p.annotation is not inspect.Parameter.empty for n, p in params.items()), cls
    assert inspect.signature(bound).return_annotation not in (inspect.Signature.empty, "Any")


@pytest.mark.parametrize("cls", list(OFFICIAL), ids=lambda c: c.__name__)
def test_every_parameter_is_documented(cls: type[BaseInference[Any]]) -> None:
    doc = inspect.getdoc(cls.ado) or ""
    undocumented = [n for n in inspect.signature(cls.ado).parameters if n != "self" and f":param {n}:" not in doc]
    assert not undocumented, f"{cls.__name__}.ado lacks docs for {undocumented}"
    do_doc = inspect.getdoc(cls.do) or ""
    assert ":meth:`ado`" in do_doc and all(f":param {n}:" in do_doc for n in inspect.signature(cls.do).parameters
                                           if n != "self")


@pytest.mark.parametrize("cls", STREAMING, ids=lambda c: c.__name__)
def test_stream_picks_the_return_type(cls: type[BaseInference[Any]]) -> None:
    """Overloads on ``stream: Literal[False]`` / ``Literal[True]`` / ``bool`` for IDEs and type checkers."""
    # the answer models are imported for type checkers only (pydantic stays out of the call's imports)
    names = vars(answers)
    hints = {name: [typing.get_type_hints(o, localns=names)["return"] for o in typing.get_overloads(getattr(cls, name))]
             for name in ("do", "ado")}
    one, chunk = (QfResponse[getattr(answers, m)] for m in (cls.answer_model, cls.chunk_model))
    assert hints["do"] == [one, Iterator[chunk], one | Iterator[chunk]]
    assert hints["ado"] == [one, AsyncIterator[chunk], one | AsyncIterator[chunk]]


def test_ipython_help_shows_the_parameters() -> None:
    from IPython.core.oinspect import Inspector

    try:
        inspector = Inspector(theme_name="nocolor")  # type: ignore[call-arg]  # IPython >= 9
    except TypeError:
        inspector = Inspector()
    info = inspector.info(ChatCompletion(config=CFG).do, "do")  # what shift-Tab / ``?`` show
    definition, doc = str(info.get("definition") or ""), str(info.get("docstring") or "")
    for name in ("messages", "model", "stream", "temperature", "top_p", "system", "max_output_tokens", "kwargs"):
        assert name in definition, definition
        assert f":param {name}:" in doc, doc
    assert "*args" not in definition


@pytest.mark.parametrize("cls", list(OFFICIAL), ids=lambda c: c.__name__)
def test_batch_calls_declare_their_parameters(cls: type[BaseInference[Any]]) -> None:
    for method in (cls.batch_do, cls.abatch_do):
        params = inspect.signature(method).parameters
        assert {"inputs", "body_list", "worker_num", "output_file", "progress", "retry_budget"} <= set(params)


def test_sync_do_and_async_ado_build_the_same_typed_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """``do`` and ``ado`` hand the one implementation the same typed call: positional arguments
    under their official names, the documented fields as fields, the ``**kwargs`` as ``extra``."""
    seen: list[InferenceCall] = []

    async def fake_acall(self: BaseInference[InferenceCall], call: InferenceCall) -> QfResponse:
        seen.append(call)
        return QfResponse(200, {}, {"result": "ok"})

    monkeypatch.setattr(BaseInference, "_acall", fake_acall)
    msgs = [{"role": "user", "content": "hi"}]
    chat = ChatCompletion(config=CFG)
    assert chat.do(msgs, "ERNIE-Bot", None, False, 2, temperature=0.5, extra_field=1).result == "ok"
    expected = ChatCall(messages=msgs, model="ERNIE-Bot", retry_count=2, temperature=0.5, extra={"extra_field": 1})
    assert seen == [expected]
    assert sync.run(chat.ado(msgs, "ERNIE-Bot", None, False, 2, temperature=0.5, extra_field=1)).result == "ok"
    assert seen == [expected, expected]
    seen.clear()
    Embedding(config=CFG).do(["a"], request_id="r1")
    Text2Image(config=CFG).do("cat", None, None, "base64", n=2)
    assert seen == [EmbeddingCall(texts=["a"], request_id="r1"),
                    Text2ImageCall(prompt="cat", with_decode="base64", n=2)]
    assert seen[0].fields() == {"input": ["a"], "user_id": None}


def test_the_sampling_options_go_whole_and_a_field_given_by_its_keyword_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ado(sampling=SamplingOptions(...))``: the typed options a magic builds travel whole in the call
    (no ``**fields()`` splat); in the body a field given by its own official keyword wins over theirs."""
    seen: list[InferenceCall] = []

    async def fake_acall(self: BaseInference[InferenceCall], call: InferenceCall) -> QfResponse:
        seen.append(call)
        return QfResponse(200, {}, {"result": "ok"})

    monkeypatch.setattr(BaseInference, "_acall", fake_acall)
    options = SamplingOptions(temperature=0.5, top_k=3, max_output_tokens=20)
    msgs = [{"role": "user", "content": "hi"}]
    ChatCompletion(config=CFG).do(msgs, sampling=options, top_k=7)
    Completion(config=CFG).do("1, 2,", sampling=options)
    chat, completion = seen
    assert isinstance(chat, ChatCall) and chat.sampling is options
    assert {k: v for k, v in chat.fields().items() if v is not None} == {
        "messages": msgs, "temperature": 0.5, "top_k": 7, "max_output_tokens": 20}
    assert {k: v for k, v in completion.fields().items() if v is not None} == {
        "prompt": "1, 2,", "temperature": 0.5, "top_k": 3, "max_output_tokens": 20}
    assert ChatCall(messages=msgs).fields() == ChatCall(messages=msgs, sampling=SamplingOptions()).fields()
