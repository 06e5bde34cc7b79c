"""The checkpoint decision (qfnb.protocol.console.checkpoints): where checkpoints go, which is best, when
over-fitting is named and when early stopping ends a run."""

from __future__ import annotations

import pytest

from qfnb.protocol.console import checkpoints as ck


def _saved(*losses: float, metric: list[float] | None = None) -> list[dict[str, object]]:
    out: list[dict[str, object]] = [{"step": 8 * (i + 1), "evalLoss": v} for i, v in enumerate(losses)]
    for entry, m in zip(out, metric or [], strict=False):
        entry["metric"] = m
    return out


def test_checkpoints_spread_evenly_and_always_include_the_last_step() -> None:
    assert ck.checkpoint_steps(40, 5) == [8, 16, 24, 32, 40]
    assert ck.checkpoint_steps(9, 5) == [2, 4, 5, 7, 9]
    assert ck.checkpoint_steps(3, 5) == [1, 2, 3]  # never more than there are steps
    assert ck.checkpoint_steps(40, 0) == [] and ck.checkpoint_steps(0, 5) == []


def test_best_is_the_lowest_held_out_loss_or_the_highest_metric() -> None:
    assert ck.best_checkpoint(_saved(3.2, 2.9, 3.5))["step"] == 16
    assert ck.best_checkpoint(_saved(3.0, 2.0, 2.0))["step"] == 16  # a tie: the earlier
    assert ck.best_checkpoint(_saved(3.2, 2.9, 3.5, metric=[0.1, 0.2, 0.6]))["step"] == 24
    assert ck.best_checkpoint([{"step": 8}]) is None and ck.best_checkpoint([]) is None
    assert ck.best_checkpoint(_saved(float("nan"), 4.0))["step"] == 16


def test_over_fitting_is_named_once_the_held_out_loss_clearly_rose() -> None:
    over = ck.overfitting([(4, 3.9), (12, 3.2), (20, 4.4), (40, 6.8)])
    assert over is not None and over.describe() == "over-fitting since step 12: held-out loss 3.2 → 6.8"
    assert over.to_wire()["sinceStep"] == 12 and over.to_wire()["evalLoss"] == 6.8
    assert ck.overfitting([(4, 3.0), (8, 2.0), (12, 2.05)]) is None  # within 5 %: noise, not over-fitting
    assert ck.overfitting([(4, 3.0), (8, 2.0)]) is None  # still falling
    assert ck.overfitting([(4, 3.0)]) is None


def test_patience_counts_checkpoints_after_the_best() -> None:
    assert not ck.patience_spent(_saved(3.0, 2.0, 2.5), 2)
    assert ck.patience_spent(_saved(3.0, 2.0, 2.5, 2.6), 2)
    assert ck.patience_spent(_saved(3.0, 2.0, 2.5), 1)
    assert not ck.patience_spent([{"step": 8}], 1)


def test_choose_names_best_last_or_a_step_and_says_which_steps_exist() -> None:
    saved = _saved(3.2, 2.9, 3.5)
    assert ck.choose(saved, "best")["step"] == 16 and ck.choose(saved, "last")["step"] == 24
    assert ck.choose(saved, 8)["step"] == 8 and ck.choose(saved, "step-24")["step"] == 24
    with pytest.raises(ValueError, match="steps 8, 16, 24"):
        ck.choose(saved, 9)
    with pytest.raises(ValueError, match="'best', 'last' or a step"):
        ck.choose(saved, "worst")
    with pytest.raises(ValueError, match="no checkpoints"):
        ck.choose([], "best")


def _judged(step: int, accuracy: float, rate: float, degenerate: bool, answer: str = "fine") -> dict[str, object]:
    return {"step": step, "evalLoss": 0.5, "valid_preference_accuracy": accuracy, ck.DEGENERATION_RATE: rate,
            ck.DEGENERATE: degenerate, "degeneration": f"{rate:.0%} degenerate",
            "answers": [{"prompt": "p", "base": "b", "answer": answer, "reason": "looped" if degenerate else ""}]}


