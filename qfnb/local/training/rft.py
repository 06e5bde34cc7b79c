"""Reinforcement fine-tuning in the training worker: group-relative policy optimisation (GRPO) of a
LoRA adapter with a reward over sampled answers.

Each step takes ``batchSize`` prompts; for each it samples ``groupSize`` completions from the current
policy (:mod:`qfnb.local.training.policy`: ``temperature``, top-k and top-p as its ``_Draw`` draws them, at most
``maxNewTokens`` new tokens; all the prompts' in one left-padded generation, as the held-out answers are), has them
scored
(:class:`~qfnb.local.training.rewards.RewardExchange`: the user's function in the user's process, or
a declarative grader), and turns the rewards into advantages within the group,
``(r - mean) / (std + eps)``. The loss on the completion tokens is the policy gradient of those
advantages plus ``klCoef`` times the KL divergence to the reference policy (the ``k3`` estimator, per token):
the policy the warm start left (below), as the preference modes' reference is and as RL after SFT takes it, or the
base with the adapter disabled when there was none, each completion's mean over its tokens, averaged over the
group, as in DeepSeekMath's GRPO with one policy update per batch (so the clipped ratio is 1).

Written on qfnb's own peft loop rather than TRL's ``GRPOTrainer``: TRL calls its reward functions in
the training process (here they live in another process, behind the platform), and the loop shares
SFT's answer-only LM head (Gemma's 262k-token vocabulary costs more than the model otherwise),
checkpoints and progress lines.

``progress.jsonl`` gets the step's mean reward and its moving mean beside the loss; checkpoints are
scored by the mean reward of greedy answers to held-out prompts (never trained on; ``metric``,
``metricName`` ``"reward"``) and the best is the one with the highest that did not degenerate: the same answers
are read beside the base's (:mod:`qfnb.local.training.answers`), and a checkpoint whose answers degenerated ends
the run there, as SFT's and the preference modes' do.

Against a reward the base rarely earns (every answer of a group scoring the same gives no advantage, so
nothing is learned):

- ``tieResamples``: a prompt whose ``groupSize`` answers all got the same reward draws another group, up to
  this many times, until the rewards differ; the group then trains on all its answers (one that still ties is
  not trained on). Not a group whose answers all earned the best reward the run has seen (and some answer
  less), or what the prompt's own answer earns where the data has one that earns more than the base's answers
  did (held-out ones, or else a few training prompts; scored once, before step 1), none degenerate: the policy
  is already where the reward wants it.
  The step's reported reward is its first draws' mean.
- ``warmStartSteps``: when the data's prompts carry their answer (SFT lines ``{"prompt", "response"}`` or
  chat data ending with the assistant's message: a preference set's preferred answers), that many SFT steps
  on those answers come before the first GRPO step, so the policy starts where the reward is sometimes earned.
- ``floorDegenerate`` (on by default): a sampled answer the degeneration check flags
  (:func:`~qfnb.protocol.console.degeneration.check_answer`: cut at ``maxNewTokens``, a repeat, a bare marker,
  empty) earns less than its group's lowest, whatever the reward said, so GRPO pushes it down: a reward of
  "holds a ticket reference and is short" is otherwise earned best by the reference repeated. The step's
  progress line counts them (``degenerate``), ``metrics.degenerate_samples`` the run's. A floored loop is pushed
  down from where it begins to repeat (:func:`blamed`), not on its first pass. So is an answer that is one
  answer given to most of the step's prompts (numbers aside, where the rows have answers): it fits every question
  and says nothing about any (``metrics.shared_samples``).
- partial credit is the reward's own (``docs/train-modes.md``): a reward of 0.5 per property met ranks
  answers that meet one above those that meet none.

A run keeps :mod:`~qfnb.local.training.resume` points as SFT's loop does (at each checkpoint, every
minute, on a stop), with the rewards so far; a killed worker started again goes on from its last one,
torch's random state included, so it samples the same answers an uninterrupted run would, and the
exchange gives the steps it trains again the rewards the user's function already returned for them.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfnb.local.training import answers, data, lora, resume
from qfnb.local.training.policy import Policy, Stop
from qfnb.local.training.rewards import RewardExchange, RewardSample, RewardsStopped
from qfnb.local.training.spec import WorkerSpec, progress_note
from qfnb.protocol.console import checkpoints as ckpt
from qfnb.protocol.console import train_formats
from qfnb.protocol.console.degeneration import check_answer, shared_answers
from qfnb.protocol.console.rewards import RewardSpec, moving_mean

log = logging.getLogger("qfnb.local.training")

#: the warm start's adapter weights, the KL term's reference, as the run's resume keeps them (:func:`resume.keep`)
REFERENCE = "reference-adapter.pt"
#: added to the group's reward spread (all equal: no advantage, no signal)
EPS = 1e-4
#: the checkpoints' held-out mean reward is ``metric`` under this name
METRIC_NAME = "reward"


@dataclass(frozen=True)
class RftPrompt:
    """A prompt to sample answers to: the conversation up to the answer, its last user turn, the row's
    other fields (a reference answer, a keyword...: the reward gets them as keyword arguments)."""

    messages: tuple[dict[str, str], ...]
    text: str
    fields: dict[str, Any]
    answer: str | None = None  # the line's own (preferred) answer, for ``warmStartSteps``


def load_prompts(path: Path, name: str = "train_file") -> list[RftPrompt]:
    """RFT prompts (:mod:`qfnb.protocol.console.train_formats`: ``{"prompt": ...}`` lines whose other fields go to
    the reward, chat ``messages``, or SFT data with its answers ignored); DataError naming the line."""
    try:
        items = train_formats.parse_file("RFT", path, name)
    except train_formats.FormatError as exc:
        raise data.DataError(str(exc)) from None
    out = []
    for item in items:
        assert isinstance(item, train_formats.PromptItem)
        messages = tuple(dict(m) for m in item.messages)
        out.append(RftPrompt(messages, str(messages[-1]["content"]), dict(item.extra), item.answer))
    return out


@dataclass
class _Run:
    status: str = "Done"
    step: int = 0
    loss: float = float("nan")
    rewards: list[float] = field(default_factory=list)  # each step's mean reward
    recent: list[float] = field(default_factory=list)  # losses since the last checkpoint
    recent_rewards: list[float] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    sampled_tokens: int = 0
    trained_tokens: int = 0
    sample_seconds: float = 0.0
    scoring_seconds: float = 0.0
    early_stopped: bool = False
    collapse: dict[str, Any] | None = None  # where the held-out answers collapsed (checkpoints.collapse)
    base_reward: float | None = None  # the held-out prompts' mean reward before step 1
    resampled_groups: int = 0  # extra groups drawn for prompts whose answers' rewards all tied
    still_tied: int = 0  # groups whose rewards still tied after every extra draw
    skipped_groups: int = 0  # groups not trained on: their rewards tied (no advantage)
    saturated_groups: int = 0  # tied groups not drawn again: every answer earned the best reward seen
    best_reward: float | None = None  # the highest and lowest reward a sampled answer has earned
    worst_reward: float | None = None
    degenerate_samples: int = 0  # sampled answers the degeneration check flagged (floored: ``floorDegenerate``)
    shared_samples: int = 0  # of those, the ones flagged as one answer given to most of a step's prompts
    step_degenerate: int = 0  # those of the step under way
    warm_steps: int = 0  # SFT steps on the preferred answers before GRPO
    resume_seconds: float = 0.0
    resume_points: int = 0

    #: what a resume point keeps of the run (:meth:`state`, :meth:`restore`)
    KEPT = ("step", "loss", "rewards", "recent", "recent_rewards", "checkpoints", "sampled_tokens",
            "trained_tokens", "base_reward", "best_reward", "worst_reward")

    def state(self) -> dict[str, Any]:
        fields = vars(self)
        return {name: fields[name] for name in self.KEPT}

    def restore(self, state: dict[str, Any]) -> None:
        vars(self).update({name: state[name] for name in self.KEPT if name in state})  # a point of round 32 lacks some


def advantages(rewards: list[float]) -> list[float]:
    """Group-relative advantages: ``(r - mean) / (std + EPS)`` (the population std)."""
    mean = sum(rewards) / len(rewards)
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / len(rewards))
    return [(r - mean) / (std + EPS) for r in rewards]


def floored(rewards: list[float], degenerate: list[bool]) -> list[float]:
    """The rewards GRPO learns from with ``floorDegenerate``: a degenerate answer's is below its group's lowest,
    by the group's spread (1 where every answer scored the same), so beside any answer that is not degenerate its
    advantage is negative, however the user's reward scored it (a group whose answers all earn the reward's best,
    the marker repeated among them, would otherwise tie and teach nothing); the others' as given."""
    low, high = min(rewards), max(rewards)
    floor = low - ((high - low) or 1.0)
    return [floor if bad else r for r, bad in zip(rewards, degenerate, strict=True)]


