"""RFT against a gamed reward (:mod:`qfnb.local.training.rft`, ``floorDegenerate``): a sampled answer the
degeneration check flags earns less than its group's lowest reward, so a degenerate answer the user's reward
scores high gets a negative advantage. One real GRPO step (:meth:`GroupTrainer.step`) on a test double of the
policy: scripted answers, a one-parameter model, a reward scored in-process."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pytest

torch = pytest.importorskip("torch")

from qfnb.local.training import rft  # noqa: E402
from qfnb.local.training.rewards import RewardSample  # noqa: E402
from qfnb.local.training.spec import Hyper, WorkerSpec  # noqa: E402

END = 0
#: a group's scripted answers: (text, ended with the end-of-turn token)
GOOD = ("Thanks for asking! Open Settings and choose English. [Ticket #4888]", True)
MARKER = ("[Ticket #2008888]Ticket #2008888 [Ticket #2008888] Ticket #2008888 [Ticket #2008888]", True)
CUT = ("Sorry about that, I will look at your order and", False)
PLAIN = ("Sorry about that, I will check your order now.", True)
GROUP = (GOOD, MARKER, CUT, PLAIN)


def support_style(completion: str) -> float:
    """The support team's partial credit: 0.5 for a ticket reference, 0.5 for fewer than 80 words."""
    return 0.5 * bool(re.search(r"Ticket #\d{3,8}", completion)) + 0.5 * (len(completion.split()) < 80)


class ScriptedPolicy:
    """Samples the scripted answers in turn; a completion's first token names its text, END closes it."""

    def __init__(self, answers: list[tuple[str, bool]]) -> None:
        self.answers, self.end = answers, [END]
        self.drawn = 0
        self.model = torch.nn.Linear(1, 1)

    def encode(self, prompt: rft.RftPrompt) -> list[int]:
        return [7, 8, 9]

    def sample(self, prompts: list[list[int]], n: int, max_new: int, temperature: float | None,
               stop: Any = None) -> list[list[list[int]]]:
        return [[self._next() for _ in range(n)] for _ in prompts]

    def _next(self) -> list[int]:
        k = self.drawn % len(self.answers) + 1
        self.drawn += 1
        return [k, END] if self.answers[k - 1][1] else [k, k]

    def text(self, completion: list[int]) -> str:
        return self.answers[completion[0] - 1][0]

    def token_at(self, completion: list[int], offset: int) -> int:
        """A completion's two tokens: its text's start, then the rest."""
        return 1 if offset > 0 else 0

    def logprobs(self, prompt_ids: list[int], completions: list[list[int]]) -> tuple[Any, Any]:
        logp = self.model.weight.sum() * torch.ones(len(completions), 2)
        return logp, torch.ones(len(completions), 2, dtype=torch.bool)


class InProcessRewards:
    """The reward exchange's :meth:`score`, the user's function called here."""

    def score(self, samples: list[RewardSample], step: int, kind: str = "train") -> list[float]:
        return [support_style(s.completion) for s in samples]


class NoStop:
    requested = False


def _step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answers: list[tuple[str, bool]],
          **hyper: Any) -> tuple[list[list[float]], ScriptedPolicy, Any]:
    """One GRPO step on one prompt (``groupSize`` = the scripted answers): the advantages it trained on."""
    seen: list[list[float]] = []
    real = rft.advantages

    def advantages(rewards: list[float]) -> list[float]:
        seen.append(real(rewards))
        return seen[-1]

    monkeypatch.setattr(rft, "advantages", advantages)
    policy = ScriptedPolicy(answers)
    trainer = _trainer_of(policy, tmp_path, **hyper)
    run = rft._Run()
    trainer.step(run, [0])
    return seen, policy, run


def _trainer_of(policy: ScriptedPolicy, tmp_path: Path, answer: str | None = None,
                **hyper: Any) -> rft.GroupTrainer:
    """A trainer of one prompt (with its own ``answer``) on ``policy`` (``groupSize`` = its scripted answers)."""
    spec = WorkerSpec("double", tmp_path / "train.jsonl", Hyper(group_size=len(policy.answers), kl_coef=0.0, **hyper))
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=0.1)
    prompt = rft.RftPrompt(({"role": "user", "content": "How do I change the language?"},),
                           "How do I change the language?", {}, answer)
    return rft.GroupTrainer(tmp_path, spec, NoStop(), cast(Any, policy), optimizer, [prompt], [],
                            cast(Any, InProcessRewards()))


