"""The typed answers, as mypy sees them (``tests/typing/test_answers.py`` runs mypy on this file;
it is never executed): ``resp.parsed`` is the call's answer model, through the generated
overloads of ``do``/``ado`` (streams too) and the console calls; the dict access stays ``Any``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, assert_type

from qfnb import ChatCompletion, Completion, Embedding, Plugin, Reranker, Text2Image
from qfnb._core.http.response import QfResponse
from qfnb.protocol.wires.qianfan.answers import ChatAnswer, ChatChunk, FineTuneTask, ServiceV2
from qfnb.resources import FineTune, Model
from qfnb.resources.console import Service

MSGS = [{"role": "user", "content": "你好"}]


def inference() -> None:
    answer = ChatCompletion().do(MSGS).parsed
    assert_type(answer, ChatAnswer)
    assert_type(answer.result, str)
    assert_type(answer.usage.total_tokens, int)
    assert_type(answer.choices[0].message.content, str | None)
    assert_type(answer.choices[0].message.tool_calls[0].function.arguments, str)
    for chunk in ChatCompletion().do(MSGS, stream=True):
        assert_type(chunk, QfResponse[ChatChunk])
        assert_type(chunk.parsed.is_end, bool)
        assert_type(chunk.parsed.choices[0].delta.content, str | None)
    assert_type(Completion().do("x").parsed.result, str)
    assert_type(Embedding().do(["a"]).parsed.data[0].embedding, list[float])
    assert_type(Reranker().do("q", ["a", "b"]).parsed.results[0].relevance_score, float)
    assert_type(Text2Image().do("a cat").parsed.data[0].b64_image, str)
    assert_type(Plugin().do("q").parsed.result, str)
    resp = ChatCompletion().do(MSGS)
    assert_type(resp["result"], Any)  # the official SDK's dict access, unchanged
    assert_type(resp["body"]["usage"], Any)


async def inference_async() -> None:
    assert_type((await ChatCompletion().ado(MSGS)).parsed.result, str)
    stream = await ChatCompletion().ado(MSGS, stream=True)
    assert_type(stream, AsyncIterator[QfResponse[ChatChunk]])
    async for chunk in stream:
        assert_type(chunk.parsed.sentence_id, int)


def console() -> None:
    task = FineTune.V2.task_detail(task_id="t").parsed.result  # the seed's import path
    assert_type(task, FineTuneTask)
    assert_type(task.run_status, str)
    assert_type(task.loss_curve, list[Any])
    assert_type(FineTune.V2.create_task(job_id="j", params_scale="LoRA", dataset_config={}).parsed.result.task_id,
                str)
    assert_type(Model.V2.describe_model("m").parsed.result.model_set_id, str)
    assert_type(Model.get_evaluation_info(1).parsed.result.eval_units[0].state, str)
    assert_type(Service.V2.service_detail("svc").parsed.result, ServiceV2)
    untyped: Iterator[str] = iter(Service.list())  # a call with no answer model: the mapping, as before
    del untyped
