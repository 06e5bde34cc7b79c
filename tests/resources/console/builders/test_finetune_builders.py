"""The v2 fine-tune builders (:mod:`qfnb.resources.console.builders.finetune`): a create-task call is data,
checked field by field before anything is sent."""

from __future__ import annotations

import pytest

from qfnb._core.errors import ValidationError
from qfnb.protocol.wires.qianfan.routes import V2Action
from qfnb.resources.console.builders.finetune import check_dataset_config, v2_create_task

CONFIG = {"sourceType": "Bos", "versions": [{"versionBosUri": "bos:/b/rows.jsonl"}], "splitRatio": 20}


def test_a_create_task_is_the_v2_action_with_its_body() -> None:
    request = v2_create_task("job-1", "LoRA", hyper_params={"epoch": 2}, dataset_config=CONFIG)
    assert request.action == V2Action.CREATE_TASK
    assert request.body["jobId"] == "job-1" and request.body["parameterScale"] == "LoRA"
    assert request.body["hyperParameterConfig"] == {"epoch": 2} and request.body["datasetConfig"] == CONFIG


@pytest.mark.parametrize(("config", "field"), [
    ({"sourceType": "Disk", "versions": [{"versionId": 1}]}, "dataset_config.sourceType"),
    ({"sourceType": "Bos", "versions": []}, "dataset_config.versions"),
    ({"sourceType": "Platform", "versions": [{"versionId": 1}, {}]}, r"dataset_config.versions\[1\]"),
])
def test_a_bad_dataset_config_is_refused_naming_its_field(config: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        check_dataset_config(config)


def test_a_task_needs_data_unless_it_continues_one() -> None:
    with pytest.raises(ValidationError, match="dataset_config"):
        v2_create_task("job-1", "LoRA")
    assert v2_create_task("job-1", "LoRA", increment_task_id="task-1").body["incrementTaskId"] == "task-1"
