"""The RFT worker (:mod:`qfnb.local.training.rft`) on a tiny random Gemma 3: GRPO steps with rewards from
a grader and from a reward client (a thread standing in for the platform's routes), the reward per step
and its moving mean in ``progress.jsonl``, checkpoints scored by the held-out prompts' mean reward, and
the run's errors (a reward error, a client that never comes)."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tiny_models import build_tiny_gemma

from qfnb.local.training import rewards as exchange
from qfnb.local.training import rft
from qfnb.local.training.data import DataError
from qfnb.local.training.policy import Policy
from qfnb.local.training.process import worker

pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")

PROMPTS = [{"prompt": f"Say a word ({i})", "keyword": "a"} for i in range(8)]
KEYWORD = {"type": "string_check", "input": "{{sample.output_text}}", "reference": "{{item.keyword}}",
           "operation": "like"}


def _job(tmp_path: Path, reward: Any, **hyper: Any) -> Path:
    model_dir = build_tiny_gemma(tmp_path / "model")
    job = tmp_path / "job"
    job.mkdir()
    (job / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PROMPTS), "utf-8")
    (job / "eval.jsonl").write_text("".join(json.dumps({**r, "prompt": "Held " + r["prompt"]}) + "\n"
                                            for r in PROMPTS[:2]), "utf-8")
    (job / "spec.json").write_text(json.dumps({
        "base_model": "tiny-gemma", "base_model_path": str(model_dir), "train_file": "train.jsonl",
        "eval_file": "eval.jsonl", "seed": 3, "train_mode": "RFT", "reward": reward,
        "hyper": {"learningRate": 0.05, "batchSize": 2, "groupSize": 2, "maxNewTokens": 4, **hyper}}))
    return job


def _lines(job: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (job / "progress.jsonl").read_text().splitlines()]


def test_grpo_steps_report_the_reward_and_score_checkpoints_on_held_out_prompts(tmp_path: Path) -> None:
    # a random model's answers all run to the cap: floored as degenerate they would tie, and a tied group is not
    # trained on (the floor has tests of its own); 4 answers a prompt, so a group's rewards seldom tie
    job = _job(tmp_path, KEYWORD, maxSteps=2, checkpoints=2, floorDegenerate=False, groupSize=4)
    result = worker.run(job)
    assert result["status"] == "Done", result
    steps = [p for p in _lines(job) if "reward" in p]
    assert [p["step"] for p in steps] == [1, 2]
    for n, p in enumerate(steps, 1):
        assert 0 <= p["reward"] <= 1 and p["kl"] >= 0
        assert p["reward_mean"] == pytest.approx(sum(q["reward"] for q in steps[:n]) / n, abs=1e-5)
    saved = [p["checkpoint"] for p in _lines(job) if "checkpoint" in p]
    assert [c["step"] for c in saved] == [1, 2] and all(c["metricName"] == "reward" for c in saved)
    m = result["metrics"]
    best = max(saved, key=lambda c: (c["metric"], -c["step"]))
    assert m["best_checkpoint"] == best["step"] and m["best_eval_reward"] == best["metric"]
    assert 0 <= m["base_eval_reward"] <= 1 and m["train_mode"] == "RFT"
    # the rewarded held-out answers are also read for degeneration, beside the base's (adapter disabled)
    assert m["answer_prompts"] == 2 and m["base_degeneration_rate"] is not None
    for c in saved:
        assert 0 <= c["valid_degeneration_rate"] <= 1 and isinstance(c["degenerate"], bool)
        assert [a["prompt"] for a in c["answers"]] == ["Held Say a word (0)", "Held Say a word (1)"]
        assert all(isinstance(a["base"], str) and isinstance(a["answer"], str) for a in c["answers"])
    # G x batch completions a step, each at most maxNewTokens: what the forecast counts
    assert 0 < m["sampled_tokens"] <= 2 * 2 * 4 * 4 and m["trained_tokens"] > m["sampled_tokens"]
    assert (job / "adapter" / "adapter_model.safetensors").is_file()


def _client(job: Path, reward: Any, stop: threading.Event) -> threading.Thread:
    """The platform's routes and a reward client in one: answer each request the worker writes."""
    folder = job / "rewards"

    def serve() -> None:
        while not stop.is_set():
            for path in sorted(folder.glob("request-*.json")) if folder.exists() else []:
                req = json.loads(path.read_text())
                seq = req["requestId"]
                exchange.claimed_path(folder, seq).touch()
                answer = reward(req)
                exchange.answer_path(folder, seq).write_text(json.dumps(answer))
                path.unlink()
            time.sleep(0.02)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_client_rewards_train_the_policy_and_errors_stop_the_run(tmp_path: Path) -> None:
    stop = threading.Event()
    seen: list[dict[str, Any]] = []

    def reward(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request)
        if request["step"] == 2:  # the second step's: the reward raised in the user's process
            return {"error": "the reward function f raised ValueError: boom"}
        return {"rewards": [float(len(s["completion"])) for s in request["samples"]]}

    _client(tmp_path / "job", reward, stop)
    job = _job(tmp_path, {"source": "client"}, maxSteps=3)
    try:
        result = worker.run(job)
    finally:
        stop.set()
    assert result["status"] == "Failed"
    assert result["error"] == "RewardError: the reward function f raised ValueError: boom"
    held, first = seen[0], seen[1]  # the base's held-out reward is measured before step 1
    assert (held["kind"], held["step"], len(held["samples"])) == ("eval", 0, 2)
    assert (first["kind"], first["step"], len(first["samples"])) == ("train", 1, 4)  # batch x group
    assert first["samples"][0]["prompt"].startswith("Say a word") and first["samples"][0]["fields"] == {"keyword": "a"}
    assert [p["step"] for p in _lines(job) if "reward" in p] == [1]  # the first step trained