def blamed(mask: Any, blame: Sequence[int]) -> Any:
    """The loss mask with each answer's tokens before its ``blame`` token left out: a floored loop is pushed down
    from where it began to repeat, not on its first pass (``可以。[Ticket #1888]`` then that again: pushed down
    whole, the ticket the reward wanted was unlearned with the loop, and Gemma-3-270M's Chinese answers lost it)."""
    out = mask.clone()
    for row, start in enumerate(blame):
        out[row, :start] = False
    return out


def _ties(rewards: list[float]) -> bool:
    """All the rewards are the same (no advantage to learn from)."""
    return max(rewards) - min(rewards) <= EPS


def grpo_loss(logp: Any, ref_logp: Any | None, mask: Any, adv: Any, kl_coef: float) -> tuple[Any, float]:
    """GRPO's loss of one group and its mean per-token KL to the reference: the policy gradient
    ``-exp(logp - logp.detach()) * A`` plus ``kl_coef`` times the k3 estimate of the KL, each
    completion's mean over its tokens, averaged over the group."""
    import torch

    per_token = -torch.exp(logp - logp.detach()) * adv.unsqueeze(1)
    kl_value = 0.0
    if ref_logp is not None:
        delta = ref_logp - logp
        kl = torch.exp(delta) - delta - 1
        per_token = per_token + kl_coef * kl
        kl_value = float((kl.detach() * mask).sum() / mask.sum().clamp(min=1))
    per_seq = (per_token * mask).sum(1) / mask.sum(1).clamp(min=1)
    return per_seq.mean(), kl_value


