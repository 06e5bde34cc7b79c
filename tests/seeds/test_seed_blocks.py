"""Seed conformance: every python block of the official SDK's docs (``../shared/seeds``) runs
against the local platform with only the mechanical edits of :mod:`seedblocks`.

The platform is ``qfnb.local.server.app`` served in-process with its engine and training doubles
(``FakeRegistry``, ``fake_worker.py``) and made qfnb's default backend, so the blocks call
qfnb exactly as written (no ``config=``): cloud names such as ``ERNIE-Bot`` and
``Embedding-V1`` are answered by the platform's local models. Each block is one test, run in
order in one namespace per seed file; blocks that cannot run offline are ``xfail`` with the
reason (:data:`OFFLINE`), never skipped.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "local"))

import seedblocks  # noqa: E402

from qfnb.errors import APIError, ValidationError  # noqa: E402

REPO = HERE.parents[1]
SEEDS_DIR = seedblocks.seeds_dir(REPO)
SEEDS = seedblocks.load(SEEDS_DIR) if SEEDS_DIR.is_dir() else None
if SEEDS is None or not SEEDS.blocks:
    pytest.skip(f"the official SDK's docs are not beside this checkout ({SEEDS_DIR} is absent)",
                allow_module_level=True)

#: blocks that cannot run offline, or that fail as written in the docs themselves:
#: id -> (reason, the exception the block raises, what its message says)
OFFLINE: dict[str, tuple[str, type[BaseException], str]] = {
    "000#4": ("the seed block is not valid Python (an unclosed `EvaluationManager(` call)", SyntaxError,
              "never closed|invalid syntax"),
    "000#5": ("the seed block uses DeployConfig without importing it", NameError, "DeployConfig"),
    "003#1": ("passes the docs' placeholder credentials (access_key=\"...\"), which only the cloud could check",
              ValidationError, "placeholder from the docs"),
    "003#5": ("Plugin apps are cloud-only: the local platform has no plugin runtime", APIError, "cloud feature"),
    "003#6": ("Text2Image needs weights (QFNB_TEXT2IMAGE_MODEL_DIR); the block also uses Image/io without "
              "importing them", APIError, "QFNB_TEXT2IMAGE_MODEL_DIR"),
    "003#7": ("the seed block uses Completion without importing it (from qianfan import Completion)", NameError,
              "Completion"),
}

ROWS = [{"prompt": f"What is {i}+{i}?", "response": str(2 * i)} for i in range(8)]


class _Backend:
    def __init__(self, url: str, creds: Any) -> None:
        self.base_url = url
        self.api_key, self.secret_key = creds.api_key, creds.secret_key
        self.access_key, self.iam_secret_key = creds.access_key, creds.iam_secret_key
        self.default_models: dict[str, str] = {}


def _wait(fetch: Any, done: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not finish: {value}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The local platform as qfnb's default backend, with a dataset, a finished fine-tune job,
    a published model and a serving service created the way the seeds create them."""
    from platform_doubles import FakeRegistry
    from platform_helpers import CREDS, make_settings

    import qfnb._core.config as config_mod
    from qfnb._core.http import client as client_mod
    from qfnb.dataset import Dataset
    from qfnb.local.server.app import create_app
    from qfnb.resources import FineTune, Model, Service
    from tests.fakes.cloud import serve

    tmp = tmp_path_factory.mktemp("seeds")
    with pytest.MonkeyPatch.context() as mp, serve(create_app(make_settings(tmp / "platform"), FakeRegistry()),
                                                   lifespan="on") as url:
        for var in [v for v in __import__("os").environ if v.startswith("QIANFAN_")]:
            mp.delenv(var)
        mp.setenv("QIANFAN_CACHE_DIR", str(tmp / "cache"))
        mp.setenv("QIANFAN_TRAIN_STATUS_POLLING_INTERVAL", "0.1")
        mp.setenv("QIANFAN_DEPLOY_STATUS_POLLING_INTERVAL", "0.1")
        mp.setenv("QIANFAN_MODEL_PUBLISH_STATUS_POLLING_INTERVAL", "0.1")
        config_mod.set_default_backend(lambda: _Backend(url, CREDS))
        client_mod._CLIENTS.clear()
        try:
            ds = Dataset.create_from_pyobj(ROWS).save(qianfan_dataset_create_args={"name": "seed_ds"})
            task_id = FineTune.create_task(name="seed_task", description="d", train_type="Tiny-Chat")["result"]["id"]
            job_id = FineTune.create_job({
                "taskId": task_id, "trainMode": "SFT", "peftType": "LoRA",
                "trainConfig": {"epoch": 1, "learningRate": 0.001, "batchSize": 2, "maxSteps": 3},
                "trainset": [{"type": 1, "id": ds.qianfan_dataset_id}]})["result"]["id"]
            _wait(lambda: FineTune.get_job(task_id, job_id)["result"]["trainStatus"], lambda s: s == "FINISH",
                  "the fixture's fine-tune job")
            g = Model.publish(is_new=True, model_name="seed_model",
                              version_meta={"taskId": task_id, "iterationId": job_id})["result"]
            svc = Service.create(model_id=g["modelId"], model_version_id=g["versionId"], name="seed_svc",
                                 uri="seed_svc", replicas=1, pool_type=2)["result"]
            _wait(lambda: Service.get(id=svc["serviceId"])["result"],
                  lambda r: r.get("serviceStatus") in ("Done", "Serving"), "the fixture's service")
            yield {"dataset_id": ds.qianfan_dataset_id, "task_id": task_id, "job_id": job_id,
                   "model_id": g["modelId"], "version_id": g["versionId"], "service_id": svc["serviceId"],
                   "endpoint": "seed_svc", "dataset": ds}
        finally:
            config_mod.set_default_backend(None)
            client_mod._CLIENTS.clear()


