"""The training worker's side of a RFT run's rewards: a request file per batch of samples, answered
by the platform's routes on behalf of the reward client, or scored here by a declarative grader.

The exchange lives in ``<job_dir>/rewards/``: the worker writes ``request-N.json`` (the samples:
prompt, completion, the dataset row's other fields), the platform marks it ``claimed-N`` when a
client fetches it and writes ``answer-N.json`` (the rewards, or the error the reward raised) when
the client posts; the answer is kept (a few bytes a step), so a second post of it is refused. The
worker waits, stopping the run with a clear error when no client fetched the request within the
reward's ``clientWaitSeconds`` (the process that gave ``reward=`` is gone) or its rewards did not
come within ``rewardWaitSeconds``. Nothing a user wrote runs here.

Each batch the client scored is journaled in ``scored.jsonl`` (its step, kind, a digest of its samples,
the rewards), so a worker that goes on from a resume point after a kill gets the rewards of the steps
it trains again without asking the user's function twice, when it samples the same answers. A resumed
worker numbers its requests after every one the folder holds and takes back the dead worker's pending one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfnb.protocol.console.rewards import RewardSpec, grade, reward_problem
from qfnb.protocol.platform.files import write_private_json

log = logging.getLogger("qfnb.local.training")

#: how often the worker looks for an answer
POLL_S = 0.05
#: the journal of the batches the client scored
SCORED = "scored.jsonl"
_SEQ = re.compile(r"(?:request|answer|claimed)-(\d+)(?:\.json)?")


class RewardError(RuntimeError):
    """The rewards of a batch could not be had: the reward raised, returned a non-number, or its
    client is gone. The run stops with this message."""


class RewardsStopped(Exception):
    """The run was asked to stop during a step: while it waited for rewards, or sampled and scored the step's
    answers (:meth:`qfnb.local.training.rft.GroupTrainer.step`)."""


@dataclass(frozen=True)
class RewardSample:
    """One sampled completion to score: the prompt's text, the completion, the row's other fields, and the row's
    own answer where it has one (a grader's ``{{item.response}}``; a client's function gets the fields only)."""

    prompt: str
    completion: str
    fields: dict[str, Any]
    answer: str | None = None

    def grader_item(self) -> dict[str, Any]:
        """The row as a grader's ``{{item.FIELD}}`` templates see it: its fields, ``prompt``, and ``response``
        (the row's own answer: a prompt/response line's response, a chat line's last assistant message)."""
        item = {**self.fields, "prompt": self.prompt}
        if self.answer is not None:
            item.setdefault("response", self.answer)
        return item

    def to_wire(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "completion": self.completion, "fields": self.fields}


def request_path(folder: Path, seq: int) -> Path:
    return folder / f"request-{seq}.json"


def answer_path(folder: Path, seq: int) -> Path:
    return folder / f"answer-{seq}.json"


def claimed_path(folder: Path, seq: int) -> Path:
    return folder / f"claimed-{seq}"


def check_rewards(answer: Any, count: int) -> list[float]:
    """The rewards of an answer (``{"rewards": [...]}`` or ``{"error": "..."}``) for ``count`` samples;
    :class:`RewardError` naming the sample and the value when one is not a finite number."""
    if not isinstance(answer, dict):
        raise RewardError("the reward answer is not an object")
    if answer.get("error"):
        raise RewardError(str(answer["error"]))
    rewards = answer.get("rewards")
    if not isinstance(rewards, list) or len(rewards) != count:
        got = len(rewards) if isinstance(rewards, list) else type(rewards).__name__
        raise RewardError(f"rewards: expected {count} numbers, one per sample, got {got}")
    for i, value in enumerate(rewards):
        problem = reward_problem(value)
        if problem is not None:
            raise RewardError(f"rewards[{i}]: the reward {problem}")
    return [float(v) for v in rewards]


class RewardExchange:
    """Scores batches of samples for the training loop (see the module's docstring)."""

    def __init__(self, job_dir: Path, spec: RewardSpec, stopped: Callable[[], bool] = lambda: False) -> None:
        self.spec = spec
        self.folder = Path(job_dir) / "rewards"
        self.stopped = stopped
        self.wait_seconds = 0.0  # time spent waiting for the client's rewards
        self.reused = 0  # samples whose rewards came from the journal (a step trained again after a kill)
        self.seq, self._scored = self._resume()

    def _resume(self) -> tuple[int, dict[tuple[int, str, str], list[float]]]:
        """The last request number the folder holds (a dead worker's pending request taken back) and
        the journal's rewards by ``(step, kind, digest)``."""
        seqs = [int(m.group(1)) for p in self.folder.glob("*") if (m := _SEQ.fullmatch(p.name))]
        for stale in self.folder.glob("request-*.json"):
            stale.unlink(missing_ok=True)
        scored: dict[tuple[int, str, str], list[float]] = {}
        try:
            lines = (self.folder / SCORED).read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
                scored[(int(entry["step"]), str(entry["kind"]), str(entry["digest"]))] = [
                    float(r) for r in entry["rewards"]]
            except (ValueError, KeyError, TypeError):  # a line cut by a kill
                continue
        return max(seqs, default=0), scored

    def score(self, samples: Sequence[RewardSample], *, step: int, kind: str = "train") -> list[float]:
        """One reward per sample; raises :class:`RewardError` or :class:`RewardsStopped`."""
        if self.spec.grader is not None:  # a sample at a time, a cancel heard between two (each is bounded)
            out = []
            for sample in samples:
                if self.stopped():
                    raise RewardsStopped
                try:
                    out.append(grade(self.spec.grader, sample.completion, sample.grader_item()))
                except ValueError as exc:  # a multi grader's formula with no value for these scores
                    raise RewardError(f"{self.spec.describe()}: {exc}") from None
            return out
        wire = [s.to_wire() for s in samples]
        digest = hashlib.sha256(json.dumps(wire, sort_keys=True).encode()).hexdigest()
        known = self._scored.get((step, kind, digest))
        if known is not None and len(known) == len(samples):
            log.info("the rewards of step %d's %d samples (%s) from before the resume point", step, len(samples), kind)
            self.reused += len(samples)
            return known
        self.folder.mkdir(parents=True, exist_ok=True)
        self.seq += 1
        seq, t0 = self.seq, time.time()
        write_private_json(request_path(self.folder, seq), {
            "requestId": seq, "step": step, "kind": kind, "time": t0, "samples": wire})
        try:
            rewards = check_rewards(self._wait(seq, t0), len(samples))
            self._journal(step, kind, digest, rewards)
            return rewards
        finally:
            self.wait_seconds += time.time() - t0
            for path in (request_path(self.folder, seq), claimed_path(self.folder, seq)):
                path.unlink(missing_ok=True)

    def _journal(self, step: int, kind: str, digest: str, rewards: list[float]) -> None:
        self._scored[(step, kind, digest)] = rewards
        fd = os.open(self.folder / SCORED, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            line = json.dumps({"step": step, "kind": kind, "digest": digest, "rewards": rewards}) + "\n"
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def _wait(self, seq: int, t0: float) -> Any:
        answer, claimed = answer_path(self.folder, seq), claimed_path(self.folder, seq)
        while True:
            if answer.exists():
                try:
                    data = json.loads(answer.read_text(encoding="utf-8"))
                except ValueError:  # being written (the platform writes it whole): look again
                    data = None
                if data is not None:  # the request goes (a fetch never sees it pending again); the answer
                    request_path(self.folder, seq).unlink(missing_ok=True)  # stays: a second post is refused
                    return data
            if self.stopped():
                raise RewardsStopped
            now = time.time()
            if not claimed.exists():
                if now - t0 > self.spec.client_wait:
                    raise RewardError(
                        f"no reward client fetched the samples of this step within {self.spec.client_wait:g} s: the "
                        "process that gave reward= (its LLMFinetune or %qftrain) is gone; re-attach with the reward "
                        "function (LLMFinetune.load(ID, reward=fn).resume(), or %qftrain --attach TASK --reward "
                        "module:function) sooner, or raise clientWaitSeconds")
            elif now - claimed.stat().st_mtime > self.spec.reward_wait:
                raise RewardError(f"the reward function did not score the samples of this step within "
                                  f"{self.spec.reward_wait:g} s (rewardWaitSeconds)")
            time.sleep(POLL_S)
