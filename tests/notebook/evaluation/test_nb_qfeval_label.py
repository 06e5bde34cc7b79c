"""``%qfeval … --judge --label``: the label session a person answers until the labels are enough, its
labels kept in the evaluation's store (a rerun continues, asking nothing), ``--calibrate``'s labels used
where it asks, and the widget's buttons (no browser: ipywidgets' own click). The models and the judge
are notebook functions."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError

from qfnb.notebook.evaluation.labelling import LabelSession, LabelWidget

ITEMS = 120


class Model:
    """Answers ``what is N + 1?``: right where ``N % 10 < good``, else ``?``; counts its calls."""

    def __init__(self, good: int) -> None:
        self.good, self.calls = good, 0

    def __call__(self, prompt: str, **options: Any) -> str:
        self.calls += 1
        n = int(prompt.split()[2])
        return str(n + 1) if n % 10 < self.good else "?"


def fickle_judge(prompt: str, **options: Any) -> str:
    """5 for a right answer, 1 for '?', but unsure (3) on every item whose number ends in 7."""
    n = int(re.search(r"what is (\d+)", prompt).group(1))  # type: ignore[union-attr]
    if n % 10 == 7:
        return "评分: 3"
    return "评分: 1" if "?" in prompt.split("【待评估的回答 / answer to grade】")[1].split("【")[0] else "评分: 5"


@pytest.fixture
def shell(ip):  # type: ignore[no-untyped-def]
    ip.user_ns.update(good=Model(9), bad=Model(4), fickle_judge=fickle_judge,
                      df=pd.DataFrame({"prompt": [f"what is {i} + 1?" for i in range(ITEMS)],
                                       "response": [str(i + 1) for i in range(ITEMS)]}))
    return ip


def prefer(session: LabelSession) -> bool:
    """Label the item asked as a person would: the right answer (the reference) is better; both right
    or both wrong, a tie. Returns False once every item is labelled."""
    item = session.current
    if item is None:
        return False
    right = [a == item.reference for a in item.answers]
    session.label(item, 0.0 if right[0] == right[1] else (1.0 if right[0] else -1.0))
    return True


LINE = "--models good,bad --dataset df --metrics exact_match --judge fickle_judge --label"


def test_label_until_the_winner_is_known_and_a_rerun_continues_for_free(shell) -> None:  # type: ignore[no-untyped-def]
    report = shell.run_line_magic("qfeval", LINE)
    session = report.labelling
    assert isinstance(session, LabelSession) and session.tags == ("good", "bad") and not session.decided
    assert "not yet known" in session.verdict and "Your labels: not yet known" in repr(report)
    while not session.decided and prefer(session):
        pass
    said = session.verdict
    assert said.startswith("labels enough: good wins, 95% CI"), said
    n = session.queue.n_labelled
    assert n < ITEMS / 2 and f"; {n} labels of {ITEMS} items" in said
    assert session.history[-1][2] - session.history[-1][1] < session.history[0][2] - session.history[0][1]
    # Restart & Run All: the same line again asks no model and no label: the verdict is back
    calls = shell.user_ns["good"].calls + shell.user_ns["bad"].calls
    again = shell.run_line_magic("qfeval", LINE).labelling
    assert shell.user_ns["good"].calls + shell.user_ns["bad"].calls == calls
    assert again.decided and again.verdict == said and again.key == session.key


def test_one_model_is_labelled_on_the_judges_scale_to_a_width(shell) -> None:  # type: ignore[no-untyped-def]
    report = shell.run_line_magic("qfeval", "--models bad --dataset df --metrics exact_match --judge fickle_judge "
                                            "--label 1.5")
    session = report.labelling
    assert [c.text for c in session.choices(session.current)] == ["0", "1", "2", "3", "4", "5"]
    while not session.decided:
        item = session.current
        session.label(item, 5.0 if item.answers[0] == item.reference else 0.0)
    est = session.queue.estimate()
    assert est.high - est.low <= 1.5 and est.contains(5 * 0.4)  # 'bad' is right on 4 items in 10
    assert session.verdict.startswith("labels enough: +") and "Your labels" in report.to_html()


def test_calibrate_labels_are_used_where_the_queue_asks(shell, tmp_path) -> None:  # type: ignore[no-untyped-def]
    labels = tmp_path / "mine.csv"
    labels.write_text("index,label\n" + "".join(f"{i},{5 if i % 10 < 4 else 0}\n" for i in range(ITEMS)),
                      encoding="utf-8")  # every item labelled in a file: nothing is left to ask
    report = shell.run_line_magic("qfeval", f"--models bad --dataset df --metrics exact_match --judge fickle_judge "
                                            f"--calibrate {labels} --label")
    session = report.labelling
    assert session.current is None and session.decided
    assert session.queue.estimate().estimate == pytest.approx(2.0) and report.verdicts  # the file still checks


def test_label_needs_a_judge_and_at_most_a_pair(shell) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="add --judge"):
        shell.run_line_magic("qfeval", "--models good,bad --dataset df --metrics exact_match --label")
    shell.user_ns["third"] = Model(2)
    with pytest.raises(UsageError, match="one model or a pair; this run has 3"):
        shell.run_line_magic("qfeval", "--models good,bad,third --dataset df --judge fickle_judge --label")
    with pytest.raises(UsageError, match="--label"):
        shell.run_line_magic("qfeval", "--models good --dataset df --judge fickle_judge --label -1")


def test_the_widget_labels_with_its_buttons_and_escapes_the_answers(shell) -> None:  # type: ignore[no-untyped-def]
    shell.user_ns["evil"] = lambda prompt, **o: "<script>alert(1)</script><img src=x onerror=alert(2)>"
    session = shell.run_line_magic("qfeval", "--models good,evil --dataset df --metrics exact_match "
                                             "--judge fickle_judge --label").labelling
    widget = LabelWidget(session)
    assert "<script" not in widget.item.value and "<img" not in widget.item.value  # shown as text, not run
    assert "&lt;script&gt;" in widget.item.value and "Which answer is better?" in widget.item.value
    item = session.current
    texts = [b.description for b in widget.buttons.children]
    assert texts == ["answer 1 is better", "tie", "answer 2 is better"]
    first, _ = session.order(item)
    # the button under good's answer records +1 (good better), wherever the draw put it
    widget.buttons.children[0 if first == 0 else 2].click()
    assert session.queue.labels[item.index] == 1.0 and session.queue.n_labelled == 1
    assert session.current is not item and "1 labelled so far" in widget.item.value
    assert "qfnb-label-open" in widget.status.value


def test_repeated_judgements_that_differ_add_doubt(shell) -> None:  # type: ignore[no-untyped-def]
    calls: dict[int, int] = {}

    def wavering_judge(prompt: str, **options: Any) -> str:
        """4 on items ending in 3 and 8 alike, but on those ending in 3 it says 5, then 3."""
        n = int(re.search(r"what is (\d+)", prompt).group(1))  # type: ignore[union-attr]
        calls[n] = calls.get(n, 0) + 1
        if n % 10 == 3:
            return "评分: 5" if calls[n] % 2 else "评分: 3"
        return "评分: 4"

    shell.user_ns["wavering_judge"] = wavering_judge
    session = shell.run_line_magic("qfeval", "--models good --dataset df --metrics exact_match --judge "
                                             "wavering_judge --repeats 2 --label").labelling
    scores, doubt = session.queue.scores, session.queue.doubt
    assert scores[3] == scores[8] == pytest.approx(4.0)  # the mean of the repeats
    assert doubt[3] > doubt[8]  # same mean, but its judgements differ


def answers_shown(prompt: str) -> tuple[str, str, str]:
    """The reference and the two answers a pairwise judge's prompt shows (A, then B)."""
    def section(title: str) -> str:
        return prompt.split(title)[1].strip().split("\n\n")[0]

    return (section("【标准答案 / reference answer】"), section("【回答 A / answer A】"),
            section("【回答 B / answer B】"))


