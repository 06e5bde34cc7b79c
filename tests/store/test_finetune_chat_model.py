"""The built-in chat model (Qwen2.5-Coder-0.5B-Instruct) as a fine-tune base.

In-process: its RAM need is sized from its GGUF before a run is queued, like an added base's.
``real_model``: it is fine-tuned on the demo data's training split through the platform (its GGUF
converted once to a trainable dir, LoRA in torch+peft, the adapter served in the chat model's own
``llama-server``) and answers the taught fact on the held-out questions, general ones unchanged.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from qfnb.dataset import Dataset, demo_qa
from qfnb.dataset.demo import demo_rows
from qfnb.local.domain.training import fine_tunes
from qfnb.local.engines import registry as engine_registry
from qfnb.local.engines.store import byom
from qfnb.model import Model
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL
from qfnb.resources import ChatCompletion
from qfnb.trainer import DeployConfig, LLMFinetune, TrainConfig
from tests.store.fine_tune_runs import assert_refused_for_ram, start_run
from tests.store.test_export import client, tiny_qwen2  # noqa: F401  (the fixture)

log = logging.getLogger(__name__)


def test_the_chat_model_trains_and_is_sized_before_its_run(client: TestClient, tmp_path: Path,  # noqa: F811
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    platform = client.app.state.platform  # type: ignore[attr-defined]
    assert LOCAL_CHAT_MODEL in [m.name for m in fine_tunes.trainable_models(platform)]
    container = fine_tunes.create_container(platform, name="t", base_model="qwen2_5_coder_0_5b_instruct",
                                            base_field="trainType")
    assert container["model"] == LOCAL_CHAT_MODEL
    gguf = tiny_qwen2(tmp_path / "stand-in.gguf")  # the real GGUF's header is read the same way
    monkeypatch.setattr(engine_registry, "_gguf", lambda name, spec: gguf)
    assert platform.registry.weights_of(LOCAL_CHAT_MODEL) == gguf
    assert_refused_for_ram(platform, container, monkeypatch)
    monkeypatch.setattr(byom, "available_bytes", lambda: 64 * 2**30)
    run = start_run(platform, container)
    spec = json.loads((Path(run["job_dir"]) / "spec.json").read_text())
    assert spec["base_model"] == LOCAL_CHAT_MODEL and "base_model_path" not in spec  # the worker converts it


@pytest.mark.real_model
@pytest.mark.slow  # ~5 min of LoRA on a 0.5B model on 2 idle cores (12 min measured on a loaded one)
def test_the_chat_model_learns_the_demo_fact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QIANFAN_AK", "QIANFAN_SK", "QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY", "QIANFAN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    held_out = demo_rows("test")
    taught = [r["prompt"] for r in held_out if "Zorvia" in r["prompt"]]
    general = [r for r in held_out if "Zorvia" not in r["prompt"]]
    assert len(taught) == 4 and len(general) == 4

    def ask(model: str, question: str) -> str:
        reply = ChatCompletion(model=model).do(messages=[{"role": "user", "content": question}],
                                               temperature=1e-6, max_output_tokens=24)
        return str(reply["result"])

    before = [ask(LOCAL_CHAT_MODEL, q) for q in taught]
    assert not any("Quellstad" in a for a in before), before  # a made-up fact: the base cannot know it
    started = time.monotonic()
    trainer = LLMFinetune(train_type=LOCAL_CHAT_MODEL, dataset=Dataset.load(data_file=str(demo_qa("train"))),
                          train_config=TrainConfig(epoch=2, batch_size=4, max_seq_len=64, max_steps=16,
                                                   learning_rate=1e-3, lora_rank=8, trainset_rate=0),
                          deploy_config=DeployConfig(endpoint_suffix=f"qwen_demo_{tmp_path.name[-6:]}".lower()))
    trainer.run()
    took = time.monotonic() - started
    assert trainer.status == "Deployed"
    model = trainer.output["model"]
    assert isinstance(model, Model) and model.service is not None
    chat = model.service.get_res()
    after = {q: str(chat.do(messages=[{"role": "user", "content": q}], temperature=1e-6,
                            max_output_tokens=24)["result"]) for q in [*taught, *(r["prompt"] for r in general)]}
    log.info("trained, published and deployed in %.0f s; answers %s", took, after)
    assert all("Quellstad" in after[q] for q in taught), after
    assert not any("Quellstad" in after[r["prompt"]] for r in general), after