placeholders = seedblocks.placeholders


def _prepare(block: seedblocks.Block, ns: dict[str, Any], ids: dict[str, Any]) -> None:
    """Names a block uses that the docs bind elsewhere (outside the block, or in a block that
    cannot run offline): a trainer to run, the job id, the user's input, a chat client."""
    from qfnb.trainer import LLMFinetune, TrainConfig

    if block.id == "000#2":
        ns["trainer"] = LLMFinetune(train_type="Tiny-Chat", dataset=ids["dataset"],
                                    train_config=TrainConfig(epoch=1, batch_size=2, max_steps=3))
    if block.id == "002#4" and "create_job_resp" in ns:
        ns["job_id"] = ns["create_job_resp"]["result"]["id"]
    if block.id == "003#2":
        import qfnb

        ns["chat_comp"] = qfnb.ChatCompletion()  # 003#1 made it with cloud credentials
    if block.id == "001#6" and "t" in ns:
        ns["SEED_EVAL_ID"] = ns["t"]["result"].get("id", ns["t"]["result"].get("evalId"))
    if block.id == "001#7" and "SEED_EVAL_ID" in ns:  # the report exists once the evaluation is done
        from qfnb.resources import Model

        _wait(lambda: Model.get_evaluation_info(eval_id=ns["SEED_EVAL_ID"])["result"]["state"],
              lambda s: s == "Done", "the seed's evaluation")
    ns["input"] = seedblocks.scripted_input(["你好", "再见"])


_NAMESPACES: dict[str, dict[str, Any]] = {}


@pytest.mark.parametrize("block", SEEDS.blocks, ids=[b.id for b in SEEDS.blocks])
def test_seed_block(block: seedblocks.Block, platform: dict[str, Any]) -> None:
    ns = _NAMESPACES.setdefault(block.seed, {"__name__": f"seed_{block.seed}"})
    table = placeholders(platform)
    source = seedblocks.edit(block.source, {**table.get(block.seed, {}), **table.get(block.id, {})})
    offline = OFFLINE.get(block.id)
    _prepare(block, ns, platform)
    if offline is not None:  # it fails, and with the clear error it should
        reason, raises, says = offline
        with pytest.raises(raises, match=says):
            seedblocks.run(source, ns)
        pytest.xfail(reason)
    with contextlib.suppress(seedblocks.EndOfConversation):
        seedblocks.run(source, ns)