class PairJudge:
    """A pairwise judge double: the answer equal to the reference wins (a tie when both or neither
    are), but on items whose number ends in 7 it always picks the answer shown first (its two
    orders disagree). Counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, prompt: str, **options: Any) -> str:
        self.calls += 1
        n = int(re.search(r"what is (\d+)", prompt).group(1))  # type: ignore[union-attr]
        reference, a, b = answers_shown(prompt)
        if n % 10 == 7:
            return "Winner: A"
        right_a, right_b = a == reference, b == reference
        return f"Winner: {'tie' if right_a == right_b else 'A' if right_a else 'B'}\nReason: matches the reference"


def test_pairwise_judge_label_its_orders_disagreeing_is_the_doubt(shell) -> None:  # type: ignore[no-untyped-def]
    judge = shell.user_ns["pair_judge"] = PairJudge()
    line = "--models good,bad --dataset df --metrics exact_match --judge fickle_judge --pairwise pair_judge --label"
    session = shell.run_line_magic("qfeval", line).labelling
    assert judge.calls == 2 * ITEMS and session.tags == ("good", "bad")  # every pair, both orders
    scores, doubt = session.queue.scores, session.queue.doubt
    # good is right where n % 10 < 9, bad where n % 10 < 4: the judge says +1 on 4..8 except 7, a tie elsewhere
    assert scores[5] == 1.0 and scores[1] == 0.0 and scores[7] == 0.0 and scores[9] == 0.0
    assert doubt[7] > doubt[1] > doubt[5]  # orders disagree > a tie > both orders agree
    assert [c.text for c in session.choices(session.current)] == ["answer 1 is better", "tie", "answer 2 is better"]
    while not session.decided and prefer(session):
        pass
    said = session.verdict
    assert said.startswith("labels enough: good wins, 95% CI"), said
    assert session.queue.n_labelled < ITEMS / 2
    # the labels are kept under the pairwise judge's session: a rerun continues with the same verdict
    again = shell.run_line_magic("qfeval", line).labelling
    assert again.key == session.key and again.decided and again.verdict == said
    plain = shell.run_line_magic("qfeval", "--models good,bad --dataset df --metrics exact_match --judge fickle_judge "
                                           "--label").labelling
    assert plain.key != session.key  # the pointwise judge's queue is another one


def test_pairwise_label_needs_a_pair(shell) -> None:  # type: ignore[no-untyped-def]
    shell.user_ns["pair_judge"] = PairJudge()
    with pytest.raises(UsageError, match="add --compare BASE"):
        shell.run_line_magic("qfeval", "--models good --dataset df --pairwise pair_judge --label")
    with pytest.raises(UsageError, match="add --compare BASE"):
        shell.run_line_magic("qfeval", "--models good,bad --dataset df --pairwise pair_judge")
    session = shell.run_line_magic("qfeval", "--models good,bad --dataset df --metrics exact_match "
                                             "--pairwise pair_judge --label").labelling
    assert session.key.startswith("label:") and session.null == 0.0  # no pointwise judge needed