def test_the_best_checkpoint_is_never_a_degenerate_one() -> None:
    saved = [_judged(4, 0.6, 0.0, False), _judged(8, 0.9, 0.0, False), _judged(12, 1.0, 1.0, True, "OK OK OK")]
    assert ck.best_checkpoint(saved)["step"] == 8  # the highest accuracy was the collapsed one
    with_metric = [{**e, "metric": m} for e, m in zip(saved, [0.2, 0.1, 0.9], strict=True)]
    assert ck.best_checkpoint(with_metric)["step"] == 4  # the user's measure first, among those that answer
    assert ck.choose(saved, "best")["step"] == 8 and ck.choose(saved, "last")["step"] == 12
    assert ck.best_checkpoint([_judged(4, 1.0, 1.0, True)]) is None
    with pytest.raises(ValueError, match="every checkpoint's held-out answers degenerated"):
        ck.choose([_judged(4, 1.0, 1.0, True)], "best")
    assert not ck.patience_spent(saved, 2)  # a degenerate checkpoint is no improvement, nor the best


def test_a_collapse_names_the_step_it_began_and_the_last_checkpoint_that_answered() -> None:
    saved = [_judged(4, 0.6, 0.0, False), _judged(8, 0.9, 0.25, True, "OK."), _judged(12, 1.0, 1.0, True, "OK OK")]
    found = ck.collapse(saved)
    assert found is not None and found["step"] == 8 and found["lastGoodStep"] == 4 and found["example"] == "OK."
    assert ck.collapse(saved[:1]) is None and ck.collapse([]) is None
    # a degenerate checkpoint that a later one recovered from is no collapse of the run
    assert ck.collapse([*saved[:2], _judged(12, 1.0, 0.0, False)]) is None
    every = ck.collapse([_judged(4, 1.0, 1.0, True, "[T#1][T#1][T#1]")])
    assert every is not None and every["lastGoodStep"] is None
    message = ck.collapse_error(every, learning_rate=5e-4, steps=30, beta=0.1)
    assert "from step 4" in message and "100% of held-out answers degenerate" in message
    assert "'[T#1][T#1][T#1]'" in message
    assert "lower learningRate (now 0.0005)" in message and "30 steps" in message and "raise beta (now 0.1)" in message
    assert "beta" not in ck.collapse_error(every, learning_rate=1e-4, steps=8)
    assert "the base itself" not in message and "the base itself" not in ck.collapse_error(
        every, learning_rate=1e-4, steps=8, base_rate=0.25)
    # a base whose own answers degenerated: lowering the rate will not make it answer, and the error says so
    blamed = ck.collapse_error(every, learning_rate=5e-4, steps=30, beta=0.1, base_rate=1.0)
    assert "lower learningRate (now 0.0005)" in blamed and "the base itself gave degenerate answers to 100% of " \
        "these prompts: it does not answer them" in blamed and "a larger base may" in blamed


