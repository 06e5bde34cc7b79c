"""Facts about the call surface's types, checked by mypy (``tests/resources/console/test_call_surface.py``
runs mypy on this file; it is never executed). ``assert_type`` fails the check when a type is
not exactly the one written, so none of these can silently become ``Any``; a
``# type: ignore[...]`` that stops being needed fails it too (``warn_unused_ignores``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, assert_type

from qfnb import ChatCompletion, Completion, Embedding
from qfnb._core.http.response import QfResponse
from qfnb.protocol.wires.qianfan.answers import (
    ChatAnswer,
    ChatChunk,
    Choice,
    CompletionChunk,
    DatasetInfoAnswer,
    EmbeddingAnswer,
    FineTuneTaskCreatedAnswer,
    ModelV2Answer,
    TokenUsage,
)
from qfnb.resources.console import IAM, Data, FineTune, Model, Service
from qfnb.resources.inference.params import ChatCall, ChatMessages

MSGS = [{"role": "user", "content": "你好"}]


def inference(chat: ChatCompletion) -> None:
    assert_type(chat.do(MSGS), QfResponse[ChatAnswer])
    assert_type(chat.do(messages=MSGS, stream=True), Iterator[QfResponse[ChatChunk]])
    assert_type(chat.do(MSGS, stream=False), QfResponse[ChatAnswer])
    flag: bool = bool(MSGS)
    assert_type(chat.do(MSGS, stream=flag), QfResponse[ChatAnswer] | Iterator[QfResponse[ChatChunk]])
    assert_type(Completion().do("x", stream=True), Iterator[QfResponse[CompletionChunk]])
    assert_type(Embedding().do(["a"]), QfResponse[EmbeddingAnswer])
    chat.do(MSGS, temperature="hot")  # type: ignore[call-overload]
    assert_type(Embedding().do("one text"), QfResponse[EmbeddingAnswer])  # a string is a list of one (officially)
    Embedding().do(3)  # type: ignore[arg-type]


async def inference_async(chat: ChatCompletion) -> None:
    assert_type(await chat.ado(MSGS), QfResponse[ChatAnswer])
    assert_type(await chat.ado(MSGS, stream=True), AsyncIterator[QfResponse[ChatChunk]])
    async for chunk in await chat.ado(MSGS, stream=True):
        assert_type(chunk.result, str)


def typed_call(call: ChatCall) -> None:
    assert_type(call.messages, ChatMessages)  # the field ``do`` fills from ``messages``
    assert_type(call.stream, bool)


def console() -> None:
    # not Any: a call that does not fit the signature is an error (else the ignore is unused)
    wrong: Callable[[], int] = FineTune.V2.create_task  # type: ignore[assignment]
    sync: Callable[..., QfResponse[FineTuneTaskCreatedAnswer]] = FineTune.V2.create_task
    asynchronous: Callable[..., Coroutine[Any, Any, QfResponse[FineTuneTaskCreatedAnswer]]] = FineTune.V2.acreate_task
    del wrong, sync, asynchronous
    assert_type(FineTune.V2.create_task(job_id="job-1", params_scale="FullFineTuning",
                                        dataset_config={}), QfResponse[FineTuneTaskCreatedAnswer])
    coro = FineTune.V2.acreate_task(job_id="j", params_scale="LoRA", dataset_config={})
    assert_type(coro, Coroutine[Any, Any, QfResponse[FineTuneTaskCreatedAnswer]]).close()
    assert_type(Data.get_dataset_info(1), QfResponse[DatasetInfoAnswer])
    assert_type(Model.V2.describe_model("m"), QfResponse[ModelV2Answer])
    assert_type(Service.list(), QfResponse)
    assert_type(IAM.create_bearer_token(expire_in_seconds=60), QfResponse)
    FineTune.V2.create_task(job_id=1, params_scale="LoRA")  # type: ignore[arg-type]
    FineTune.V2.task_detail()  # type: ignore[call-arg]


def responses(resp: QfResponse) -> None:
    assert_type(resp.result, str)
    assert_type(resp.usage, TokenUsage)
    assert_type(resp.usage.total_tokens, int)
    assert_type(resp.choices, list[Choice])
    assert_type(resp.choices[0].message.content, str | None)
    assert_type(resp.choices[0].delta.content, str | None)
    assert_type(resp.choices[0].message.tool_calls[0].function.arguments, str)
    assert_type(resp.choices[0].finish_reason, str | None)
    assert_type(resp["result"], Any)  # the dict access stays, untyped
    assert_type(resp["body"]["result"], Any)

