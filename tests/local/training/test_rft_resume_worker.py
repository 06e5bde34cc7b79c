"""A RFT run goes on from its last resume point: the real worker on a tiny random Gemma 3, SIGKILLed after
its first point and started again by the supervisor, ends as an uninterrupted run does (the same samples,
rewards, losses and adapter); one interrupted while its client scored a step gets that step's rewards
from the journal when it trains it again, so the user's function scores every step once."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from test_resume_worker import KILLED_WORKER, _adapter, _supervised, _until
from test_rft_worker import KEYWORD, _client, _job, _lines

from qfnb.local.training import rewards as exchange
from qfnb.local.training.process import worker
from qfnb.protocol.console.rewards import RewardSpec

pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")

HYPER = {"maxSteps": 4, "checkpoints": 2}  # resume points at the checkpoint of step 2 (none after the last)


def _same_adapter(ours: Path, theirs: Path) -> None:
    a, b = _adapter(ours), _adapter(theirs)
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        assert (tensor - b[name]).abs().max().item() < 1e-5, name


def _curve(job: Path, key: str) -> list[tuple[int, float]]:
    return [(p["step"], p[key]) for p in _lines(job) if key in p]


def test_a_killed_rft_worker_resumes_from_its_point_and_ends_as_an_uninterrupted_run(tmp_path: Path) -> None:
    whole = worker.run(_job(tmp_path / "whole", KEYWORD, **HYPER))
    assert whole["status"] == "Done", whole
    job = _job(tmp_path / "killed", KEYWORD, **HYPER)
    store, sup, run_id = _supervised(tmp_path, job, (sys.executable, str(KILLED_WORKER)))
    done = _until(sup, lambda: (r := store.get("runs", run_id))["status"] not in ("Waiting", "Running") and r)
    assert (job / "killed-once").exists()  # the first worker died by SIGKILL after its step-2 point
    assert done["status"] == "Done", done.get("errorMessage")
    assert (done["resumes"], done["resumedFrom"]) == (1, 2)
    assert [step for step, _ in done["lossCurve"]] == [1, 2, 3, 4]  # no step twice, none missing
    assert [c["step"] for c in done["checkpointList"]] == [2, 4]
    # the policy, AdamW and torch's random state came back: the same answers sampled, the same rewards
    mine, theirs = _lines(job), _lines(tmp_path / "whole" / "job")
    after = [p for p in mine[next(i for i, p in enumerate(mine) if "resumed" in str(p.get("phase"))):] if "reward" in p]
    assert [(p["step"], p["reward"], p["loss"]) for p in after] == [
        (p["step"], p["reward"], pytest.approx(p["loss"], abs=1e-5)) for p in theirs if "reward" in p and p["step"] > 2]
    assert done["rewardCurve"] == [[s, r] for s, r in _curve(tmp_path / "whole" / "job", "reward")]
    m, w = done["metrics"], whole["metrics"]
    for key in ("steps", "trained_tokens", "sampled_tokens", "base_eval_reward", "best_checkpoint",
                "final_reward_mean"):
        assert m[key] == w[key], key
    _same_adapter(Path(done["adapter_dir"]), Path(whole["adapter_dir"]))
    assert not (job / "resume").exists()  # a finished run drops its point
    store.close()


def _scoring_client(job: Path, asked: list[tuple[str, int]], stop: threading.Event) -> None:
    """A reward client (the platform's routes and the user's function): a completion's length is its reward."""
    def reward(request: dict[str, Any]) -> dict[str, Any]:
        asked.append((request["kind"], request["step"]))
        return {"rewards": [float(len(s["completion"])) for s in request["samples"]]}

    _client(job, reward, stop)


class _Killed(BaseException):
    """The worker gone mid-step (not an Exception: the worker's own handler does not see it)."""


def _warm(job: Path) -> Path:
    """The job's prompts with answers to warm-start on (the KL term's reference is then the warm start's)."""
    rows = [{**json.loads(line), "response": "a a a"} for line in (job / "train.jsonl").read_text().splitlines()]
    (job / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return job


@pytest.mark.parametrize("warm_start", [0, 2], ids=["from-the-base", "warm-started"])
def test_a_resumed_rft_run_takes_its_steps_rewards_from_the_journal_not_the_users_function(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warm_start: int) -> None:
    """Warm-started, the resumed run reads the KL term's reference (the warm start's adapter) from its folder."""
    def job_in(folder: Path) -> Path:
        job = _job(folder, {"source": "client"}, **HYPER, warmStartSteps=warm_start, klCoef=0.5)
        return _warm(job) if warm_start else job

    stop = threading.Event()
    whole_asked: list[tuple[str, int]] = []
    _scoring_client(tmp_path / "whole" / "job", whole_asked, stop)
    try:
        whole = worker.run(job_in(tmp_path / "whole"))
        asked: list[tuple[str, int]] = []
        _scoring_client(tmp_path / "cut" / "job", asked, stop)
        job = job_in(tmp_path / "cut")
        journal = exchange.RewardExchange._journal

        def gone_after_step_3(self: Any, step: int, kind: str, *args: Any) -> None:
            journal(self, step, kind, *args)
            if (kind, step) == ("train", 3):  # step 3's rewards came: the worker dies before its update
                raise _Killed

        monkeypatch.setattr(exchange.RewardExchange, "_journal", gone_after_step_3)
        with pytest.raises(_Killed):
            worker.run(job)
        monkeypatch.setattr(exchange.RewardExchange, "_journal", journal)
        assert not (job / "result.json").exists() and (job / "resume").is_dir()
        done = worker.run(job)  # the supervisor starts it again (test_a_killed_rft_worker_... above)
    finally:
        stop.set()
    assert whole["status"] == done["status"] == "Done", done
    assert sorted(asked) == sorted(whole_asked)  # each step's samples scored once, step 3's too
    assert len(asked) == len(set(asked)) == 1 + 4 + 2  # the base's held-out reward, 4 steps, 2 checkpoints
    assert done["metrics"]["reused_rewards"] == 2 * 2  # step 3: batch x group samples from the journal
    # step 3 died before its line: trained again from the step-2 point, with the same samples and rewards
    assert _curve(job, "reward") == _curve(tmp_path / "whole" / "job", "reward")
    assert [s for s, _ in _curve(job, "loss")] == [1, 2, 3, 4]
    kls = [kl for _, kl in _curve(tmp_path / "whole" / "job", "kl")]
    assert [kl for _, kl in _curve(job, "kl")] == pytest.approx(kls, abs=1e-5)
    _same_adapter(Path(done["adapter_dir"]), Path(whole["adapter_dir"]))


def test_a_resumed_exchange_numbers_after_the_folder_and_takes_back_the_dead_workers_request(
        tmp_path: Path) -> None:
    folder = tmp_path / "rewards"
    folder.mkdir()
    (folder / "answer-3.json").write_text(json.dumps({"rewards": [1.0]}))
    (folder / "request-4.json").write_text(json.dumps({"requestId": 4, "samples": []}))
    (folder / "claimed-4").touch()
    (folder / exchange.SCORED).write_text(json.dumps({"step": 2, "kind": "train", "digest": "d", "rewards": [1]})
                                          + "\n" + '{"step": 3, "ki')  # a line cut by a kill
    ex = exchange.RewardExchange(tmp_path, RewardSpec())
    assert ex.seq == 4 and not (folder / "request-4.json").exists()
    assert ex._scored == {(2, "train", "d"): [1.0]}
