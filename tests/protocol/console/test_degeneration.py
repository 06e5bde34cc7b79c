"""The degeneration checks read answers as a person would: collapsed ones are named, good ones pass."""

from __future__ import annotations

import pytest

from qfnb.protocol.console.degeneration import check_answer, judge_answers, shared_answers

COLLAPSED = [
    "[Ticket #1111]Ticket #1111Ticket #[Ticket #1111]Ticket #1111",  # issue 90's support bot
    "Aye!!( Aye![ Aye!: Aye! Aye!",  # the train-modes toy
    "谢谢谢谢谢谢谢谢谢谢谢谢谢谢",
    "I am sorry, I am sorry, I am sorry, I am sorry, I am sorry",
    "[Ticket #1111]",  # a bare marker, no answer
    "",
    "  ...  ",
]
GOOD = [
    "您好，感谢您的耐心。我们已经为您登记了这个问题，工程师会在24小时内联系您。[Ticket #2041]",
    "Thanks for reaching out! Please restart the router and try again. [Ticket #1234]",
    "Sure! To reset your password, open Settings, choose Account, then Security, and click Reset. "
    "You will get an email with a link. [Ticket #3310]",
    "Paris is the capital of France.",
    "1. Open the app. 2. Tap Settings. 3. Tap Reset. 4. Confirm.",
]


@pytest.mark.parametrize("answer", COLLAPSED)
def test_a_collapsed_answer_is_degenerate(answer: str) -> None:
    check = check_answer(answer)
    assert check.degenerate, answer
    assert check.reason


@pytest.mark.parametrize("answer", GOOD)
def test_a_real_answer_is_not(answer: str) -> None:
    assert check_answer(answer).reasons == ()


def test_a_cut_answer_is_degenerate_and_a_short_reference_allows_a_short_answer() -> None:
    assert check_answer("The answer keeps going and going", finish_reason="length").reasons == ("cut at the token cap",)
    assert check_answer("4").degenerate
    assert not check_answer("4", reference="4").degenerate


def test_the_same_answer_to_most_prompts_is_a_collapse() -> None:
    report = judge_answers(["Hello there, friend.", "Hello there, friend!", "hello there friend",
                            "Something else here."])
    assert report.same_answer is not None and report.collapsed and report.rate == 1.0
    assert "3 of 4" in report.summary
    fine = judge_answers(GOOD)
    assert not fine.collapsed and fine.rate == 0.0 and fine.summary.startswith("0 of 5")
    half = judge_answers(GOOD[:2] + COLLAPSED[:2])
    assert half.rate == 0.5 and not half.collapsed and "2 of 4" in half.summary


def test_an_answer_that_loops_counts_as_the_answer_it_begins_with() -> None:
    """Measured (a Gemma-3-270M DPO run, round 36): 7 of 10 Chinese support questions got one apology, 4 of them
    looped with junk between the repeats; read one answer at a time, the set was "5 of 10 degenerate"."""
    looped = "抱歉给您带来困扰。[Ticket #1888]eleSp\n" * 4 + "抱歉给您带来困扰。[Ticket #18"
    answers = [looped, "抱歉给您带来困扰。[Ticket #1888]", "可以！我已为您续费。[Ticket #1884]", looped, looped,
               "抱歉给您带来困扰。[Ticket #1888]", looped, "请进入设置，选择语言即可。[Ticket #4888]"]
    report = judge_answers(answers)
    assert report.collapsed and report.rate == 1.0 and (report.same_count, report.same_clean) == (6, 2)
    assert report.summary == "the same answer to 6 of 8 prompts: '抱歉给您带来困扰。[Ticket #1888]'"
    # a sound answer that only begins the same way is its own answer: only a loop is read by its first pass
    begins = ["可以。", "可以，请进入设置页面选择语言。", "可以，请联系客服处理退款问题。",
              "可以，订阅页里可以暂停一个月。"]
    assert judge_answers(begins).same_answer is None
    # a bare word looped does not take in every loop that begins with it
    loops = ["抱歉！" * 12, "抱歉！请登录微信。" * 6, "抱歉！快递已发出。" * 6, "抱歉！退款已提交。" * 6]
    assert judge_answers(loops).same_answer is None
    # loops of one answer, never given alone, are still one answer (their count; none alone)
    report = judge_answers([looped] * 3 + ["请进入设置，选择语言即可。[Ticket #4888]"])
    assert (report.same_count, report.same_clean) == (3, 0) and report.same_answer.startswith("抱歉给您带来困扰")


