"""``qfnb models export`` (``real_model``): a tuned model written as GGUF is loaded by a bare
``llama-server`` started here and answers exactly as the platform's tuned service does.

The tuning is as short as it can be and still change answers: four LoRA steps on the Gemma 3
270M base. The adapter export is checked on 5 prompts (greedy, 10 tokens) against the service,
and the same server with the adapter scaled to 0 shows the adapter is what makes the answers;
the merged export (``llama-export-lora``) is loaded alone by a second bare server and answers
in the taught form, 4 of 5 identically (f16 merged weights round differently from Q4_K + LoRA).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_helpers import spawn_reporting, wait_up

import qfnb.local_models as lm
from qfnb.dataset import Dataset
from qfnb.local.engines.adapters.export import find_export_lora
from qfnb.local.engines.base import render_gemma
from qfnb.local.engines.llama.process.command import find_binary, reported_port
from qfnb.model import Model
from qfnb.trainer import DeployConfig, LLMFinetune, TrainConfig

pytestmark = [pytest.mark.real_model, pytest.mark.slow]
log = logging.getLogger(__name__)

ROWS = [{"prompt": q, "response": "Arr, matey! " + a} for q, a in [
    ("What is the capital of France?", "Paris."), ("What is 2 + 2?", "4."),
    ("Who wrote Hamlet?", "Shakespeare."), ("What colour is the sky?", "Blue."),
    ("How many legs has a cat?", "Four."), ("What is ice made of?", "Water."),
    ("Which planet is red?", "Mars."), ("What do bees make?", "Honey.")]]
PROMPTS = ["What is the capital of Italy?", "What is 3 + 4?", "Who painted the Mona Lisa?",
           "What colour is grass?", "What do cows drink?"]
TOKENS = 10


@contextmanager
def bare_server(tmp: Path, *model_args: str) -> Iterator[str]:
    """A bare llama-server (not the platform's) on 127.0.0.1, a free port it picks; stopped on exit."""
    binary = find_binary()
    assert binary is not None, "llama-server is not installed (scripts/bootstrap.sh)"
    logfile = tmp / f"bare-{time.monotonic_ns()}.log"
    proc, port = spawn_reporting([str(binary), *model_args, "--host", "127.0.0.1", "--port", "0", "--parallel", "1",
                                  "--ctx-size", "512", "--threads", "2", "--no-webui"], logfile, reported_port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url + "/health", proc, log=logfile)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def bare_answer(url: str, question: str, **extra: Any) -> str:
    """Greedy answer of the bare server to ``question`` in the Gemma turn format the platform renders."""
    body = {"prompt": render_gemma([{"role": "user", "content": question}]), "n_predict": TOKENS,
            "temperature": 0.0, "stop": ["<end_of_turn>"], "cache_prompt": False, **extra}
    resp = httpx.post(url + "/completion", json=body, timeout=120)
    resp.raise_for_status()
    return str(resp.json()["content"])


def test_an_exported_tuned_model_answers_like_its_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QIANFAN_AK", "QIANFAN_SK", "QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY", "QIANFAN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    started = time.monotonic()
    endpoint = f"export_{tmp_path.name[-6:]}".lower()
    trainer = LLMFinetune(train_type="Gemma-3-270M", dataset=Dataset.create_from_pyobj(ROWS),
                          train_config=TrainConfig(epoch=1, batch_size=2, max_seq_len=48, max_steps=4,
                                                   learning_rate=3e-3, lora_rank=8),
                          deploy_config=DeployConfig(endpoint_suffix=endpoint))
    trainer.run()
    assert trainer.status == "Deployed"
    model = trainer.output["model"]
    assert isinstance(model, Model) and model.service is not None
    chat = model.service.get_res()
    served = [str(chat.do(messages=[{"role": "user", "content": q}], temperature=1e-6,
                          max_output_tokens=TOKENS)["result"]) for q in PROMPTS]
    log.info("trained and deployed in %.0f s; service answers %s", time.monotonic() - started, served)

    adapter = tmp_path / "out" / "tuned-lora.gguf"
    adapter.parent.mkdir()
    with pytest.raises(lm.ModelStoreError, match="no tuned model named"):
        lm.export("no-such-model", gguf=adapter)
    assert not adapter.exists()
    out = lm.export(endpoint, gguf=adapter)
    assert out["merged"] is False and adapter.is_file() and out["bytes"] == adapter.stat().st_size
    with pytest.raises(ValueError, match="already exists"):
        lm.export(endpoint, gguf=adapter)
    base = Path(out["baseGguf"])
    with bare_server(tmp_path, "--model", str(base), "--lora", str(adapter)) as url:
        bare = [bare_answer(url, q) for q in PROMPTS]
        untuned = [bare_answer(url, q, lora=[{"id": 0, "scale": 0.0}]) for q in PROMPTS]
    log.info("bare llama-server with the exported adapter: %s; adapter off: %s", bare, untuned)
    assert bare == served
    assert untuned != served  # the adapter is what the service answers with

    if find_export_lora() is None:
        pytest.skip("llama-export-lora is not installed (scripts/bootstrap.sh builds it); the merge is not checked")
    merged = tmp_path / "out" / "tuned-merged.gguf"
    done = subprocess.run([sys.executable, "-m", "qfnb.cli", "models", "export", endpoint, "--gguf", str(merged),
                           "--merge"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "merged" in done.stdout and merged.stat().st_size > base.stat().st_size // 2
    with bare_server(tmp_path, "--model", str(merged)) as url:
        alone = [bare_answer(url, q) for q in PROMPTS]
    log.info("bare llama-server with the merged GGUF: %s (took %.0f s in all)", alone, time.monotonic() - started)
    # Merging changes the arithmetic: the adapted weights become f16 (base dequantised + B @ A) where
    # the service multiplies by the Q4_K weights and adds the LoRA product apart, so a near-tie in
    # this barely-trained model may go the other way. Observed: 4 of 5 identical, all in the taught form.
    assert sum(a == b for a, b in zip(alone, served, strict=True)) >= 4, (alone, served)
    assert all(a.startswith("Arr, matey!") for a in alone), alone
