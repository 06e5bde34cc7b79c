"""The preference losses' terms against a collapse (:mod:`qfnb.local.training.preference`): RPO's NLL of the
preferred answer, length-normalised log-ratios, the reward-margin cap, each checked against a hand computation,
and the margin early stop ending a worker run on a tiny random Gemma 3."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")

torch = pytest.importorskip("torch")

from qfnb.local.training.preference import DPOTask, KTOTask  # noqa: E402
from qfnb.local.training.spec import Hyper  # noqa: E402

# two pairs: the preferred answers' log-probabilities, then the rejected ones'; the reference's; token counts
LOGPS = [-4.0, -6.0, -9.0, -30.0]
REF = [-5.0, -6.5, -8.0, -20.0]
LENGTHS = [4, 2, 3, 10]


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _dpo(hyper: Hyper, logps: list[float] = LOGPS) -> tuple[float, dict[str, float]]:
    loss, stats = DPOTask(hyper, pad_id=0).terms(torch.tensor(logps), torch.tensor(REF), torch.tensor(LENGTHS),
                                                  torch.zeros(1))
    return float(loss), stats


def test_rpo_alpha_adds_the_preferred_answers_per_token_nll() -> None:
    beta = 0.1
    margins = [beta * ((-4 + 5) - (-9 + 8)), beta * ((-6 + 6.5) - (-30 + 20))]  # 0.2, 1.05
    dpo = sum(-math.log(_sig(m)) for m in margins) / 2
    nll = (4 / 4 + 6 / 2) / 2  # -(log p / tokens) of the preferred answers, averaged: 2.0
    plain, stats = _dpo(Hyper(beta=beta))
    assert plain == pytest.approx(dpo, rel=1e-5) and stats["chosen_nll"] == pytest.approx(nll)
    with_rpo, _ = _dpo(Hyper(beta=beta, rpo_alpha=0.5))
    assert with_rpo == pytest.approx(dpo + 0.5 * nll, rel=1e-5)
    assert stats["reward_margin"] == pytest.approx(sum(margins) / 2, rel=1e-5)


def test_length_normalisation_compares_log_ratios_per_answer_token() -> None:
    beta = 2.0
    per_token = [(-4 + 5) / 4, (-6 + 6.5) / 2, (-9 + 8) / 3, (-30 + 20) / 10]
    margins = [beta * (per_token[0] - per_token[2]), beta * (per_token[1] - per_token[3])]
    loss, stats = _dpo(Hyper(beta=beta, length_normalize=True))
    assert loss == pytest.approx(sum(-math.log(_sig(m)) for m in margins) / 2, rel=1e-5)
    assert stats["reward_margin"] == pytest.approx(sum(margins) / 2, rel=1e-5)
    # summed, the long rejected answer's -10 dominates the second pair's margin; per token it does not
    assert _dpo(Hyper(beta=beta))[1]["reward_margin"] > 5 * stats["reward_margin"]


def test_the_margin_cap_stops_pushing_a_pair_already_past_it() -> None:
    logps = torch.tensor(LOGPS, requires_grad=True)
    loss, _ = DPOTask(Hyper(beta=1.0, max_reward_margin=3.0), pad_id=0).terms(
        logps, torch.tensor(REF), torch.tensor(LENGTHS), torch.zeros(1))
    loss.backward()  # type: ignore[no-untyped-call]
    # pair 1's margin is 2.0 (under the cap: pushed), pair 2's 10.5 (past it: counted as 3, no gradient)
    assert float(loss.detach()) == pytest.approx((-math.log(_sig(2.0)) - math.log(_sig(3.0))) / 2, rel=1e-5)
    grad = logps.grad.tolist()
    assert grad[0] < 0 and grad[2] > 0 and grad[1] == 0 and grad[3] == 0


def test_kto_caps_each_answers_reward_and_takes_the_nll_of_the_good_answers_only() -> None:
    logps, ref, lengths = torch.tensor([-2.0, -9.0, -3.0]), torch.tensor([-4.0, -5.0, -3.5]), torch.tensor([2, 3, 1])
    extra = torch.tensor([1.0, 0.0, 1.0, 0.5])  # good, bad, good; the reference point z0 = 0.5
    hyper = Hyper(beta=1.0, max_reward_margin=1.0, rpo_alpha=1.0)
    loss, stats = KTOTask(hyper, pad_id=0).terms(logps, ref, lengths, extra)
    rewards = [min(1.0, 2.0 - 0.5), min(1.0, 0.5 - (-4.0)), min(1.0, 0.5 - 0.5)]  # good: r - z0; bad: z0 - r
    kto = sum(1 - _sig(r) for r in rewards) / 3
    nll = (2 / 2 + 3 / 1) / 2
    assert float(loss) == pytest.approx(kto + nll, rel=1e-5) and stats["chosen_nll"] == pytest.approx(nll)


def test_a_margin_stop_ends_the_run_and_says_why(tmp_path: Path) -> None:
    from tiny_models import build_tiny_gemma

    from qfnb.local.training.process import worker

    pairs = [{"prompt": f"Say something about {w}.", "chosen": f"{w} is fine. OK.", "rejected": f"{w} is fine."}
             for w in ("cats", "dogs", "rain", "tea", "maps", "jazz", "salt", "wool")]
    model_dir = build_tiny_gemma(tmp_path / "model")
    job = tmp_path / "job"
    job.mkdir()
    (job / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs), "utf-8")
    (job / "spec.json").write_text(json.dumps({
        "base_model": "tiny-gemma", "base_model_path": str(model_dir), "train_file": "train.jsonl", "seed": 3,
        "train_mode": "DPO", "hyper": {"learningRate": 0.05, "batchSize": 4, "maxSeqLen": 64, "maxSteps": 30,
                                       "beta": 0.5, "marginStop": 0.5}}))
    result = worker.run(job)
    assert result["status"] == "Done", result
    steps = [json.loads(x) for x in (job / "progress.jsonl").read_text().splitlines()]
    margins = [p["reward_margin"] for p in steps if "reward_margin" in p]
    m = result["metrics"]
    assert m["steps"] < 30 and m["early_stopped_at"] == m["steps"] == len(margins)
    assert (margins[-1] + margins[-2]) / 2 >= 0.5 and "marginStop=0.5" in m["stopped_by"]
    assert (job / "adapter" / "adapter_model.safetensors").is_file()