@dataclass
class SampledGroup:
    """A prompt's sampled answers (token ids), the user's reward of each, and which are degenerate."""

    index: int  # the prompt's
    completions: list[list[int]]
    rewards: list[float]
    degenerate: list[bool]
    texts: list[str]  # the answers decoded (as the reward read them)
    #: the token each answer's loss starts at: 0, or where a degenerate answer's loop begins (:func:`blamed`)
    blame: list[int] = field(default_factory=list)

    def extend(self, more: SampledGroup) -> None:
        """Another draw for the same prompt (``tieResamples``) added to this one."""
        self.completions.extend(more.completions)
        self.texts.extend(more.texts)
        self.rewards.extend(more.rewards)
        self.degenerate.extend(more.degenerate)
        self.blame.extend(more.blame)


class GroupTrainer:
    """One RFT run's state: the policy, its optimizer, the prompts and the reward exchange."""

    def __init__(self, job_dir: Path, spec: WorkerSpec, stop: Stop, policy: Policy, optimizer: Any,
                 prompts: list[RftPrompt], held: list[RftPrompt], exchange: RewardExchange) -> None:
        self.job_dir, self.spec, self.stop, self.policy = job_dir, spec, stop, policy
        self.optimizer, self.prompts, self.held, self.exchange = optimizer, prompts, held, exchange
        self.encoded = [policy.encode(p.messages) for p in prompts]
        self.held_encoded = [policy.encode(p.messages) for p in held]
        self.rng: Any = None  # torch's random state at the start of the step under way
        self.targets: list[float | None] = [None] * len(prompts)  # each prompt's own answer's reward
        self.base_train_reward: float | None = None  # the base's answers' to a few training prompts (read_base)
        # the held-out prompts' greedy answers, in one batch, read for degeneration beside the base's
        self.answers = answers.AnswerSet([answers.HeldPrompt(p.messages, _reference(p)) for p in held], policy.tok,
                                         max_tokens=spec.hyper.max_new_tokens) if held else None

    def step(self, run: _Run, idx: list[int]) -> tuple[float, float, float]:
        """One optimizer step on the prompts ``idx``: ``(loss, mean reward, mean KL)``. A stop while it
        samples, waits for the rewards or computes the groups' losses (:class:`RewardsStopped`, before the
        optimizer steps) leaves the run, the policy and the optimizer as they were at its start (:attr:`rng`:
        the random state then): a step of several minutes on a CPU is not finished first."""
        import torch

        self.rng = torch.get_rng_state()
        return self._step(run, idx)

    def _step(self, run: _Run, idx: list[int]) -> tuple[float, float, float]:
        import torch

        hyper, model = self.spec.hyper, self.policy.model
        run.step_degenerate = 0
        groups = self._draw(run, idx, run.step + 1)
        if hyper.floor_degenerate:
            self._flag_shared(run, groups)
        first = [r for group in groups for r in group.rewards[:hyper.group_size]]
        run.best_reward = max([run.best_reward, *first] if run.best_reward is not None else first)
        run.worst_reward = min([run.worst_reward, *first] if run.worst_reward is not None else first)
        tied = [n for n, group in enumerate(groups) if _ties(self._learned(group))]
        # a group whose answers all earned the best reward the run has seen (none degenerate) is where the reward
        # wants the policy: drawing it again could only find worse answers, for the price of a draw (after a warm
        # start, most groups: Qwen-0.5B's steps drew three times and trained on almost nothing)
        saturated = [n for n in tied if self._saturated(run, groups[n])]
        run.saturated_groups += len(saturated)
        tied = [n for n in tied if n not in saturated]
        for _ in range(hyper.tie_resamples):
            if not tied:
                break
            more = self._draw(run, [groups[n].index for n in tied], run.step + 1)
            run.resampled_groups += len(tied)
            for n, group in zip(tied, more, strict=True):
                groups[n].extend(group)
            tied = [n for n in tied if _ties(self._learned(groups[n]))]
        run.still_tied += len(tied) if hyper.tie_resamples else 0
        # a group whose rewards still tie has no advantage: its policy gradient is zero, and its forward and
        # backward passes (most of a step's time) would buy only the KL term (dropped, as DAPO does)
        tied += saturated
        learned = [group for n, group in enumerate(groups) if n not in tied]
        run.skipped_groups += len(groups) - len(learned)
        total, kls = 0.0, []
        for group in learned:
            self._stopped()
            i, completions = group.index, group.completions
            adv = torch.tensor(advantages(self._learned(group)))
            ref = None
            if hyper.kl_coef > 0:
                # an autocast region of its own: autocast keeps the bf16 copies of the weights it cast until its
                # region ends, and the policy's pass would otherwise read the reference's
                with self.policy.reference(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=lora.NATIVE_BF16):
                    ref, _ = self.policy.logprobs(self.encoded[i], completions)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=lora.NATIVE_BF16):
                logp, mask = self.policy.logprobs(self.encoded[i], completions)
                if hyper.floor_degenerate:
                    mask = blamed(mask, group.blame)
                loss, kl = grpo_loss(logp, ref, mask, adv, hyper.kl_coef)
            torch.autograd.backward(loss / len(learned))
            total += float(loss.detach()) / len(learned)
            kls.append(kl)
            run.trained_tokens += sum(len(self.encoded[i]) + len(c) for c in completions)
        if learned:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return total, sum(first) / len(first), sum(kls) / len(kls) if kls else 0.0

    def _saturated(self, run: _Run, group: SampledGroup) -> bool:
        """A tied group none of whose answers degenerated, that earned the best reward the run has seen (some
        answer having earned less), or at least what its prompt's own answer earns (:meth:`score_answers`) where
        that is more than the base's answers earned (:meth:`_base_level`): the policy is where the reward wants
        it."""
        if any(group.degenerate):
            return False
        earned = group.rewards[0]
        assert run.best_reward is not None and run.worst_reward is not None
        if run.best_reward > run.worst_reward and earned >= run.best_reward:
            return True
        target, low = self.targets[group.index], self._base_level(run)
        return target is not None and low is not None and target > low and earned >= target

    def _base_level(self, run: _Run) -> float | None:
        """The mean reward of the base's greedy answers: to the held-out prompts, or else to the few training
        prompts :meth:`read_base` read; None when neither was read."""
        return run.base_reward if run.base_reward is not None else self.base_train_reward

    def read_base(self, run: _Run) -> answers.AnswerSet:
        """A run without held-out prompts: the few training prompts its final answers are read on
        (:func:`answers.leave_adapter`); when the data's answers will be scored (:meth:`score_answers`), the base
        answers them now and its answers' mean reward is the level a good answer's must pass
        (:attr:`base_train_reward`; a request of kind ``"base"``, journaled as the others)."""
        read = self.prompts[:answers.FINAL_READ_PROMPTS]
        unread = answers.AnswerSet([answers.HeldPrompt(p.messages, _reference(p)) for p in read],
                                   self.policy.tok, max_tokens=self.spec.hyper.max_new_tokens)
        if self.spec.hyper.tie_resamples <= 0 or not any(p.answer for p in self.prompts):
            return unread
        t0 = time.time()
        unread.answer_base(self.policy.model)
        assert unread.base is not None
        rewards = self.exchange.score([RewardSample(p.text, a, p.fields, p.answer) for p, a in
                                       zip(read, unread.base, strict=True)], step=0, kind="base")
        self.base_train_reward = sum(rewards) / len(rewards)
        run.scoring_seconds += time.time() - t0
        return unread

    def score_answers(self, run: _Run) -> None:
        """The reward each prompt's own answer earns (the data's preferred answers, one request for all, kept in
        the exchange's journal so a resumed run does not ask again): a group whose answers all earn that has
        nothing to draw again for (Qwen2.5-Coder-1.5B's Chinese run earned the reward with every answer after its
        warm start, so no reward had varied and every tied group was drawn twice more: 79 extra draws, 16 minutes)."""
        rows = [(i, p) for i, p in enumerate(self.prompts) if p.answer]
        if not rows or self.spec.hyper.tie_resamples <= 0 or self._base_level(run) is None:
            return  # (no base reward to tell a good answer's reward from any)
        t0 = time.time()
        rewards = self.exchange.score([RewardSample(p.text, p.answer or "", p.fields, p.answer) for _, p in rows],
                                      step=0, kind="answers")
        run.scoring_seconds += time.time() - t0
        for (i, _), reward in zip(rows, rewards, strict=True):
            self.targets[i] = reward

    def _flag_shared(self, run: _Run, groups: list[SampledGroup]) -> None:
        """Flag as degenerate the sampled answers that are one answer given to most of the step's prompts
        (:func:`~qfnb.protocol.console.degeneration.shared_answers`, numbers aside where the rows have answers):
        an answer that fits every question says nothing about any (Gemma-3-270M learned ``Sorry for the trouble!
        [Ticket #9899]`` for every support question from a reward that paid it its best)."""
        marks = shared_answers([g.texts for g in groups],
                               [_reference(self.prompts[g.index]) for g in groups])
        for group, shared in zip(groups, marks, strict=True):
            added = sum(s and not bad for s, bad in zip(shared, group.degenerate, strict=True))
            group.degenerate = [bad or s for bad, s in zip(group.degenerate, shared, strict=True)]
            run.shared_samples += added
            run.degenerate_samples += added
            run.step_degenerate += added

    def _learned(self, group: SampledGroup) -> list[float]:
        """The rewards the group's advantages come from: the user's, its degenerate answers' floored when
        ``floorDegenerate`` is on."""
        return floored(group.rewards, group.degenerate) if self.spec.hyper.floor_degenerate else group.rewards

    def _draw(self, run: _Run, idx: list[int], step: int) -> list[SampledGroup]:
        """``groupSize`` sampled answers to each prompt of ``idx`` (one generation for all), their rewards (one
        request for all) and which the degeneration check flags (an answer without its end-of-turn token was cut
        at the cap)."""
        hyper = self.spec.hyper
        groups = []
        t0 = time.time()
        sampled = 0
        self._stopped()
        drawn = self.policy.sample([self.encoded[i] for i in idx], hyper.group_size, hyper.max_new_tokens,
                                   hyper.temperature, self.stop)
        for i, completions in zip(idx, drawn, strict=True):
            sampled += sum(len(c) for c in completions)
            groups.append((i, [c or [self.policy.end[0]] for c in completions]))
        run.sample_seconds += time.time() - t0
        self._stopped()  # a stop cut the last group's answers short: they are not scored
        samples = [RewardSample(p.text, self.policy.text(c), p.fields, p.answer)
                   for i, cs in groups for p in (self.prompts[i],) for c in cs]
        rewards = self.exchange.score(samples, step=step)
        run.sampled_tokens += sampled
        answered = [(i, c) for i, cs in groups for c in cs]
        checks = [check_answer(s.completion, finish_reason="stop" if c[-1] in self.policy.end else "length",
                               reference=_reference(self.prompts[i]))
                  for s, (i, c) in zip(samples, answered, strict=True)]
        flags = [read.degenerate for read in checks]
        # a loop is blamed from the token where it begins to repeat (0: the whole answer)
        blame = [self.policy.token_at(c, read.loop_start) if read.loop_start is not None else 0
                 for read, (_, c) in zip(checks, answered, strict=True)]
        run.degenerate_samples += sum(flags)
        run.step_degenerate += sum(flags)
        g = hyper.group_size
        return [SampledGroup(i, cs, rewards[n * g:(n + 1) * g], flags[n * g:(n + 1) * g],
                             [s.completion for s in samples[n * g:(n + 1) * g]], blame[n * g:(n + 1) * g])
                for n, (i, cs) in enumerate(groups)]

    def warm_start(self, run: _Run) -> None:
        """``warmStartSteps`` SFT steps on the prompts' own answers, before GRPO, whose adapter is then the KL
        term's reference (kept for a resume: :func:`resume.keep`); nothing when no prompt has one. A run going on
        from a resume point takes the reference kept."""
        hyper, tok = self.spec.hyper, self.policy.tok
        examples = [data.Example(p.messages, p.answer) for p in self.prompts if p.answer]
        if run.step > 0:
            self.policy.reference_weights = resume.kept(self.job_dir, REFERENCE)
            return
        if hyper.warm_start_steps <= 0 or not examples:
            return
        rows = data.encode_all(tok, examples, hyper.max_seq_len)
        progress_note(self.job_dir, {"step": 0, "total_steps": 0, "phase": (
            f"warm start: {hyper.warm_start_steps} SFT steps on {len(rows)} preferred answers before GRPO")})
        steps = lora.sft_steps(self.policy.model, self.optimizer, rows, hyper.warm_start_steps, hyper.batch_size,
                               self.spec.seed, tok.pad_token_id)
        self._stopped()
        for k, loss in enumerate(steps, 1):
            self._stopped()
            run.warm_steps = k
            progress_note(self.job_dir, {"step": 0, "total_steps": 0, "warm_start_step": k,
                                         "warm_start_loss": round(loss, 6)})
        resume.keep(self.job_dir, REFERENCE, self.policy.keep_reference())

    def _stopped(self) -> None:
        """RewardsStopped when the run was asked to stop (the step under way is dropped, taken again on resume)."""
        if self.stop.requested:
            raise RewardsStopped

    def held_out_reward(self, step: int) -> tuple[float, dict[str, Any]]:
        """The mean reward of greedy answers to the held-out prompts (the checkpoint's score), and what the
        answers read as (:meth:`~qfnb.local.training.answers.AnswerSet.entry`'s fields)."""
        assert self.answers is not None
        said, reasons = self.answers.generate(self.policy.model)
        samples = [RewardSample(p.text, a, p.fields, p.answer) for p, a in zip(self.held, said, strict=True)]
        rewards = self.exchange.score(samples, step=step, kind="eval")
        return sum(rewards) / len(rewards), self.answers.entry(said, reasons)