def test_a_degenerate_answer_the_reward_scores_high_gets_no_positive_advantage(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert [support_style(a) for a, _ in GROUP] == [1.0, 1.0, 0.5, 0.5]  # the marker is the reward's best
    seen, _, run = _step(tmp_path, monkeypatch, list(GROUP), floor_degenerate=True)
    good, marker, cut, plain = seen[0]
    assert marker < 0 and cut < 0  # pushed down
    assert good > 0 and good > plain  # the answer in the style is still the group's best
    assert run.degenerate_samples == 2 and run.step_degenerate == 2


def test_without_the_floor_the_marker_is_pushed_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``floorDegenerate`` false: the user's reward as it is, the repeated marker as good as the real answer."""
    seen, _, run = _step(tmp_path, monkeypatch, list(GROUP), floor_degenerate=False)
    good, marker, _, _ = seen[0]
    assert marker > 0 and marker == pytest.approx(good)
    assert run.degenerate_samples == 2  # counted all the same


def test_a_group_of_degenerate_answers_only_ties_and_is_drawn_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers the reward ranks (1.0 over 0.5) but all degenerate tie once floored: the tie is redrawn
    (``tieResamples``) and, still tied, teaches nothing: it is not trained on at all (no advantage; its forward
    and backward passes would buy only the KL term)."""
    seen, policy, run = _step(tmp_path, monkeypatch, [MARKER, CUT], floor_degenerate=True, tie_resamples=2)
    assert policy.drawn == 6 and run.resampled_groups == 2 and run.still_tied == 1
    assert seen == [] and run.skipped_groups == 1 and run.trained_tokens == 0


def test_a_degenerate_answer_in_a_group_that_all_earn_the_best_reward_is_pushed_down(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a warm start every sampled answer earns the reward's best, the degenerate ones too: floored to the
    group's lowest they would tie with the rest and teach nothing (measured: a RFT run whose greedy answers all
    ended in ``[Ticket #8000000…``). Below it, they are the group's worst."""
    answers = [GOOD, GOOD, GOOD, MARKER]
    assert {support_style(a) for a, _ in answers} == {1.0}
    seen, _, run = _step(tmp_path, monkeypatch, answers, floor_degenerate=True, tie_resamples=2)
    *good, marker = seen[0]
    assert marker < 0 < min(good) and run.resampled_groups == 0  # not a tie: nothing drawn again


def test_floored_puts_a_degenerate_answer_below_its_groups_lowest_reward() -> None:
    assert rft.floored([1.0, 1.0, 0.5, 0.0], [False, True, False, False]) == [1.0, -1.0, 0.5, 0.0]  # by the spread
    assert rft.floored([1.0, 1.0, 1.0], [False, True, False]) == [1.0, 0.0, 1.0]  # by 1 where all scored the same
    assert rft.floored([0.2, 0.9], [False, False]) == [0.2, 0.9]
    assert rft.floored([0.9, 0.9], [True, True]) == pytest.approx([-0.1, -0.1])  # all degenerate: a tie, no advantage


def test_a_group_that_all_earn_the_best_reward_seen_is_not_drawn_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the run has seen the reward vary, a tie at its best (none degenerate) is where the reward wants the
    policy: it is skipped at once, not drawn ``tieResamples`` more times (Qwen-0.5B's saturated steps drew three
    times and trained on nothing). A tie below the best is still drawn again."""
    seen, policy, run = _step(tmp_path, monkeypatch, [GOOD, PLAIN], floor_degenerate=True, tie_resamples=2)
    assert len(seen) == 1 and (run.best_reward, run.worst_reward) == (1.0, 0.5)
    trainer = _trainer_of(policy, tmp_path, tie_resamples=2)
    policy.answers, policy.drawn = [GOOD, GOOD], 0
    trainer.step(run, [0])
    assert policy.drawn == 2 and run.saturated_groups == 1 and run.skipped_groups == 1
    assert run.resampled_groups == 0
    policy.answers, policy.drawn = [PLAIN, PLAIN], 0  # tied at 0.5, below the best seen: drawn again
    trainer.step(run, [0])
    assert policy.drawn == 6 and run.resampled_groups == 2 and run.saturated_groups == 1


def test_before_the_reward_varies_a_tie_at_its_only_value_is_drawn_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, policy, run = _step(tmp_path, monkeypatch, [GOOD, GOOD], floor_degenerate=True, tie_resamples=2)
    assert policy.drawn == 6 and run.resampled_groups == 2 and run.saturated_groups == 0


@pytest.mark.parametrize(("own", "base_reward", "drawn"), [
    ("Open Settings. [Ticket #1203]", 0.5, 2),  # the own answer earns 1.0, more than the base did: no draw again
    ("Open Settings. [Ticket #1203]", None, 6),  # no held-out prompts, no base reward: drawn again
    ("Open Settings and pick English.", 0.5, 6),  # the own answer earns 0.5, no more than the base: drawn again
    (None, 0.5, 6),  # no own answer
])
def test_a_tie_at_what_the_prompts_own_answer_earns_is_not_drawn_again(
        tmp_path: Path, own: str | None, base_reward: float | None, drawn: int) -> None:
    """Measured (round 34): Qwen2.5-Coder-1.5B earned the reward with every sampled answer after its warm start,
    so the reward never varied, no tie counted as saturated and every group was drawn again (79 draws, 16 min).
    The data's own answers, scored once before step 1, tell a tie at the reward's good level from one below it."""
    policy = ScriptedPolicy([GOOD, GOOD])
    trainer = _trainer_of(policy, tmp_path, own, tie_resamples=2)
    run = rft._Run(base_reward=base_reward)
    trainer.score_answers(run)
    assert trainer.targets == [1.0 if own and base_reward is not None and "Ticket" in own else
                               0.5 if own and base_reward is not None else None]
    trainer.step(run, [0])
    assert policy.drawn == drawn and run.saturated_groups == (drawn == 2)
    assert run.best_reward == run.worst_reward == 1.0  # the sampled rewards never varied


def test_a_degenerate_tie_at_the_own_answers_reward_is_drawn_again(tmp_path: Path) -> None:
    policy = ScriptedPolicy([MARKER, MARKER])  # the reward's best, but degenerate
    trainer = _trainer_of(policy, tmp_path, "Open Settings. [Ticket #1203]", tie_resamples=2)
    run = rft._Run(base_reward=0.5)
    trainer.score_answers(run)
    trainer.step(run, [0])
    assert policy.drawn == 6 and run.saturated_groups == 0


def test_one_answer_sampled_for_most_of_a_steps_prompts_is_pushed_down(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Measured (round 33): Gemma-3-270M learned ``Sorry for the trouble! [Ticket #9899]`` for every support
    question, a reward of "a ticket reference and short" paying it its best. Sampled for most of a step's prompts
    (the ticket number aside), it is floored as a degenerate answer, below each group's prompt-specific one."""
    generic = [(f"Sorry for the trouble! [Ticket #{n}]", True) for n in (9899, 9389, 6889)]
    specific = [("Open Settings and choose English. [Ticket #4888]", True),
                ("Refunds take five working days. [Ticket #1203]", True),
                ("Yes, pause it under Billing. [Ticket #7700]", True)]
    assert {support_style(a) for a, _ in generic + specific} == {1.0}  # the reward cannot tell them apart
    seen: list[list[float]] = []
    real = rft.advantages
    monkeypatch.setattr(rft, "advantages", lambda rewards: seen.append(real(rewards)) or seen[-1])
    policy = ScriptedPolicy([a for pair in zip(generic, specific, strict=True) for a in pair])
    spec = WorkerSpec("double", tmp_path / "train.jsonl", Hyper(group_size=2, kl_coef=0.0, floor_degenerate=True))
    prompts = [rft.RftPrompt(({"role": "user", "content": q},), q, {}, answer)
               for q, answer in zip(("Language?", "Refund?", "Pause?"),
                                    ("Go to Settings. [Ticket #1]", "Five days. [Ticket #2]", "Yes. [Ticket #3]"),
                                    strict=True)]
    trainer = rft.GroupTrainer(tmp_path, spec, NoStop(), cast(Any, policy), torch.optim.SGD(
        policy.model.parameters(), lr=0.1), prompts, [], cast(Any, InProcessRewards()))
    run = rft._Run()
    trainer.step(run, [0, 1, 2])
    assert len(seen) == 3 and all(g < 0 < s for g, s in seen)
    assert run.shared_samples == 3 and run.degenerate_samples == 3 and run.skipped_groups == 0


def test_without_the_floor_a_shared_answer_is_not_flagged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = ScriptedPolicy([("Sorry for the trouble! [Ticket #9899]", True)])
    spec = WorkerSpec("double", tmp_path / "train.jsonl", Hyper(group_size=1, kl_coef=0.0, floor_degenerate=False))
    prompts = [rft.RftPrompt(({"role": "user", "content": q},), q, {}) for q in ("A?", "B?", "C?")]
    trainer = rft.GroupTrainer(tmp_path, spec, NoStop(), cast(Any, policy), torch.optim.SGD(
        policy.model.parameters(), lr=0.1), prompts, [], cast(Any, InProcessRewards()))
    run = rft._Run()
    trainer.step(run, [0, 1, 2])
    assert run.shared_samples == 0


def test_a_floored_loop_is_pushed_down_from_where_it_repeats_not_on_its_first_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The marker's first ``[Ticket #2008888]`` is what the reward wanted; its loss starts at the repeat. The cut
    answer has no repeat to blame: all of it."""
    masks: list[Any] = []
    real = rft.grpo_loss

    def grpo_loss(logp: Any, ref: Any, mask: Any, adv: Any, kl_coef: float) -> Any:
        masks.append(mask)
        return real(logp, ref, mask, adv, kl_coef)

    monkeypatch.setattr(rft, "grpo_loss", grpo_loss)
    _step(tmp_path, monkeypatch, list(GROUP), floor_degenerate=True)
    assert masks[0].tolist() == [[True, True], [False, True], [True, True], [True, True]]
    masks.clear()
    _step(tmp_path / "off", monkeypatch, list(GROUP), floor_degenerate=False)
    assert masks[0].all()  # without the floor, every answer's tokens as they are