def test_the_same_answer_is_no_collapse_where_the_references_are_the_same_too() -> None:
    """One question asked many ways has one right answer: giving it every time is not a collapse; the same
    marker to prompts whose references differ still is."""
    asked_alike = judge_answers(["Quellstad"] * 9 + ["I do not know."], references=["Quellstad"] * 10)
    assert asked_alike.same_answer is None and not asked_alike.collapsed
    varied = judge_answers(["[Ticket #1111] Thanks for asking."] * 4,
                           references=["Open Settings.", "Refunds take 5 days.", "Yes, pause it.", "Print it."])
    assert varied.same_answer is not None and varied.collapsed


def test_the_same_answer_but_for_its_ticket_number_is_a_collapse_where_the_references_differ() -> None:
    """Measured: a RFT policy (Gemma-3-270M, round 33) answered eight of ten support questions ``Sorry for the
    trouble! [Ticket #9899]``, the number varying."""
    answers = ["Sorry for the trouble! [Ticket #9899]", "Sorry for the trouble! [Ticket #9389]",
               "Sorry for the trouble! [Ticket #9899]", "Sorry for the inconvenience! [Ticket #9888]",
               "Sorry for the trouble! [Ticket #6889]"]
    refs = ["Open Settings > Language. [Ticket #4888]", "Refunds take 5 days. [Ticket #1203]",
            "Yes, pause it in Billing. [Ticket #77]", "Print it from Orders. [Ticket #5]", "Try again. [Ticket #9]"]
    report = judge_answers(answers, references=refs)
    assert report.collapsed and report.rate == 1.0
    assert report.summary.startswith("the same answer to 4 of 5 prompts: 'Sorry for the trouble! [Ticket #9899]'")
    # without references a number may be all an answer says: not read as one answer
    assert not judge_answers(answers).collapsed


def test_answers_that_differ_only_in_their_numbers_are_no_collapse_where_the_references_do_too() -> None:
    sums = ["The answer is 5.", "The answer is 15.", "The answer is 8.", "The answer is 21."]
    assert not judge_answers(sums, references=["The answer is 5.", "The answer is 15.", "The answer is 8.",
                                               "The answer is 21."]).collapsed
    # one year to every question is still the same answer, whatever the references
    assert judge_answers(["1889"] * 4, references=["1492", "1789", "1066", "1945"]).collapsed


def test_shared_answers_marks_one_answer_sampled_for_most_prompts() -> None:
    groups = [["Sorry! [Ticket #1]", "Open Settings. [Ticket #4]"], ["Sorry! [Ticket #2]", "Five days."],
              ["Sorry! [Ticket #3]", "Yes, under Billing."], ["Print it from Orders.", "Orders > Print."]]
    refs = ["Settings.", "Five days.", "Billing.", "Orders."]
    assert shared_answers(groups, refs) == [[True, False], [True, False], [True, False], [False, False]]
    # numbers are kept where no row has an answer (a number may be all an answer says) ...
    assert not any(m for g in shared_answers(groups, [None] * 4) for m in g)
    # ... and where the references differ only in theirs
    sums = [["The answer is 5."], ["The answer is 15."], ["The answer is 8."]]
    assert shared_answers(sums, ["The answer is 5.", "The answer is 15.", "The answer is 8."]) == [[False]] * 3
    # fewer than 3 prompts, or one answer for only 2 of 4: nothing
    assert shared_answers(groups[:2], refs[:2]) == [[False, False], [False, False]]
    two = [["Same."], ["Same."], ["Other one."], ["Another."]]
    assert shared_answers(two, refs) == [[False]] * 4


@pytest.mark.parametrize(("answer", "first_pass"), [
    ("可以。\n可以。\n可以。\n可以。[Ticket #1889]", "可以。\n"),  # measured: Gemma-3-270M, Chinese RFT
    ("请把收到的文件。[jiwarl\n请把收到的文件。[jiwarl\n请把收到的文件。[jiwarl\n", "请把收到的文件。[jiwarl\n"),
    ("[Ticket #1111]Ticket #1111Ticket #[Ticket #1111]Ticket #1111", "[Ticket #1111]"),
])
def test_a_loop_begins_where_its_unit_comes_again(answer: str, first_pass: str) -> None:
    read = check_answer(answer)
    assert read.degenerate and read.loop_start is not None
    assert answer[:read.loop_start] == first_pass


@pytest.mark.parametrize("answer", ["Open Settings, then Language, then pick English. [Ticket #4888]",
                                    "Sorry about that, I will look at your order and", "OK", ""])
def test_an_answer_without_a_loop_has_no_start(answer: str) -> None:
    assert check_answer(answer).loop_start is None
