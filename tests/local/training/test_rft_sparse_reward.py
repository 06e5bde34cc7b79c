"""RFT against a reward the base rarely earns (:mod:`qfnb.local.training.rft`), on a tiny random Gemma 3: a
prompt whose answers' rewards all tie draws more groups (``tieResamples``), and a warm start of SFT steps on the
data's preferred answers (``warmStartSteps``) comes before GRPO."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tiny_models import build_tiny_gemma

from qfnb.local.training import rewards as exchange
from qfnb.local.training.process import worker

pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")


def _job(tmp_path: Path, prompts: list[dict[str, Any]], held: list[dict[str, Any]] | None = None,
         **hyper: Any) -> Path:
    model_dir = build_tiny_gemma(tmp_path / "model")
    job = tmp_path / "job"
    job.mkdir()
    (job / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in prompts), "utf-8")
    if held:
        (job / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held), "utf-8")
    (job / "spec.json").write_text(json.dumps({
        **({"eval_file": "eval.jsonl"} if held else {}),
        "base_model": "tiny-gemma", "base_model_path": str(model_dir), "train_file": "train.jsonl", "seed": 3,
        "train_mode": "RFT", "reward": {"source": "client"},
        "hyper": {"learningRate": 0.05, "batchSize": 2, "groupSize": 2, "maxNewTokens": 4, **hyper}}))
    return job


def _run_with(job: Path, reward: Callable[[dict[str, Any]], list[float]]) -> tuple[dict[str, Any], list[Any]]:
    """The worker's run with a reward client (the user's process) answering its requests; the requests seen."""
    folder, seen, stop = job / "rewards", [], threading.Event()

    def serve() -> None:
        while not stop.is_set():
            for path in sorted(folder.glob("request-*.json")) if folder.exists() else []:
                req = json.loads(path.read_text())
                seen.append(req)
                exchange.claimed_path(folder, req["requestId"]).touch()
                exchange.answer_path(folder, req["requestId"]).write_text(json.dumps({"rewards": reward(req)}))
                path.unlink()
            time.sleep(0.02)

    threading.Thread(target=serve, daemon=True).start()
    try:
        return worker.run(job), seen
    finally:
        stop.set()


PROMPTS = [{"prompt": f"Say a word ({i})"} for i in range(4)]


def test_a_group_whose_rewards_all_tie_draws_more_answers_up_to_the_cap(tmp_path: Path) -> None:
    job = _job(tmp_path, PROMPTS, maxSteps=1, tieResamples=2)
    result, seen = _run_with(job, lambda req: [1.0] * len(req["samples"]))  # a reward nothing differs on
    assert result["status"] == "Done", result
    # the step's 2 prompts x 2 answers, then twice more for both tied prompts: 3 requests of 4 samples
    assert [(r["step"], len(r["samples"])) for r in seen] == [(1, 4), (1, 4), (1, 4)]
    assert [r["samples"][0]["prompt"] for r in seen[1:]] == [seen[0]["samples"][0]["prompt"]] * 2
    m = result["metrics"]
    assert m["resampled_groups"] == 4 and m["tied_groups"] == 2


def test_an_extra_draw_that_breaks_the_tie_ends_the_resampling(tmp_path: Path) -> None:
    job = _job(tmp_path, PROMPTS, maxSteps=1, tieResamples=3)
    calls: list[int] = []

    def reward(req: dict[str, Any]) -> list[float]:
        calls.append(1)  # the first draw ties (0 for all); the next differs from it
        return [0.0] * len(req["samples"]) if len(calls) == 1 else [1.0, 0.0] * (len(req["samples"]) // 2)

    result, seen = _run_with(job, reward)
    assert result["status"] == "Done", result
    assert len(seen) == 2 and result["metrics"]["resampled_groups"] == 2 and result["metrics"]["tied_groups"] == 0
    steps = [json.loads(x) for x in (job / "progress.jsonl").read_text().splitlines() if '"reward"' in x]
    assert steps[0]["reward"] == 0.0  # the step's reward is its first draws' mean, as without resampling


def test_no_resampling_by_default_on_the_worker(tmp_path: Path) -> None:
    job = _job(tmp_path, PROMPTS, maxSteps=1)
    result, seen = _run_with(job, lambda req: [1.0] * len(req["samples"]))
    assert result["status"] == "Done" and len(seen) == 1 and "resampled_groups" not in result["metrics"]


def test_a_warm_start_trains_the_preferred_answers_before_grpo(tmp_path: Path) -> None:
    prompts = [{"prompt": f"Say a word ({i})", "response": "OK OK OK"} for i in range(4)]
    job = _job(tmp_path, prompts, maxSteps=1, warmStartSteps=4)
    result, seen = _run_with(job, lambda req: [float(len(s["completion"])) for s in req["samples"]])
    assert result["status"] == "Done", result
    lines = [json.loads(x) for x in (job / "progress.jsonl").read_text().splitlines()]
    warm = [p["warm_start_loss"] for p in lines if "warm_start_step" in p]
    assert len(warm) == 4 and result["metrics"]["warm_start_steps"] == 4
    assert warm[-1] < warm[0]  # the one preferred answer is learned
    first_grpo = next(i for i, p in enumerate(lines) if "reward" in p)
    assert max(i for i, p in enumerate(lines) if "warm_start_step" in p) < first_grpo
    assert seen[0]["samples"][0]["fields"] == {}  # the answer is no reward field


@pytest.mark.parametrize("held_out", [True, False])
def test_the_datas_own_answers_are_scored_once_before_step_1(tmp_path: Path, held_out: bool) -> None:
    """With ``tieResamples``, the reward of each prompt's own answer is asked for once, after the base's answers
    (to the held-out prompts, or else to a few training prompts) and before the first draw: a tie at it (above the
    base's) is not drawn again."""
    prompts = [{"prompt": f"Say a word ({i})", "response": f"Done. [Ticket #{i}]"} for i in range(4)]
    job = _job(tmp_path, prompts, [{"prompt": "Say a held word"}] if held_out else None, maxSteps=1,
               tieResamples=1, checkpoints=1 if held_out else 0)
    result, seen = _run_with(job, lambda req: [float("Ticket" in s["completion"]) for s in req["samples"]])
    assert result["status"] == "Done", result
    base = ("eval", 0) if held_out else ("base", 0)
    assert [(r["kind"], r["step"]) for r in seen[:3]] == [base, ("answers", 0), ("train", 1)]
    if not held_out:  # the base answered the training prompts its final answers are read on
        assert sorted(s["prompt"] for s in seen[0]["samples"]) == sorted(p["prompt"] for p in prompts)
        assert result["metrics"]["final_answers"]["prompts"] == 4
    assert sorted(s["completion"] for s in seen[1]["samples"]) == sorted(p["response"] for p in prompts)
    assert sum(r["kind"] == "answers" for r in seen) == 1


def test_no_warm_start_without_preferred_answers(tmp_path: Path) -> None:
    job = _job(tmp_path, PROMPTS, maxSteps=1, warmStartSteps=4)
    result, _ = _run_with(job, lambda req: [float(len(s["completion"])) for s in req["samples"]])
    assert result["status"] == "Done" and "warm_start_steps" not in result["metrics"]


def test_the_kl_reference_after_a_warm_start_is_the_warm_started_policy(tmp_path: Path) -> None:
    """The KL term holds GRPO near where the warm start left the policy, as DPO after SFT is held (a Chinese base
    that only loops would otherwise pull the policy back to looping): at the first GRPO step, before any update,
    policy and reference are one."""
    prompts = [{"prompt": f"Say a word ({i})", "response": "OK OK OK"} for i in range(4)]
    job = _job(tmp_path, prompts, maxSteps=2, warmStartSteps=4, klCoef=0.5)
    result, _ = _run_with(job, lambda req: [float(n % 2) for n in range(len(req["samples"]))])  # never a tie
    assert result["status"] == "Done", result
    kls = [p["kl"] for p in map(json.loads, (job / "progress.jsonl").read_text().splitlines()) if "kl" in p]
    assert kls[0] == 0.0 and kls[1] > 0.0  # the base as reference: the warm start's own distance, at step 1
    assert not (job / "resume.kept").exists()  # kept for a resume (test_rft_resume_worker), dropped at the end


def test_the_reference_swaps_the_kept_weights_in_and_puts_the_trained_ones_back(tmp_path: Path) -> None:
    import torch

    from qfnb.local.training import lora
    from qfnb.local.training.policy import Policy
    from qfnb.local.training.spec import Hyper

    model, tok = lora.load_base(build_tiny_gemma(tmp_path / "model"))
    policy = Policy(lora.add_lora(model, Hyper()), tok)
    trained = [p for p in policy.model.parameters() if p.requires_grad]
    prompt = policy.encode(({"role": "user", "content": "Hi"},))
    answers = [[5, 6, 7], [8, 9]]

    def logp() -> Any:
        with torch.no_grad():
            return policy.logprobs(prompt, answers)[0]

    with torch.no_grad():
        for p in trained:
            p.add_(0.05 * torch.randn_like(p))
    kept = logp()
    with policy.reference():  # nothing kept: the base
        assert not torch.equal(logp(), kept)
        with policy.model.disable_adapter():
            base = logp()
        assert torch.equal(logp(), base)
    policy.keep_reference()
    with torch.no_grad():
        for p in trained:
            p.add_(0.05 * torch.randn_like(p))
    moved = logp()
    with policy.reference():
        assert torch.equal(logp(), kept)
    assert torch.equal(logp(), moved)  # the trained weights are back, the same tensors the optimizer holds
    assert [p for p in policy.model.parameters() if p.requires_grad] == trained


def test_a_loops_start_maps_to_the_token_whose_text_reaches_it(tmp_path: Path) -> None:
    from qfnb.local.training import lora
    from qfnb.local.training.policy import Policy
    from qfnb.protocol.console.degeneration import check_answer

    _, tok = lora.load_base(build_tiny_gemma(tmp_path / "model"))
    policy = Policy(object(), tok)
    answer = "可以。\n可以。\n可以。\n可以。[Ticket #1889]"
    ids = tok(answer, add_special_tokens=False)["input_ids"]
    k = policy.token_at(ids, check_answer(answer).loop_start or 0)
    assert policy.text(ids[:k]) == "可以。\n" and policy.text(ids[k:]).startswith("可")
    assert policy.token_at(ids, 0) == 0
