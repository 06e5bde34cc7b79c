"""The official SDK's further calls (issue 21), on the generated call surface: ``Prompt``,
``Charge``/``Memory``, ``Data``'s task calls and ``Model``'s evaluation-result calls build the
request the platform documents, and refuse bad input before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest

from qfnb._core.errors import InvalidArgumentError, ValidationError
from qfnb._core.http.response import QfResponse
from qfnb.resources.console import Charge, Data, Memory, Model, Prompt, charge, data, data_tasks, model_eval, prompt
from qfnb.resources.console.consts import DataProjectType, DataSetType, DataTemplateType
from qfnb.resources.console.sending.sender import ConsoleRequest

SENT = QfResponse(200, {}, {"result": "sent"})


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[ConsoleRequest]:
    """What the generated blocking calls hand to ``send`` (no transport)."""
    got: list[ConsoleRequest] = []

    def fake_send(request: ConsoleRequest, **_: Any) -> QfResponse:
        got.append(request)
        return SENT

    for module in (charge, data, data_tasks, model_eval, prompt):
        monkeypatch.setattr(module, "send", fake_send)
    return got


def test_prompt_v2_create_reads_the_template_variables(sent: list[ConsoleRequest]) -> None:
    assert Prompt.V2.create("t", "hello {name}, from {place}", labels=["a"]) is SENT
    req = sent[0]
    assert (req.path, req.action) == ("/v2/promptTemplates", "CreatePromptTemplate")
    assert req.body["templateVariables"] == "name,place" and req.body["labels"] == ["a"]


def test_charge_memory_and_data_task_bodies(sent: list[ConsoleRequest]) -> None:
    Charge.charge_tpm_credit("ernie-4.0-8k", 2, {"paymentTiming": "Prepaid"})
    Memory.create_system_memory("app-1", "notes")
    assert Data.create_dataset_etl_task("clean", 1, 2, {"clean": []}).parsed.result == "sent"
    assert sent[0].action == "PurchaseTPMResource" and sent[0].body["purchaseCount"] == 2
    assert sent[1].action == "CreateSystemMemory" and sent[1].body == {"appId": "app-1", "description": "notes"}
    assert sent[2].body["sourceDatasetId"] == 1 and sent[2].body["destDatasetId"] == 2


def test_model_evaluation_result_export_defaults(sent: list[ConsoleRequest]) -> None:
    Model.create_evaluation_result_export_task(7)
    assert sent[0].body == {"id": 7, "exportType": "local", "exportOpt": "total",
                            "exportContent": ["prompt", "prediction", "completion", "metrics"]}


@pytest.mark.parametrize(("call", "field"), [
    (lambda: Model.create_evaluation_result_export_task(7, export_range="part"), "result_ids"),
    (lambda: Model.create_evaluation_result_export_task(7, export_range="half"), "export_range"),
    (lambda: Charge.charge_tpm_credit("m", "two", {}), "purchase_count"),
    (lambda: Data.delete_dataset_etl_task("not a list"), "etl_ids"),
    (lambda: Prompt.V2.create("t", "hi {x}", variable_identifier="<>"), "identifier"),
    (lambda: Data.create_bare_dataset("d", DataSetType.MultiModel, DataProjectType.Conversation,
                                      DataTemplateType.NonSortedConversation), "template_type"),  # text2image only
])
def test_bad_input_names_the_field_before_sending(sent: list[ConsoleRequest], call: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        call()
    assert info.value.field == field and isinstance(info.value, InvalidArgumentError)
    assert sent == []