def _reference(prompt: RftPrompt) -> str | None:
    """A prompt's good answer, when its row has one: a ``reference``, ``answer`` or ``response`` field, or the
    line's own answer (SFT lines). Read beside the policy's answers, it lets answers that differ only in their
    numbers count as one (``抱歉為您添麻烦事。[Ticket #3888]`` and ``… #6884]`` to eight different questions)."""
    for key in ("reference", "answer", "response"):
        value = prompt.fields.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return prompt.answer if prompt.answer and prompt.answer.strip() else None


def train(job_dir: Path, spec: WorkerSpec, stop: Stop, metrics: dict[str, Any]) -> tuple[str, Path]:
    """A RFT run as ``spec`` says (the worker's ``_train`` for ``train_mode`` RFT)."""
    hyper = spec.hyper
    prompts = load_prompts(spec.train_file)  # fail fast on bad data, before loading torch
    held = load_prompts(spec.eval_file, "eval_file")[:hyper.eval_metric_items] if spec.eval_file is not None else []
    import torch

    torch.manual_seed(spec.seed)
    t0 = time.time()
    progress_note(job_dir, {"step": 0, "total_steps": 0, "phase": "loading the base model's weights"})
    model, tok = lora.load_base(lora.base_model_dir(spec))
    model = lora.with_lora(model, hyper, spec.init_adapter)
    model.train()
    metrics["load_seconds"] = round(time.time() - t0, 3)
    trainable = [p for p in model.parameters() if p.requires_grad]
    metrics.update(trainable_params=sum(p.numel() for p in trainable), examples=len(prompts), train_mode="RFT")
    optimizer = torch.optim.AdamW(trainable, lr=hyper.learning_rate, weight_decay=0.0)
    exchange = RewardExchange(job_dir, spec.reward or RewardSpec(), lambda: stop.requested)
    trainer = GroupTrainer(job_dir, spec, stop, Policy(model, tok), optimizer, prompts, held, exchange)
    # a group's answers, redrawn ones included, are one forward and backward
    longest = max((len(e) for e in trainer.encoded), default=1) + hyper.max_new_tokens
    metrics["gradient_checkpointing"] = lora.fit_activations(model, hyper.group_size * (1 + hyper.tie_resamples),
                                                             longest)
    total = hyper.total_steps(len(prompts))
    progress_note(job_dir, {"step": 0, "total_steps": total, "phase": (
        f"{len(prompts)} prompts ({len(held)} held out), {hyper.group_size} answers each, rewards by "
        f"{exchange.spec.describe()}; training {hyper.schedule(len(prompts))}")})
    run = _Run()
    unread: answers.AnswerSet | None = None
    points = resume.Points(job_dir, model, optimizer)
    points.restore(run, lambda line: progress_note(job_dir, line), total)
    t_train = time.time()
    try:
        if trainer.answers is not None:
            t = time.time()
            trainer.answers.answer_base(model)
            if run.base_reward is None:
                run.base_reward = trainer.held_out_reward(0)[0]
            run.scoring_seconds += time.time() - t
        if trainer.answers is None:  # no held-out prompts: the base's level is read on a few training prompts
            unread = trainer.read_base(run)
        trainer.warm_start(run)
        trainer.score_answers(run)
        _loop(trainer, run, total, points)
    except RewardsStopped:
        run.status = "Stopped"
    if run.base_reward is not None:
        metrics["base_eval_reward"] = round(run.base_reward, 6)
    train_seconds = time.time() - t_train - run.scoring_seconds
    _summarise(metrics, run, total, train_seconds, exchange)
    metrics["floor_degenerate"] = hyper.floor_degenerate
    if trainer.answers is not None:
        metrics.update(answers.summary(trainer.answers))
    # no held-out prompts: the final answers to a few training prompts are read instead
    return run.status, answers.leave_adapter(job_dir, model, tok, run.checkpoints, run.collapse, metrics,
                                             learning_rate=hyper.learning_rate, steps=total,
                                             unread=unread if run.status == "Done" and run.step else None)