def test_block_003_1_runs_once_its_placeholder_keys_are_left_out(platform: dict[str, Any]) -> None:
    """003#1 fails only for its placeholder credentials (see OFFLINE): the rest of it (the
    default model, ``model="ERNIE-Bot"``, a custom endpoint, the ``Messages`` conversation loop)
    runs once ``access_key="...", secret_key="..."`` is left out, as the error tells the user."""
    block = next(b for b in SEEDS.blocks if b.id == "003#1")
    cloud_call = 'ChatCompletion(access_key="...", secret_key="...")'
    assert cloud_call in block.source
    source = seedblocks.edit(block.source.replace(cloud_call, "ChatCompletion()"),
                             placeholders(platform)["003"])
    typed: list[str] = []

    def user(prompt: str = "") -> str:
        if len(typed) == 2:
            raise seedblocks.EndOfConversation
        typed.append(f"line {len(typed)}")
        return typed[-1]

    ns: dict[str, Any] = {"__name__": "seed_003_1", "input": user}
    with contextlib.suppress(seedblocks.EndOfConversation):
        seedblocks.run(source, ns)
    history = ns["msgs"].to_list()
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[0]["content"] == "line 0" and history[1]["content"]


def _sample(text: str, after: str) -> Any:
    """The first ``` `{...}` ``` sample after ``after`` in seed 004's API reference, as Python
    (the shortest balanced ``{...}`` after the opening backtick)."""
    import ast
    import re

    at = text.index(after) + len(after)
    found = re.compile(r"`\s*\{").search(text, at)
    assert found, f"seed 004 no longer documents a sample after {after!r}"
    start = found.end() - 1
    for end in (i + 1 for i, ch in enumerate(text[start:], start) if ch == "}"):
        try:
            return ast.literal_eval(text[start:end])
        except (SyntaxError, ValueError):
            continue
    raise AssertionError(f"no parsable sample after {after!r}")


def test_seed_004_actions_alone_as_documented(platform: dict[str, Any]) -> None:
    """Seed 004 has no python blocks but documents each action's sample use and its input and
    output: ``LoadDataSetAction(dataset=Dataset(id=1)).exec()`` (its newline lost in the docs),
    then TrainAction → ModelPublishAction → DeployAction, each run alone with the documented
    input shape; every documented output key is there."""
    from qfnb.dataset import Dataset
    from qfnb.trainer import DeployAction, DeployConfig, LoadDataSetAction, ModelPublishAction, TrainAction

    text = SEEDS.text["004"]
    sample = "load_action = LoadDataSetAction(dataset=Dataset(id=1)) load_action.exec()"
    assert sample in text
    ns: dict[str, Any] = {"LoadDataSetAction": LoadDataSetAction, "Dataset": Dataset}
    seedblocks.run(sample.replace("id=1", f"id={platform['dataset_id']!r}").replace(") load", ")\nload")
                   .replace("load_action.exec()", "out = load_action.exec()"), ns)
    load_doc = _sample(text, "class qianfan.trainer.LoadDataSetAction")
    assert set(load_doc["datasets"][0]) <= set(ns["out"]["datasets"][0])
    assert ns["out"]["datasets"][0]["id"] == platform["dataset_id"]

    train_in = _sample(text, "class qianfan.trainer.TrainAction")
    train_in["datasets"][0]["id"] = platform["dataset_id"]
    trained = TrainAction(train_type="Tiny-Chat").exec(train_in)
    assert set(_sample(text, "{'datasets':[{'type': 1, 'id': 111}]} `Output:")) <= set(trained)
    published = ModelPublishAction().exec(trained)
    assert set(_sample(text, "class qianfan.trainer.ModelPublishAction")) <= set(published)  # Input sample
    publish_out = _sample(text, "` {'task_id': 47923, 'job_id': 33512} `Output:")
    assert set(publish_out) <= set(published)
    deployed = DeployAction(deploy_config=DeployConfig(endpoint_suffix="seed004", replicas=1)).exec(published)
    assert set(_sample(text, "class qianfan.trainer.DeployAction")) <= set(deployed)  # the documented output
    assert deployed["service_endpoint"] and deployed["service_id"] is not None
