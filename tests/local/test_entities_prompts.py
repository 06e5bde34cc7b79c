"""The local platform serves the console calls of issue 21 for real: a dataset's entities
(``Data.list_all_entity_in_dataset`` / ``annotate_an_entity`` / ``delete_an_entity``) and the
prompt-template library (``Prompt.create`` / ``info`` / ``update`` / ``list`` / ``delete``)."""

from __future__ import annotations

import pytest

from qfnb._core.config import Config
from qfnb.dataset import Dataset
from qfnb.errors import APIError
from qfnb.resources.console import Data, Prompt
from tests.fakes.local_platform import ServedPlatform


@pytest.fixture
def cfg(local_platform: ServedPlatform) -> Config:
    return local_platform.config()


def _saved(cfg: Config) -> int | str:
    rows = [{"prompt": f"q{i}", "response": [[f"a{i}"]]} for i in range(3)]
    ds = Dataset.create_from_pyobj(rows).save(qianfan_dataset_create_args={"name": "ents"}, config=cfg)
    assert ds.qianfan_dataset_id is not None
    return ds.qianfan_dataset_id


def test_entities_are_the_dataset_rows_and_can_be_annotated_and_deleted(cfg: Config) -> None:
    ds_id = _saved(cfg)
    page = Data.list_all_entity_in_dataset(ds_id, offset=1, page_size=5, config=cfg).body["result"]
    assert page["total"] == 3 and [e["content"][0]["prompt"] for e in page["items"]] == ["q1", "q2"]
    first = Data.list_all_entity_in_dataset(ds_id, config=cfg).body["result"]["items"][0]["id"]

    Data.annotate_an_entity(first, ds_id, content=[{"prompt": "q0", "response": [["fixed"]]}], config=cfg)
    items = Data.list_all_entity_in_dataset(ds_id, config=cfg).body["result"]["items"]
    assert items[0]["content"][0]["response"] == [["fixed"]]
    with pytest.raises(APIError, match="list the entities again"):  # the old id named the old content
        Data.delete_an_entity([first], ds_id, config=cfg)

    Data.delete_an_entity([items[0]["id"], items[2]["id"]], ds_id, config=cfg)
    left = Dataset.load(qianfan_dataset_id=ds_id, config=cfg).list()
    assert [r["prompt"] for r in left] == ["q1"]  # exported by the platform: the deletes are stored
    info = Data.get_dataset_info(ds_id, config=cfg).body["result"]["versionInfo"]
    assert info["entityCount"] == 1


def test_entity_calls_name_what_is_wrong(cfg: Config) -> None:
    ds_id = _saved(cfg)
    with pytest.raises(APIError, match="pageSize"):
        Data.list_all_entity_in_dataset(ds_id, page_size=0, config=cfg)
    with pytest.raises(APIError, match="not in this dataset"):
        Data.annotate_an_entity("7-abc", ds_id, content=[{"prompt": "x", "response": [["y"]]}], config=cfg)
    first = Data.list_all_entity_in_dataset(ds_id, config=cfg).body["result"]["items"][0]["id"]
    with pytest.raises(APIError, match="content"):
        Data.annotate_an_entity(first, ds_id, content=[{"text": "no prompt"}], config=cfg)


def test_prompt_templates_are_kept_by_the_local_platform(cfg: Config) -> None:
    made = Prompt.create(name="greet", template="Say hi to {name} in {lang}", config=cfg).body["result"]
    tid = made["templateId"]
    assert str(made["templatePK"]).startswith("pt-")
    got = Prompt.info(tid, config=cfg).body["result"]
    assert got["templateName"] == "greet" and got["templateVariables"] == "name,lang" and got["type"] == 2

    Prompt.update(tid, template="Bonjour (who)", identifier="()", config=cfg)
    got = Prompt.info(tid, config=cfg).body["result"]
    assert got["templateContent"] == "Bonjour (who)" and got["templateVariables"] == "who"

    Prompt.create(name="other", template="x {y1}", config=cfg)
    listed = Prompt.list(name="gre", config=cfg).body["result"]
    assert listed["total"] == 1 and listed["items"][0]["templateId"] == tid
    assert Prompt.list(page_size=1, offset=1, config=cfg).body["result"]["items"][0]["templateName"] == "other"
    assert Prompt.list_labels(config=cfg).body["result"] == {"total": 0, "items": []}

    assert Prompt.delete(tid, config=cfg).body["result"] is True
    with pytest.raises(APIError, match="not found"):
        Prompt.info(tid, config=cfg)


def test_prompt_calls_name_what_is_wrong(cfg: Config) -> None:
    Prompt.create(name="dup", template="a {bb}", config=cfg)
    with pytest.raises(APIError, match="already exists"):
        Prompt.create(name="dup", template="b {cc}", config=cfg)
    with pytest.raises(APIError, match="no prompt labels"):
        Prompt.create(name="lab", template="c {dd}", label_ids=[1], config=cfg)
    with pytest.raises(APIError, match="not supported by the local platform"):  # cloud-only: one sentence
        Prompt.create_optimiztion_task("improve me", [{"opType": 1}], config=cfg)


def test_the_v2_prompt_library_answers_with_one_sentence(cfg: Config) -> None:
    with pytest.raises(APIError, match="not supported by the local platform"):
        Prompt.V2.list(config=cfg)