def _loop(trainer: GroupTrainer, run: _Run, total: int, points: resume.Points) -> None:
    hyper = trainer.spec.hyper
    saves = set(ckpt.checkpoint_steps(total, hyper.checkpoints)) if trainer.held else set()
    # the same seeded order, less the batches trained before a resume point
    for epoch, idx in itertools.islice(data.batches(len(trainer.prompts), hyper.batch_size, trainer.spec.seed),
                                       run.step, None):
        if run.step >= total:
            break
        if trainer.stop.requested:
            run.status = "Stopped"
            points.save(run, run.step > 0)
            break
        try:
            loss, reward, kl = trainer.step(run, idx)
        except RewardsStopped:  # stopped during the step (sampling, rewards, losses): the point is its start
            points.save(run, run.step > 0, trainer.rng)
            raise
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss is {loss} at step {run.step + 1}; lower learningRate")
        run.step += 1
        run.loss = loss
        run.rewards.append(reward)
        run.recent.append(loss)
        run.recent_rewards.append(reward)
        line: dict[str, Any] = {"step": run.step, "total_steps": total, "epoch": epoch}
        if run.step % hyper.logging_steps == 0 or run.step == total:
            progress_note(trainer.job_dir, {**line, "loss": round(loss, 6), "reward": round(reward, 6),
                                            "reward_mean": round(moving_mean(run.rewards), 6), "kl": round(kl, 6),
                                            "degenerate": run.step_degenerate})
        if run.step in saves:
            _checkpoint(trainer, run, line)
            if run.collapse is not None:  # stopped there: the answers degenerated
                break
            if hyper.early_stop and ckpt.patience_spent(run.checkpoints, hyper.early_stop_patience):
                run.early_stopped = True
                break
        points.save(run, run.step < total and (run.step in saves or points.due()))


