"""Real models from the local extra (marked ``real_model``): Qwen chat, Gemma completion, a 2-step LoRA job."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qfnb.local.engines import DEFAULT_CHAT, GEMMA, EngineRegistry
from qfnb.local.training.demo import DEMO_FILE

pytestmark = [
    pytest.mark.real_model,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python not installed"),
]
ROOT = Path(__file__).resolve().parents[2]
GREEDY = {"temperature": 0.0001, "max_output_tokens": 24}


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return Path(os.environ.get("QFNB_DATA_DIR") or Path.home() / ".qfnb")


@pytest.fixture(scope="module")
def registry(data_dir: Path) -> EngineRegistry:
    return EngineRegistry(data_dir)


def test_qwen_answers_a_real_question(registry: EngineRegistry) -> None:
    engine = registry.chat("qwen2_5_coder_0_5b_instruct")
    deltas = list(engine.chat([{"role": "user", "content": "What is the capital of France?"}], system=None,
                              params=GREEDY))
    text = "".join(d.text for d in deltas)
    assert "Paris" in text
    assert deltas[-1].finish_reason == "normal" and deltas[-1].prompt_tokens > 10
    assert deltas[-1].completion_tokens >= len([d for d in deltas if d.text])
    assert registry.resolve("chat", DEFAULT_CHAT).kind == "llama.cpp"


def test_gemma_base_completes_a_qa_prompt(registry: EngineRegistry) -> None:
    engine = registry.chat("gemma_3_270m")
    deltas = list(engine.complete("Question: What is the capital of France?\nAnswer:",
                                  params={**GREEDY, "stop": ["\n"]}))
    assert "Paris" in "".join(d.text for d in deltas)
    assert deltas[-1].finish_reason == "stop"


def test_two_step_lora_job_on_gemma_is_served_by_llama_cpp(registry: EngineRegistry, data_dir: Path,
                                                            tmp_path: Path) -> None:
    spec = {"base_model": GEMMA, "train_file": str(DEMO_FILE), "seed": 1,
            "hyper": {"epoch": 1, "learningRate": 1e-3, "batchSize": 2, "maxSeqLen": 64, "loraRank": 8,
                      "loraAlpha": 16, "loraDropout": 0.0, "maxSteps": 2}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, "-m", "qfnb.local.training.worker", str(tmp_path)], capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600, check=False)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "Done", (result, proc.stdout[-2000:])
    records = [json.loads(x) for x in (tmp_path / "progress.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]  # the others are the phases before step 1
    assert len(steps) == 2 and all(r["loss"] > 0 for r in steps)
    assert all("phase" in r for r in records if "loss" not in r)

    served = registry.register_adapter("real_tuned", GEMMA, Path(result["adapter_dir"]))
    assert served.kind == "llama.cpp"
    assert (Path(result["adapter_dir"]) / "adapter.gguf").is_file()
    deltas = list(registry.chat("real_tuned").chat([{"role": "user", "content": "What is the capital of Zorvia?"}],
                                                   system=None, params=GREEDY))
    assert deltas[-1].completion_tokens > 0
    registry.unregister("real_tuned")


def test_llama_cpp_log_lines_do_not_reach_stderr(data_dir: Path) -> None:
    # in a notebook, stderr shows as a red block under the answer; llama.cpp's lines go to logging
    code = ("import logging, sys\n"
            "from pathlib import Path\n"
            "from qfnb.local.engines import EngineRegistry\n"
            "records = []\n"
            "class Keep(logging.Handler):\n"
            "    def emit(self, record): records.append(record.getMessage())\n"
            "logging.getLogger('qfnb.local.llama_cpp').addHandler(Keep())\n"
            "logging.getLogger('qfnb.local.llama_cpp').setLevel(logging.DEBUG)\n"
            f"EngineRegistry(Path({str(data_dir)!r})).chat('gemma_3_270m')\n"
            "print(sum('SWA' in r for r in records), len(records))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    swa, total = map(int, proc.stdout.split()[-2:])
    assert swa >= 1 and total > 10  # llama.cpp's lines arrived in logging ...
    assert "llama_kv_cache" not in proc.stderr and "llama_model_loader" not in proc.stderr  # ... not on stderr