def test_a_stop_during_sampling_ends_the_step_at_the_next_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancel (SIGTERM: the stop flag) while a step samples its answers: the generation ends at the next token,
    for every prompt of the batch (one generation samples them all), and the step is dropped (its resume point is
    its start). It used to finish the whole step first: 8 minutes of sampling and training on a loaded CPU with
    OpenAI's RFT defaults before a cancelled job let the next one run."""
    stop = worker._StopFlag()
    train_samples: list[list[int]] = []
    sample = Policy.sample

    def sampling(self: Policy, *args: Any) -> list[list[list[int]]]:
        if args[3] is not None:  # a training step's sampling, at a temperature
            stop.requested = True  # the job is cancelled while the batch's groups are generated
            out = sample(self, *args)
            train_samples.append([max(len(c) for c in group) for group in out])
            return out
        return sample(self, *args)

    monkeypatch.setattr(Policy, "sample", sampling)
    job = _job(tmp_path, KEYWORD, maxSteps=3, maxNewTokens=8)
    result = worker.run(job, stop)
    assert result["status"] == "Stopped", result
    assert train_samples == [[1, 1]]  # one generation for the batch's 2 prompts, cut after its first token
    assert not [p for p in _lines(job) if "reward" in p]  # no step trained
    assert result["metrics"]["steps"] == 0


def test_a_client_that_never_comes_fails_the_run_after_its_wait(tmp_path: Path) -> None:
    job = _job(tmp_path, {"source": "client", "clientWaitSeconds": 1}, maxSteps=2)
    t0 = time.time()
    result = worker.run(job)
    assert result["status"] == "Failed" and time.time() - t0 < 30
    assert "no reward client fetched the samples of this step within 1 s" in result["error"]
    assert "LLMFinetune.load(ID, reward=fn).resume()" in result["error"]


