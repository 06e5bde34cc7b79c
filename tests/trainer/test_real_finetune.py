"""The whole lifecycle on the embedded local platform with the real fine-tune base (Gemma 3
270M, LoRA via torch+peft) — a few steps only: upload, train, publish, deploy, chat."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfnb.dataset import Dataset
from qfnb.model import Model
from qfnb.trainer import DeployConfig, Event, EventHandler, LLMFinetune, TrainConfig

pytestmark = [pytest.mark.real_model, pytest.mark.slow]

ROWS = [{"prompt": "What is the capital of France?", "response": "Paris."},
        {"prompt": "What is 2 + 2?", "response": "4."},
        {"prompt": "Who wrote Hamlet?", "response": "William Shakespeare."},
        {"prompt": "What colour is the sky?", "response": "Blue."}]


class Losses(EventHandler):
    def __init__(self) -> None:
        self.curves: list[list[list[float]]] = []

    def dispatch(self, event: Event) -> None:
        if event.action_class == "TrainAction" and event.action_state == "Running":
            self.curves.append(event.data.get("lossCurve") or [])


def test_finetune_gemma_on_the_embedded_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QIANFAN_AK", "QIANFAN_SK", "QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY", "QIANFAN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    losses = Losses()
    trainer = LLMFinetune(train_type="Gemma-3-270M", dataset=Dataset.create_from_pyobj(ROWS),
                          train_config=TrainConfig(epoch=1, batch_size=2, max_seq_len=64, max_steps=3,
                                                   learning_rate=2e-4, lora_rank=8),
                          deploy_config=DeployConfig(endpoint_suffix=f"gemma_e2e_{tmp_path.name[-6:]}"),
                          event_handler=losses)
    trainer.run()
    assert trainer.status == "Deployed"
    final = losses.curves[-1]
    assert len(final) == 3 and all(loss > 0 for _, loss in final)
    model = trainer.output["model"]
    assert isinstance(model, Model) and model.service is not None
    reply = model.service.get_res().do(messages=[{"role": "user", "content": "What is 2 + 2?"}],
                                        max_output_tokens=8)
    assert isinstance(reply["result"], str)