def test_a_checkpoint_is_judged_beside_the_base_answers() -> None:
    from qfnb.protocol.console.degeneration import judge_answers

    base = judge_answers(["snow is fine.", "corn is fine.", "silk is fine.", "gold is fine."])
    collapsed = judge_answers(["OK. OK. OK. OK. OK. OK."] * 4)
    assert ck.judge_checkpoint(collapsed, base)[0] and ck.judge_checkpoint(collapsed)[0]
    one_loop = judge_answers(["snow is fine.", "corn is fine.", "silk is fine.", "gold gold gold gold gold"])
    assert ck.judge_checkpoint(one_loop, base)[0]  # the base's were all clean: one loop is one too many
    assert not ck.judge_checkpoint(base, base)[0]
    # a chatty base cut at the cap: a tuned model cut as often is no worse; a looping one is
    chatty = judge_answers(["Sure! Here is a long answer about snow that", "Of course, corn is a plant which",
                            "Silk is made by worms and it", "Gold is a metal, it is shiny and"],
                           finish_reasons=["length"] * 4)
    assert not ck.judge_checkpoint(chatty, chatty)[0]
    assert ck.judge_checkpoint(judge_answers([f"{w} T#1 T#1 T#1 T#1 T#1 T#1" for w in "abcd"],
                                             finish_reasons=["length"] * 4), chatty)[0]
    # a base that never answered (a random model's empty replies) is not judged against
    verdict, seen, _ = ck.judge_checkpoint(collapsed, judge_answers(["", "", "", ""]))
    assert not verdict and "not judged" in seen
    # a base whose every answer loops (Gemma-3-270M in Chinese echoes the question): a loop is no worse, but one
    # answer to most prompts is the run's own collapse
    echoing = judge_answers([f"{q} mendatang\n{q} mendatang\n{q} mendatang\n{q} mendatang" for q in "甲乙丙丁"])
    assert echoing.same_answer is None and echoing.rate == 1.0
    one = judge_answers(["抱歉说不难。[Ticket #11011]"] * 3 + ["可以。[Ticket #1111]"])
    verdict, seen, _ = ck.judge_checkpoint(one, echoing)
    assert verdict and "the same answer to 3 of 4" in seen
    verdict, seen, _ = ck.judge_checkpoint(judge_answers([f"{q}{q}{q}{q}{q}{q}" for q in "甲乙丙丁"]), echoing)
    assert not verdict and "not judged" in seen
    # a random model's one loop for every prompt is no sound answer given to all: no worse than its base
    verdict, seen, _ = ck.judge_checkpoint(judge_answers([" ".join(["6"] * 30)] * 4), echoing)
    assert not verdict and "not judged" in seen
    # one answer to most prompts, most of them looping it (a DPO run, round 36): given alone once, it is a collapse
    looped = "抱歉给您带来困扰。[Ticket #1888]eleSp\n" * 4
    once = judge_answers([looped, looped, "抱歉给您带来困扰。[Ticket #1888]", "可以。"])
    verdict, seen, _ = ck.judge_checkpoint(once, echoing)
    assert verdict and "the same answer to 3 of 4 prompts: '抱歉给您带来困扰。[Ticket #1888]'" in seen
    # never given alone, only looped, is still one answer when its first pass reads as one; a loop of junk is not
    verdict, seen, _ = ck.judge_checkpoint(judge_answers([looped] * 3 + ["可以。"]), echoing)
    assert verdict and "the same answer to 3 of 4" in seen
    verdict, seen, _ = ck.judge_checkpoint(judge_answers(["Code" + "e" * 40] * 4), echoing)
    assert not verdict and "not judged" in seen


def test_a_served_model_whose_answers_degenerated_as_its_bases_did_is_named() -> None:
    """Not held against the run (the base's every answer looped), yet most of its answers degenerated: the served
    checkpoint (the last, or the one a collapse kept) is named with what was seen; a sound one is not."""
    excused = {"step": 8, ck.DEGENERATION_RATE: 0.75, ck.DEGENERATE: False, ck.UNJUDGED: True,
               "degeneration": "6 of 8 answers degenerate, e.g. 'x'" + ck.NOT_JUDGED}
    sound = {"step": 4, ck.DEGENERATION_RATE: 0.0, ck.DEGENERATE: False, "degeneration": "0 of 8 answers degenerate"}
    found = ck.served_unjudged([sound, excused], None)
    assert found == {"step": 8, "rate": 0.75, "seen": "6 of 8 answers degenerate, e.g. 'x'"}
    assert ck.served_unjudged([excused, {**sound, "step": 12}], None) is None  # the last one answers
    assert ck.served_unjudged([{**excused, ck.DEGENERATION_RATE: 0.5}], None) is None  # half is not most
    kept = ck.served_unjudged([{**excused, "step": 2}, {**sound, "step": 6, ck.DEGENERATE: True}],
                              {"step": 6, "lastGoodStep": 2})
    assert kept is not None and kept["step"] == 2
    assert ck.served_unjudged([], None) is None
    # the entry's flag says it, not its text: a judged entry whose text happens to read alike is not excused
    assert ck.served_unjudged([{**excused, ck.UNJUDGED: False}], None) is None