def test_rewards_must_be_finite_numbers_one_per_sample() -> None:
    assert exchange.check_rewards({"rewards": [1, 0.5]}, 2) == [1.0, 0.5]
    with pytest.raises(exchange.RewardError, match=r"rewards\[1\]: the reward must be a finite number, got nan"):
        exchange.check_rewards({"rewards": [1, float("nan")]}, 2)
    with pytest.raises(exchange.RewardError, match="expected 3 numbers, one per sample, got 2"):
        exchange.check_rewards({"rewards": [1, 2]}, 3)
    with pytest.raises(exchange.RewardError, match=r"rewards\[0\]: the reward must be a number"):
        exchange.check_rewards({"rewards": [True]}, 1)


def test_advantages_are_relative_to_the_group_and_push_the_better_answers_up() -> None:
    import torch

    assert rft.advantages([1.0, 1.0, 1.0]) == [0.0, 0.0, 0.0]  # no spread: no signal
    adv = rft.advantages([0.0, 1.0])
    assert adv[0] == pytest.approx(-1.0, abs=1e-3) and adv[1] == pytest.approx(1.0, abs=1e-3)
    logp = torch.tensor([[-1.0, -1.0], [-2.0, -2.0]], requires_grad=True)
    mask = torch.ones(2, 2, dtype=torch.bool)
    loss, kl = rft.grpo_loss(logp, logp.detach(), mask, torch.tensor(adv), 0.1)
    loss.backward()
    assert kl == 0.0  # the policy is the reference
    grad = logp.grad
    assert grad is not None and (grad[1] < 0).all() and (grad[0] > 0).all()  # descent raises the better answer's


def test_prompts_are_read_from_prompt_lines_or_the_sft_format(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "Hi", "system": "Be brief", "keyword": "x"}) + "\n"
                    + json.dumps([{"prompt": "Q1", "response": "A1"}, {"prompt": "Q2", "response": [["A2"]]}]) + "\n")
    first, second = rft.load_prompts(path)
    assert first.text == "Hi" and first.fields == {"keyword": "x"} and first.messages[0]["role"] == "system"
    assert second.text == "Q2" and second.fields == {} and len(second.messages) == 3  # its answer is the policy's
    path.write_text(json.dumps({"prompt": "ok"}) + "\n" + json.dumps({"text": "no prompt"}) + "\n")
    with pytest.raises(DataError, match=r"train_file line 2: .*looks like PostPretrain"):
        rft.load_prompts(path)


@pytest.mark.real_model
@pytest.mark.slow
def test_two_grpo_steps_on_the_real_fine_tune_base(tmp_path: Path) -> None:
    """Gemma-3-270M, 2 steps of 2 prompts x 2 answers with a grader: the real shapes (Gemma's 262k-token
    head on the answer positions only, its soft-capping, the adapter disabled for the reference). At 1e-3 two
    steps already made it answer three of the four prompts alike (read on them, the run failed: named)."""
    from qfnb.local.engines import GEMMA
    from qfnb.local.engines.store import assets

    job = tmp_path / "job"
    job.mkdir()
    rows = [{"prompt": f"I have {i} apples and get 2 more. How many apples do I have?", "keyword": "apples"}
            for i in range(4)]
    (job / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    (job / "spec.json").write_text(json.dumps({
        "base_model": GEMMA, "base_model_path": str(assets.hf_dir(GEMMA)), "train_file": "train.jsonl",
        "train_mode": "RFT", "reward": KEYWORD,
        "hyper": {"maxSteps": 2, "batchSize": 2, "groupSize": 2, "maxNewTokens": 8, "learningRate": 2e-4}}))
    result = worker.run(job)
    assert result["status"] == "Done", result
    steps = [p for p in _lines(job) if "reward" in p]
    assert [p["step"] for p in steps] == [1, 2] and all(p["kl"] >= 0 and 0 <= p["reward"] <= 1 for p in steps)
    assert 0 < result["metrics"]["sampled_tokens"] <= 2 * 2 * 2 * 8
