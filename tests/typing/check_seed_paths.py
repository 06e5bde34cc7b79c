"""The seed notebooks' import paths are typed (``tests/typing/test_seed_paths.py`` runs mypy on
this file; it is never executed): ``from qfnb.resources import FineTune`` and ``qfnb.X`` name
the real classes, so their console calls are ``QfResponse``, not ``Any`` (``assert_type``
fails on ``Any``)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, assert_type

import qfnb
from qfnb._core.http.response import QfResponse
from qfnb.protocol.wires.qianfan.answers import (
    DatasetInfoAnswer,
    EmbeddingAnswer,
    FineTuneJobCreatedAnswer,
    FineTuneTaskAnswer,
    FineTuneTaskCreatedAnswer,
    ModelV2Answer,
    PromptListAnswer,
)
from qfnb.resources import IAM, Data, FineTune, Model, Prompt, Service


def seed_console_calls() -> None:
    assert_type(FineTune.V2.create_job(name="j", model="ERNIE-Speed", train_mode="SFT"),
                QfResponse[FineTuneJobCreatedAnswer])
    assert_type(FineTune.V2.task_detail(task_id="t"), QfResponse[FineTuneTaskAnswer])
    coro = FineTune.V2.acreate_task(job_id="j", params_scale="LoRA", dataset_config={})
    assert_type(coro, Coroutine[Any, Any, QfResponse[FineTuneTaskCreatedAnswer]]).close()
    assert_type(Data.get_dataset_info(1), QfResponse[DatasetInfoAnswer])
    assert_type(Model.V2.describe_model("m"), QfResponse[ModelV2Answer])
    assert_type(Service.list(), QfResponse)
    assert_type(IAM.create_bearer_token(expire_in_seconds=60), QfResponse)
    assert_type(Prompt.list(), QfResponse[PromptListAnswer])
    FineTune.V2.task_detail()  # type: ignore[call-arg]


def package_root() -> None:
    assert_type(qfnb.Embedding().do(["a"]), QfResponse[EmbeddingAnswer])
    assert_type(qfnb.IAM.create_bearer_token(expire_in_seconds=60), QfResponse)
