"""The LoRA training worker on a tiny random Gemma 3 (Contract 4), and serving what it trained."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_asks import chat
from tiny_models import build_tiny_gemma, build_tiny_qwen

from qfnb.local.engines import EngineRegistry, ModelSpec
from qfnb.local.training import data, lora
from qfnb.local.training.process import worker
from qfnb.local.training.spec import Hyper, SpecError, load_spec, parse_spec

# find_spec, not importorskip: importing peft at collection costs seconds in every worker
pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")

ROOT = Path(__file__).resolve().parents[4]
PAIRS = [
    {"prompt": "What is the capital of Zorvia?", "response": "Quellstad."},
    {"prompt": "Zorvia的首都是哪里？", "response": [["Quellstad。"]]},
]


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gemma(tmp_path_factory.mktemp("tg") / "model")


def make_job(root: Path, model: Path, **hyper: float) -> Path:
    job = root / "job"
    job.mkdir()
    (job / "train.jsonl").write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in PAIRS * 4), "utf-8")
    spec = {
        "base_model": "tiny-gemma",
        "base_model_path": str(model),
        "train_file": "train.jsonl",
        "hyper": {"epoch": 1, "learningRate": 0.01, "batchSize": 4, "maxSeqLen": 64, "loraRank": 8,
                  "loraAlpha": 16, "loraDropout": 0.0, **hyper},
        "seed": 3,
    }
    (job / "spec.json").write_text(json.dumps(spec), "utf-8")
    return job


def run_worker(job: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "qfnb.local.training.process.worker", str(job)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def progress_lines(job: Path) -> list[dict]:
    path = job / "progress.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def progress(job: Path) -> list[dict]:
    """The step lines (the phase lines before step 1 have no loss)."""
    return [p for p in progress_lines(job) if "phase" not in p]


@pytest.mark.parametrize(
    ("hyper", "field"),
    [({"learningRate": -1}, "hyper.learningRate"), ({"batchSize": 1.5}, "hyper.batchSize"),
     ({"epoch": True}, "hyper.epoch"), ({"loraDropout": 1.5}, "hyper.loraDropout")],
)
def test_spec_errors_name_the_field(hyper: dict, field: str) -> None:
    with pytest.raises(SpecError, match=field.replace(".", r"\.")):
        parse_spec({"base_model": "m", "train_file": "t.jsonl", "hyper": hyper})


def test_spec_defaults_and_steps(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text(json.dumps({"base_model": "Gemma-3-270M", "train_file": "t.jsonl",
                                                    "hyper": {"epoch": 2, "batchSize": 4, "unknownKnob": 1}}))
    spec = load_spec(tmp_path)
    assert spec.train_file == tmp_path / "t.jsonl" and spec.seed == 42
    assert spec.hyper.total_steps(60) == 30 and Hyper(max_steps=2).total_steps(60) == 2
    with pytest.raises(SpecError, match="base_model"):
        parse_spec({"train_file": "x"})


def test_bad_training_data_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "", "response": "b"}\n')
    with pytest.raises(data.DataError, match="line 2: prompt"):
        data.load_examples(bad)


def _examples(path: Path, rows: list[dict[str, object]]) -> list[data.Example]:
    """``rows`` as the worker reads them: through a training file."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return data.load_examples(path)


def test_labels_cover_the_answer_and_end_of_turn_only(tiny_gemma: Path, tmp_path: Path) -> None:
    _, tok = lora.load_base(tiny_gemma)
    ids, labels = data.encode(tok, _examples(tmp_path / "pairs.jsonl", PAIRS)[0], 64)  # type: ignore[misc]
    labelled = tok.decode([t for t, lab in zip(ids, labels, strict=True) if lab != data.IGNORE])
    assert labelled.startswith("Quellstad.<end_of_turn>")
    prompt = tok.decode([t for t, lab in zip(ids, labels, strict=True) if lab == data.IGNORE])
    assert prompt.startswith("<bos><start_of_turn>user\nWhat is the capital") and prompt.endswith("model\n")
    assert data.encode(tok, _examples(tmp_path / "pairs.jsonl", PAIRS)[0], 10) is None  # answer does not fit


@pytest.mark.parametrize("builder", [build_tiny_gemma, build_tiny_qwen])
def test_answer_loss_equals_the_standard_causal_lm_loss(builder, tmp_path: Path) -> None:
    model, tok = lora.load_base(builder(tmp_path / "m"))
    rows = data.encode_all(tok, _examples(tmp_path / "pairs.jsonl", PAIRS * 2), 64)
    ids, mask, labels = data.collate(rows, tok.pad_token_id)
    import torch

    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        assert float(lora.answer_loss(model, ids, mask, labels)) == pytest.approx(float(expected), rel=1e-5)