def test_a_verdict_beside_a_base_that_never_answered_says_it_was_not_judged() -> None:
    """The entry's fields: the verdict and what was seen, and the ``unjudged`` flag only where nothing was judged."""
    from qfnb.protocol.console.degeneration import judge_answers

    echoing = judge_answers([f"{q} mendatang\n{q} mendatang\n{q} mendatang\n{q} mendatang" for q in "甲乙丙丁"])
    looped = ck.judge_checkpoint(judge_answers([f"{q}{q}{q}{q}{q}{q}" for q in "甲乙丙丁"]), echoing)
    assert looped.fields() == {ck.DEGENERATE: False, "degeneration": looped.seen, ck.UNJUDGED: True}
    assert not looped.judged and looped.seen.endswith(ck.NOT_JUDGED)
    sound = judge_answers(["snow is fine.", "corn is fine.", "silk is fine.", "gold is fine."])
    assert ck.judge_checkpoint(sound, sound).fields() == {ck.DEGENERATE: False, "degeneration": sound.summary}
    # one answer to most prompts is judged beside any base: the run's own collapse
    one = ck.judge_checkpoint(judge_answers(["抱歉说不难。[Ticket #11011]"] * 3 + ["可以。[Ticket #1111]"]), echoing)
    assert one.degenerate and one.judged and ck.UNJUDGED not in one.fields()



def test_the_issues_marker_collapse_is_judged_beside_a_base_whose_every_answer_loops() -> None:
    """The issue's bot: every held-out prompt answered ``[Ticket #1111]Ticket #1111…``. Beside Gemma-3-270M's base,
    which echoes every question, a one-answer collapse was judged only when the answer read as sound alone, and a
    bare marker does not: the run was "not judged" and served. A marker most references contain is the run's own
    collapse; junk of its own (a random model's) is still not judged, nor a lone word the references share."""
    from qfnb.protocol.console.degeneration import judge_answers

    questions = ["这个月被重复扣款了。", "我的套餐能加一个成员吗？", "怎么取消自动续费？", "怎么开启两步验证？"]
    references = ["非常抱歉，多扣的钱会原路退回。[Ticket #4595]", "当然可以！请进入“团队-邀请”。[Ticket #8190]",
                  "很遗憾您要离开。请进入“续费管理”。[Ticket #6028]", "很好的选择！请进入“安全设置”。[Ticket #1234]"]
    echoing = judge_answers([f"{q} mendatanguser\n" * 6 for q in questions], finish_reasons=["length"] * 4,
                            references=references)
    for marker in ("[Ticket #1111]Ticket #1111Ticket #[Ticket #1111]" * 4, "[Ticket #1111]" * 6):
        collapsed = judge_answers([marker] * 4, finish_reasons=["length"] * 4, references=references)
        assert collapsed.same_in_references
        verdict = ck.judge_checkpoint(collapsed, echoing)
        assert verdict.degenerate and verdict.judged and "the same answer to 4 of 4 prompts" in verdict.seen
    for junk in ("xq zt " * 8, "the " * 12):
        looped = judge_answers([junk] * 4, finish_reasons=["length"] * 4, references=[f"the {r}" for r in references])
        assert not looped.same_in_references
        verdict = ck.judge_checkpoint(looped, echoing)
        assert not verdict.degenerate and not verdict.judged
    # without references nothing says the marker is a piece of the good answers
    assert not judge_answers(["[Ticket #1111]" * 6] * 4).same_in_references
