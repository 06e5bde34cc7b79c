"""Checkpoints on the real fine-tune base (Gemma 3 270M) with a deliberately tiny set whose held-out
loss rises: 5 scored checkpoints, the best one not the last, the over-fitting named, early stopping
before the last step, and the default deploy serving the best checkpoint (its held-out loss
re-measured on llama-server serving its adapter, ``evaluate.served_loss``, matches the recorded one).
Then a notebook function scores the first run's checkpoints on the engine. Measured at load 1-4 on
2 cores, with ``replay=False`` (trained here): 67-94 s for the whole test (7 min 39 s at load ~4.5),
32-53 s for the 40 steps;
held-out losses 6.29, 6.41, 6.69, 6.28, 8.44 at steps 8-40, so "over-fitting since step 32: held-out
loss 6.28 → 8.44", the best step 32 and the deploy serving it; the early-stopping run stopped at step
16; the function's scoring took 3.2 s, 10 % of the training (under load 13 a step took 47 s).
``tests/local/test_served_loss_real.py`` runs the
same re-measure on a three-step adapter in about a minute."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import pytest

from qfnb.dataset import Dataset
from qfnb.trainer import DeployConfig, LLMFinetune, TrainConfig

log = logging.getLogger("tests.real_checkpoints")
pytestmark = [pytest.mark.real_model, pytest.mark.slow]

# answers no model can predict (each locker's code is random): the model first learns their form,
# then memorises the training codes, and the held-out codes' loss rises
_CODES = random.Random(45)
ROWS = [{"prompt": f"Code for locker {n}?",
         "response": "".join(_CODES.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6))}
        for n in range(101, 121)]


def _train(tmp_path: Path, **config: object) -> LLMFinetune:
    trainer = LLMFinetune(train_type="Gemma-3-270M", dataset=Dataset.create_from_pyobj(ROWS),
                          train_config=TrainConfig(batch_size=2, max_seq_len=48, max_steps=40, learning_rate=2e-3,
                                                   lora_rank=16, trainset_rate=20, checkpoints=5, **config),
                          deploy_config=DeployConfig(endpoint_suffix=f"ckpt_{tmp_path.name[-6:]}")
                          if not config else None, replay=False)  # trained here, never a finished run reused
    trainer.run()
    return trainer


def test_checkpoints_pick_the_best_and_the_deploy_serves_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QIANFAN_AK", "QIANFAN_SK", "QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY", "QIANFAN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    trainer = _train(tmp_path)
    out = trainer.output
    saved = out["checkpoints"]
    assert [c["step"] for c in saved] == [8, 16, 24, 32, 40] and all(c["evalLoss"] > 0 for c in saved)
    best = min(saved, key=lambda c: c["evalLoss"])
    assert out["best_checkpoint"] == best["step"] != 40
    assert out["overfitting"] and out["overfitting"].startswith(f"over-fitting since step {best['step']}")
    log.info("40 steps in %.0f s: held-out losses %s; %s", out["metrics"].get("wall_seconds", 0),
             [(c["step"], round(c["evalLoss"], 3)) for c in saved], out["overfitting"])
    model = out["model"]
    assert model.step == best["step"] and model.service is not None  # the default deploy: the best checkpoint
    reply = model.service.get_res().do(messages=[{"role": "user", "content": "Code for locker 101?"}],
                                        max_output_tokens=16)
    assert isinstance(reply["result"], str) and reply["result"]

    # the served adapter's held-out loss, measured again on llama-server (the adapter's GGUF in the base
    # model's engine, as the deploy serves it): the recorded one within 5 %
    from transformers import AutoTokenizer

    from qfnb.local.engines.registry import EngineOptions, EngineRegistry
    from qfnb.local.engines.store import assets
    from qfnb.local.training import data
    from qfnb.local.training.evaluate import served_loss
    from qfnb.resources.console import Model as ModelAPI

    version = ModelAPI.detail(model.version_id)["result"]
    assert version["modelVersionId"] == model.version_id
    record = _version_record(model.version_id)
    tok = AutoTokenizer.from_pretrained(str(assets.hf_dir("Gemma-3-270M")))  # the worker's tokenizer
    held = data.encode_all(tok, data.load_examples(served_eval_file(trainer)), 48)
    # the daemon's own engine takes requests from the daemon only (a key of its own): a second process
    # of the same llama-server serves the same files (the base GGUF, the adapter.gguf the deploy made)
    registry = EngineRegistry(tmp_path / "engines", options=EngineOptions(slots=2))
    try:
        registry.register_adapter("remeasured", record["baseModel"], Path(record["adapterDir"]))
        assert served_loss(registry.chat("remeasured"), held) == pytest.approx(best["evalLoss"], rel=0.05)
    finally:
        registry.close()

    # held-out loss on 4 rows is noisy: a patience of one checkpoint stops at the first that is no better
    early = _train(tmp_path, early_stop=True, early_stop_patience=1).output
    steps = [c["step"] for c in early["checkpoints"]]
    log.info("early stop: checkpoints at %s, stopped at step %s", steps, early["metrics"].get("early_stopped_at"))
    assert steps[-1] < 40 and early["metrics"].get("early_stopped_at") == steps[-1]

    # a notebook function scores the first run's 5 checkpoints on the engine: what that costs beside training
    from qfnb._core.runtime import sync
    from qfnb.trainer._action import RunContext
    from qfnb.trainer.steps.checkpoint_metric import CheckpointMetricAction

    def code_chars(input: object, reference: str, output: str) -> float:  # the code's characters guessed
        return sum(a == b for a, b in zip(reference, output.strip(), strict=False)) / len(reference)

    scored = sync.run(CheckpointMetricAction(code_chars, items=4).aexec(
        {"task_id": out["task_id"], "checkpoints": saved, "eval_file": out["eval_file"]}, RunContext(None, None)))
    assert [c["metricName"] for c in scored["checkpoints"]] == ["code_chars"] * 5
    log.info("code_chars per checkpoint %s, scored in %.1f s (%.0f %% of the %.0f s of training)",
             [(c["step"], c["metric"]) for c in scored["checkpoints"]], scored["metric_seconds"],
             100 * scored["metric_seconds"] / out["metrics"]["wall_seconds"], out["metrics"]["wall_seconds"])


def _version_record(version_id: object) -> dict[str, Any]:
    """The platform's store record of a model version (its base model and the adapter it serves)."""
    from qfnb.local.domain.state.store import Store
    from qfnb.protocol.platform.daemon import default_data_dir

    store = Store(default_data_dir() / "platform.sqlite3")
    record: dict[str, Any] = store.get("versions", version_id)
    return record


def served_eval_file(trainer: LLMFinetune) -> Path:
    from qfnb.local.domain.state.store import Store
    from qfnb.protocol.platform.daemon import default_data_dir

    store = Store(default_data_dir() / "platform.sqlite3")
    return Path(store.get("runs", trainer.output["task_id"])["job_dir"]) / "eval.jsonl"