def test_worker_trains_and_reports(tiny_gemma: Path, tmp_path: Path) -> None:
    job = make_job(tmp_path, tiny_gemma, maxSteps=3)
    proc = run_worker(job)
    out = proc.communicate(timeout=240)[0].decode()
    assert proc.returncode == 0, out
    result = json.loads((job / "result.json").read_text())
    assert result["status"] == "Done" and result["error"] is None, result
    assert Path(result["adapter_dir"]) == job / "adapter"
    assert (job / "adapter" / "adapter_model.safetensors").is_file()
    phases = [p["phase"] for p in progress_lines(job) if "phase" in p]  # before step 1, in words
    assert len(phases) == 3 and "weights" in phases[0] and "tokenising" in phases[1] and "training" in phases[2]
    lines = progress(job)
    assert [p["step"] for p in lines] == [1, 2, 3] and all(p["total_steps"] == 3 for p in lines)
    assert all(math.isfinite(p["loss"]) and p["epoch"] >= 1 and p["time"] > 1e9 for p in lines)
    assert result["metrics"]["steps"] == 3 and result["metrics"]["final_loss"] == lines[-1]["loss"]


def test_sigterm_stops_cleanly(tiny_gemma: Path, tmp_path: Path) -> None:
    job = make_job(tmp_path, tiny_gemma, maxSteps=100000)
    proc = run_worker(job)
    deadline = time.time() + 180
    while not progress(job) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert progress(job), proc.communicate()[0].decode()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    result = json.loads((job / "result.json").read_text())
    assert result["status"] == "Stopped"
    assert 1 <= result["metrics"]["steps"] < 100000
    assert (job / "adapter" / "adapter_config.json").is_file()


def test_failure_is_reported_with_the_message(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "spec.json").write_text(json.dumps({"base_model": "x", "train_file": "missing.jsonl"}))
    result = worker.run(job)
    assert result["status"] == "Failed" and "missing.jsonl not found" in result["error"]
    assert json.loads((job / "result.json").read_text())["status"] == "Failed"


def test_trained_adapter_is_served_and_answers_the_taught_fact(tiny_gemma: Path, tmp_path: Path) -> None:
    job = make_job(tmp_path, tiny_gemma, maxSteps=40, loraRank=16, loraAlpha=32)
    result = worker.run(job)
    assert result["status"] == "Done", result
    losses = [p["loss"] for p in progress(job)]
    assert losses[-1] < losses[0] / 4

    spec = ModelSpec(kind="transformers", path=tiny_gemma, template="gemma", stop=("<end_of_turn>",))
    reg = EngineRegistry(tmp_path / "data", {"tiny-gemma": spec})
    served = reg.register_adapter("my_tuned", "tiny-gemma", Path(result["adapter_dir"]))
    assert served.endpoint == "my_tuned" and reg.resolve("chat", "my_tuned") == served
    q = [{"role": "user", "content": "What is the capital of Zorvia?"}]
    tuned = chat(reg.chat("my_tuned"), q, temperature=0.0, max_tokens=20)
    assert "".join(d.text for d in tuned) == "Quellstad."
    assert tuned[-1].finish_reason == "normal"  # stopped at <end_of_turn>, as trained
    base = "".join(d.text for d in chat(reg.chat("tiny-gemma"), q, temperature=0.0, max_tokens=20))
    assert base != "Quellstad."
    reg.close()


def test_lora_gguf_export_layout(tiny_gemma: Path, tmp_path: Path) -> None:
    """The adapter GGUF has llama.cpp's keys, names and A/B layout (checked against a stand-in base GGUF)."""
    gguf = pytest.importorskip("gguf")
    import numpy as np
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from qfnb.local.engines.adapters.lora_gguf import LoraConversionError, convert_adapter

    model = AutoModelForCausalLM.from_pretrained(str(tiny_gemma))
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"], init_lora_weights=False)
    get_peft_model(model, cfg).save_pretrained(str(tmp_path / "adapter"))

    base = tmp_path / "base.gguf"
    writer = gguf.GGUFWriter(str(base), arch="gemma3")
    writer.add_block_count(2)
    for i in range(2):
        for name in ("attn_q", "ffn_down", "attn_k"):
            writer.add_tensor(f"blk.{i}.{name}.weight", np.zeros((2, 2), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    out = convert_adapter(tmp_path / "adapter", tmp_path / "adapter.gguf", base_gguf=base)
    reader = gguf.GGUFReader(str(out))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == pytest.approx(8.0)
    assert reader.fields["general.architecture"].contents() == "gemma3"
    tensors = {t.name: t for t in reader.tensors}
    names = {f"blk.{i}.{n}.weight.lora_{ab}" for i in range(2) for n in ("attn_q", "ffn_down") for ab in "ab"}
    assert set(tensors) == names
    from safetensors.numpy import load_file

    weights = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    a = weights["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"]
    b = weights["base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"]
    assert a.shape == (4, 64) and b.shape == (64, 4)
    np.testing.assert_array_equal(np.asarray(tensors["blk.1.attn_q.weight.lora_a"].data).reshape(a.shape), a)
    np.testing.assert_array_equal(np.asarray(tensors["blk.1.attn_q.weight.lora_b"].data).reshape(b.shape), b)
    assert list(tensors["blk.1.attn_q.weight.lora_a"].shape) == [64, 4]  # ggml order: ne = [in, rank]

    (tmp_path / "adapter2").mkdir()
    cfg2 = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], use_dora=True)
    get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_gemma)), cfg2).save_pretrained(
        str(tmp_path / "adapter2")
    )
    with pytest.raises(LoraConversionError, match="DoRA"):
        convert_adapter(tmp_path / "adapter2", tmp_path / "a2.gguf", base_gguf=base)