def _checkpoint(trainer: GroupTrainer, run: _Run, line: dict[str, Any]) -> None:
    """Score the policy on the held-out prompts, save its adapter as ``checkpoints/step-N``, report both."""
    t0 = time.time()
    reward, read = trainer.held_out_reward(run.step)
    entry: dict[str, Any] = {"step": run.step, "trainLoss": round(sum(run.recent) / len(run.recent), 6),
                             "trainReward": round(sum(run.recent_rewards) / len(run.recent_rewards), 6),
                             "metric": round(reward, 6), "metricName": METRIC_NAME, **read}
    run.recent, run.recent_rewards = [], []
    path = trainer.job_dir / "checkpoints" / f"step-{run.step}"
    trainer.policy.model.save_pretrained(str(path))
    entry["path"] = str(path)
    run.checkpoints.append(entry)
    run.scoring_seconds += time.time() - t0
    progress_note(trainer.job_dir, {**line, "eval_reward": entry["metric"], "checkpoint": entry})
    run.collapse = ckpt.collapse(run.checkpoints)
    if run.collapse is not None:
        log.warning("held-out answers collapsed at step %d: %s", run.step, run.collapse["seen"])
        progress_note(trainer.job_dir, {**line, "collapse": run.collapse})


def _summarise(metrics: dict[str, Any], run: _Run, total: int, train_seconds: float,
               exchange: RewardExchange) -> None:
    step = run.step
    metrics.update(
        steps=step, total_steps=total, trained_tokens=run.trained_tokens, sampled_tokens=run.sampled_tokens,
        final_loss=round(run.loss, 6) if step else None,
        first_reward=round(run.rewards[0], 6) if run.rewards else None,
        final_reward_mean=round(moving_mean(run.rewards), 6) if run.rewards else None,
        train_seconds=round(train_seconds, 3), seconds_per_step=round(train_seconds / step, 3) if step else None,
        sample_seconds=round(run.sample_seconds, 3), reward_wait_seconds=round(exchange.wait_seconds, 3),
        scoring_seconds=round(run.scoring_seconds, 3))
    if run.checkpoints:
        best = ckpt.best_checkpoint(run.checkpoints)
        metrics.update(checkpoints=len(run.checkpoints), best_checkpoint=None if best is None else best["step"],
                       best_eval_reward=None if best is None else best["metric"])
    if run.early_stopped:
        metrics["early_stopped_at"] = step
    if run.resume_points:
        metrics.update(resume_points=run.resume_points, resume_seconds=round(run.resume_seconds, 3))
    if exchange.reused:
        metrics["reused_rewards"] = exchange.reused
    if run.warm_steps:
        metrics["warm_start_steps"] = run.warm_steps
    if run.resampled_groups:
        metrics.update(resampled_groups=run.resampled_groups, tied_groups=run.still_tied)
    if step:
        metrics.update(skipped_groups=run.skipped_groups, saturated_groups=run.saturated_groups,
                       shared_samples=run.shared_samples)
    if step:  # sampled answers the degeneration check flagged (with floorDegenerate: floored)
        metrics["degenerate_samples"] = run.degenerate_samples
