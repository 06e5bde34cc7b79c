"""The worker's other train modes on a tiny random Gemma 3: DPO and KTO against the adapter-disabled base,
PostPretrain on packed plain text, each scored on its held-out split at the checkpoints (Contract 4's
``train_mode``)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest
from tiny_models import build_tiny_gemma

from qfnb.local.training.process import worker
from qfnb.protocol.console import checkpoints as ckpt

pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")

#: prefer the answer that ends with "OK." (the toy preference the real check uses too)
PAIRS = [[{"prompt": f"Say something about {w}.", "chosen": f"{w} is fine. OK.", "rejected": f"{w} is fine."}]
         for w in ("cats", "dogs", "rain", "tea", "maps", "jazz", "salt", "wool", "iron", "figs", "moss", "kelp")]
HELD_PAIRS = [[{"prompt": f"Say something about {w}.", "chosen": f"{w} is fine. OK.", "rejected": f"{w} is fine."}]
              for w in ("snow", "corn", "silk", "gold")]
TEXT = [{"text": f"The lighthouse keeper of isle {i} counts {i * 7} gulls at dawn and writes the number down."}
        for i in range(24)]


def _job(tmp_path: Path, mode: str, train: list[Any], held: list[Any], **hyper: Any) -> Path:
    model_dir = build_tiny_gemma(tmp_path / "model")
    job = tmp_path / "job"
    job.mkdir()
    for name, rows in (("train", train), ("eval", held)):
        (job / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    (job / "spec.json").write_text(json.dumps({
        "base_model": "tiny-gemma", "base_model_path": str(model_dir), "train_file": "train.jsonl",
        "eval_file": "eval.jsonl", "seed": 3, "train_mode": mode,
        "hyper": {"learningRate": 0.02, "batchSize": 4, "maxSeqLen": 64, **hyper}}))
    return job


def _lines(job: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (job / "progress.jsonl").read_text().splitlines()]


def test_dpo_learns_the_preferred_answer_and_scores_each_checkpoint_on_held_out_pairs(tmp_path: Path) -> None:
    job = _job(tmp_path, "DPO", PAIRS, HELD_PAIRS, maxSteps=9, checkpoints=3, beta=0.5)
    result = worker.run(job)
    assert result["status"] == "Done", result
    saved = [p["checkpoint"] for p in _lines(job) if "checkpoint" in p]
    assert [c["step"] for c in saved] == [3, 6, 9]
    for c in saved:
        assert 0 <= c["valid_preference_accuracy"] <= 1 and math.isfinite(c["valid_reward_margin"])
    # the tiny model learns the toy preference: the held-out pairs prefer "OK." by the end
    assert saved[-1]["valid_preference_accuracy"] == 1.0 and saved[-1]["valid_reward_margin"] > 0
    assert saved[-1]["evalLoss"] < math.log(2)  # below the untrained model's -log sigmoid(0)
    m = result["metrics"]
    assert m["train_mode"] == "DPO" and m["best_checkpoint"] == ckpt.best_checkpoint(saved)["step"]  # type: ignore[index]
    steps = [p for p in _lines(job) if "loss" in p]
    assert all("reward_accuracy" in p and "reward_margin" in p for p in steps)
    assert m["trained_tokens"] > 0


def test_kto_takes_qianfan_single_answers_and_reports_its_reference_point(tmp_path: Path) -> None:
    items = ([[{"user": p[0]["prompt"], "chosen": p[0]["chosen"]}] for p in PAIRS]
             + [[{"prompt": p[0]["prompt"], "rejected": p[0]["rejected"]}] for p in PAIRS])
    held = [{"prompt": p[0]["prompt"], "completion": p[0][key], "label": key == "chosen"}
            for p in HELD_PAIRS for key in ("chosen", "rejected")]
    job = _job(tmp_path, "KTO", items, held, maxSteps=12, checkpoints=3, beta=0.5, undesirableWeight=1.2)
    result = worker.run(job)
    assert result["status"] == "Done", result
    saved = [p["checkpoint"] for p in _lines(job) if "checkpoint" in p]
    assert [c["step"] for c in saved] == [4, 8, 12]
    # good held-out answers above 0, bad ones below, for most items by the best checkpoint
    best = ckpt.best_checkpoint(saved)
    assert best is not None and result["metrics"]["best_checkpoint"] == best["step"]
    assert best["valid_preference_accuracy"] > 0.5 and best["valid_reward_margin"] > 0
    steps = [p for p in _lines(job) if "loss" in p]
    assert all(p["kl"] >= 0 for p in steps)


def test_post_pretrain_lowers_held_out_perplexity_from_the_base(tmp_path: Path) -> None:
    job = _job(tmp_path, "PostPretrain", TEXT[:20], TEXT[20:], maxSteps=12, checkpoints=2, maxSeqLen=48)
    result = worker.run(job)
    assert result["status"] == "Done", result
    m = result["metrics"]
    saved = [p["checkpoint"] for p in _lines(job) if "checkpoint" in p]
    assert saved[-1]["valid_perplexity"] == pytest.approx(math.exp(saved[-1]["evalLoss"]), rel=1e-3)
    assert m["valid_perplexity"] < m["base_valid_perplexity"]


def test_a_dataset_in_another_modes_format_fails_naming_its_line(tmp_path: Path) -> None:
    sft = [{"prompt": "hi", "response": "hello"}]
    job = _job(tmp_path, "DPO", PAIRS[:2] + sft, HELD_PAIRS)
    result = worker.run(job)
    assert result["status"] == "Failed"
    assert "train_file line 3: looks like SFT (prompt/response) data; DPO wants" in result["error"]


def test_post_pretrain_learns_preference_pairs_as_conversations_for_min_steps(tmp_path: Path) -> None:
    """A preference file given to PostPretrain: each pair's preferred conversation in the base's chat format (the
    rejected answer never learned); a corpus of one step an epoch is passed over again until ``minSteps``; its
    held-out conversations are answered at each checkpoint and read for degeneration."""
    from transformers import AutoTokenizer

    from qfnb.local.training import pretrain
    from qfnb.protocol.console.train_formats import parse_item

    job = _job(tmp_path, "PostPretrain", PAIRS[:4], HELD_PAIRS, minSteps=3, checkpoints=1, maxSeqLen=256)
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "model"))
    blocks = pretrain.encode(tok, [r for p in PAIRS[:4] for r in parse_item("PostPretrain", p, "l")], 256)
    text = tok.decode(blocks[0][0])
    turns = "<start_of_turn>user\nSay something about cats.<end_of_turn>\n<start_of_turn>model\ncats is fine. OK."
    assert turns in text
    assert len(blocks) == 1  # four short conversations: one block, one step an epoch
    result = worker.run(job)
    assert result["status"] == "Done", result
    assert result["metrics"]["steps"] == 3  # 3 passes, not 1
    (entry,) = [p["checkpoint"] for p in _lines(job) if "checkpoint" in p]
    assert entry["answers"] and ckpt.DEGENERATION_RATE in entry


def test_post_pretrain_does_not_learn_the_template_s_default_system_message(tmp_path: Path) -> None:
    """Qwen's template writes "You are Qwen, created by Alibaba Cloud..." into every conversation given without a
    system message; learned, a tuned model recited it as an answer (measured: 1 of 10 held-out answers). What the
    template writes before the first message is context; the turns from the first message on are learned."""
    from tiny_models import build_tiny_qwen
    from transformers import AutoTokenizer

    from qfnb.local.training import pretrain
    from qfnb.local.training.data import IGNORE
    from qfnb.protocol.console.train_formats import parse_item

    tok = AutoTokenizer.from_pretrained(str(build_tiny_qwen(tmp_path / "model")))
    default = "You are Tiny, a helpful assistant."
    tok.chat_template = ("{% if messages[0]['role'] != 'system' %}<|im_start|>system\n" + default + "<|im_end|>\n"
                         "{% endif %}" + tok.chat_template)
    records = [r for p in PAIRS[:2] for r in parse_item("PostPretrain", p, "l")]
    ((ids, labels),) = pretrain.encode(tok, records, 256)
    learned = tok.decode([t for t, label in zip(ids, labels, strict=True) if label != IGNORE])
    assert default in tok.decode(ids)  # the model is shown it, as it will be when asked
    assert default not in learned and "Tiny" not in learned
    assert "Say something about cats.<|im_end|>" in learned and "cats is fine. OK.<|im_end|>" in learned
    # plain text is learned whole
    ((ids, labels),) = pretrain.encode(tok, [r for t in TEXT[:2] for r in parse_item("PostPretrain", t, "l")], 256)
    assert labels == ids
