"""``%qfeval ... --compare BASE``, ``--repeats``, ``--recorded`` and reuse of stored answers: against
the local platform's app with engine doubles (Tiny-Chat answers ``"tiny-chat: <prompt>"``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError

from qfnb.notebook.errors import QfnbCellError
from qfnb.notebook.evaluation.report import EvalReport
from tests.fakes.local_platform import FakeRegistry, ServedPlatform
from tests.local.platform_doubles import FakeChat, FakeDelta

ROWS = [{"prompt": f"question {i}", "response": f"tiny-chat: question {i}"} for i in range(6)]


@pytest.fixture
def platform(local_platform: ServedPlatform, monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    local_platform.set_env(monkeypatch, QIANFAN_LLM_API_RETRY_COUNT="1")
    return local_platform.registry


def calls(registry: FakeRegistry) -> dict[str, int]:
    return {name: len(engine.calls) for name, engine in registry.engines.items() if engine.calls}


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


def test_compare_shows_ci_sentence_and_flipped_items(ip, platform, data_file) -> None:  # type: ignore[no-untyped-def]
    report = ip.run_line_magic("qfeval", f"--models Tiny-Chat,Other-Chat --dataset {data_file} "
                                         "--metrics exact_match,rouge_l --compare Other-Chat -o res")
    assert isinstance(report, EvalReport)
    cmp = report.comparison
    assert cmp.baseline == "Other-Chat" and cmp.models == ["Tiny-Chat"] and cmp.metrics == ["exact_match", "rouge_l"]
    acc = cmp.row("Tiny-Chat", "exact_match")  # under the names asked for
    assert (acc.wins, acc.ties, acc.losses) == (6, 0, 0) and acc.test == "McNemar exact"
    assert acc.p_value == pytest.approx(2 / 2**6)
    assert acc.sentence.startswith("Tiny-Chat beats Other-Chat on exact_match by +1.00 (95% CI +1.00\u2026+1.00, "
                                   "6/6 items better")
    html = report.to_html()
    assert "Comparison with Other-Chat" in html and 'class="qfnb-forest"' in html
    assert "var(--jp-" in html.split("Comparison with Other-Chat", 1)[1]  # theme colours in the tables
    assert "6 item(s) flipped" in html and "tiny-chat: question 0" in html and "other-chat: question 0" in html
    assert acc.sentence in repr(report)
    # the same comparison for a result already in the namespace
    again = ip.run_line_magic("qfeval", "res --compare Other-Chat")
    assert cmp.row("Tiny-Chat", "rouge_l") == again.comparison.row("Tiny-Chat", "rouge_l")
    with pytest.raises(UsageError, match="--compare"):
        ip.run_line_magic("qfeval", "res --compare Nope")


def test_rerun_with_one_more_model_asks_only_the_new_model(ip, platform, data_file) -> None:  # type: ignore[no-untyped-def]
    ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {data_file} --metrics exact_match")
    assert calls(platform) == {"tiny-chat": 6}
    first = ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {data_file} --metrics exact_match")
    assert first.reused is not None and first.reused.startswith("↺ 6 of 6 answers reused")  # a replay says so
    assert first.reused in repr(first) and "--fresh" in first.to_html()
    report = ip.run_line_magic("qfeval", f"--models Tiny-Chat,Other-Chat --dataset {data_file} "
                                         "--metrics exact_match --compare Tiny-Chat -o r")
    assert calls(platform) == {"tiny-chat": 6, "other-chat": 6}  # exactly the new model's calls
    assert report.reused.startswith("↺ 6 of 12 answers reused") and "(6 asked now)" in report.reused
    assert ip.user_ns["r"].metrics["Tiny-Chat"]["exact_match"] == 1.0
    ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {data_file} --metrics exact_match --fresh")
    assert calls(platform) == {"tiny-chat": 12, "other-chat": 6}


def test_repeats_show_stability(ip, platform, data_file) -> None:  # type: ignore[no-untyped-def]
    report = ip.run_line_magic("qfeval", f"--models Tiny-Chat,Other-Chat --dataset {data_file} "
                                         "--metrics exact_match --repeats 2 -t 0.8 --compare Other-Chat -o r")
    assert calls(platform) == {"tiny-chat": 12, "other-chat": 12}
    assert all(c["sampling"].temperature == 0.8 for c in platform.engines["tiny-chat"].calls)
    assert ip.user_ns["r"].repeats == 2
    assert report.stability is not None and "Stability over 2 repeats" in report.to_html()
    assert report.comparison.row("Tiny-Chat", "exact_match").repeats == 2
    with pytest.raises(UsageError, match="--repeats must be a positive integer"):
        ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {data_file} --repeats 0")


def test_recorded_answers_are_scored_without_a_model(ip, platform, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ip.user_ns["df"] = pd.DataFrame({"prompt": [r["prompt"] for r in ROWS], "response": [r["response"] for r in ROWS],
                                     "old": ["tiny-chat: question 0"] + ["nope"] * 5})
    batch = tmp_path / "out.jsonl"
    batch.write_text("".join(json.dumps({"prompt": r["prompt"], "llm_output": r["response"]}) + "\n"
                             for r in ROWS[::-1]), encoding="utf-8")
    report = ip.run_line_magic("qfeval", f"--dataset df --recorded old,batch={batch} --metrics exact_match "
                                         "--compare old -o r")
    assert calls(platform) == {}
    r = ip.user_ns["r"]
    assert r.metrics["old"]["exact_match"] == pytest.approx(1 / 6) and r.metrics["batch"]["exact_match"] == 1.0
    assert report.comparison.row("batch", "exact_match").wins == 5
    with pytest.raises(UsageError, match="neither a dataset column"):
        ip.run_line_magic("qfeval", "--dataset df --recorded x=missing")
    with pytest.raises(UsageError, match="not one of the evaluated models"):
        ip.run_line_magic("qfeval", "--dataset df --recorded old --compare Tiny-Chat")


def test_separate_runs_are_compared_item_by_item(ip, platform, data_file) -> None:  # type: ignore[no-untyped-def]
    ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {data_file} --metrics exact_match -o r1")
    ip.run_line_magic("qfeval", f"--models Other-Chat --dataset {data_file} --metrics exact_match -o r2")
    ip.user_ns["runs"] = {"tuned": ip.user_ns["r1"], "base": ip.user_ns["r2"]}
    report = ip.run_line_magic("qfeval", "runs --compare base")
    row = report.comparison.row("tuned", "exact_match")
    assert (row.wins, row.n) == (6, 6) and row.verdict == "better"


def test_pairwise_judge_and_the_self_judging_guardrail(ip, platform, data_file) -> None:  # type: ignore[no-untyped-def]
    asked: list[str] = []

    def first_one(prompt: str, **kwargs: object) -> str:  # a judge double that always prefers position A
        asked.append(prompt)
        return "Winner: A"

    ip.user_ns["first_one"] = first_one
    report = ip.run_line_magic("qfeval", f"--models Tiny-Chat,Other-Chat --dataset {data_file} --metrics exact_match "
                                         "--compare Other-Chat --pairwise first_one")
    row = report.comparison.row("Tiny-Chat", "judge:first_one")
    assert (row.n, row.wins, row.ties, row.losses) == (0, 0, 0, 0) and len(asked) == 12  # 6 pairs x both orders
    assert any("order-consistency 0 of 6 pairs" in n and "6 of 6 pairs changed verdict with the order" in n
               for n in report.comparison.notes)
    before = calls(platform)
    for line in (f"--models Tiny-Chat,Other-Chat --dataset {data_file} --judge Tiny-Chat",
                 f"--models Tiny-Chat,Other-Chat --dataset {data_file} --compare Other-Chat --pairwise Other-Chat"):
        with pytest.raises(UsageError, match="also a candidate"):
            ip.run_line_magic("qfeval", line)
    with pytest.raises(UsageError, match="add --compare"):
        ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {data_file} --pairwise first_one")
    assert calls(platform) == before  # refused before any call


def test_sequential_stops_early_and_run_all_replays_with_no_call(ip, platform, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = [{"prompt": f"question {i}", "response": f"tiny-chat: question {i}"} for i in range(120)]
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    line = (f"--models Tiny-Chat,Other-Chat --dataset {path} --metrics exact_match --compare Other-Chat "
            "--sequential 0.2 -o res")
    report = ip.run_line_magic("qfeval", line)
    rec = report.sequential
    assert rec.winner == "a" and rec.decided_at is not None and rec.generated < 40
    assert calls(platform) == {"tiny-chat": rec.generated, "other-chat": rec.generated}
    sentence = f"decided after {rec.decided_at} of 120 items; {2 * (120 - rec.generated)} calls saved"
    assert sentence in rec.sentence and "Tiny-Chat beats Other-Chat on exact_match" in rec.sentence
    html = report.to_html()
    assert "Sequential comparison on exact_match" in html and sentence in html and report.comparison is None
    assert sentence in repr(report)
    # Run All: the same order from the answer store, the same decision, no call
    before = calls(platform)
    again = ip.run_line_magic("qfeval", line)
    assert calls(platform) == before
    assert (again.sequential.order, again.sequential.decided_at) == (rec.order, rec.decided_at)
    # the stored result re-shows its decision
    assert sentence in repr(ip.run_line_magic("qfeval", "res"))


@pytest.mark.parametrize(("extra", "message"), [
    ("--sequential", "add --compare BASE"),
    ("--compare Other-Chat --sequential x", "MIN_DIFF must be a number"),
    ("--compare Other-Chat --sequential -0.1", "MIN_DIFF must be positive"),
])
def test_sequential_needs_a_comparison_of_two_models(ip, platform, data_file, extra, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("qfeval", f"--models Tiny-Chat,Other-Chat --dataset {data_file} {extra}")
    assert calls(platform) == {}


@pytest.fixture
def long_file(tmp_path: Path) -> Path:
    """200 items whose reference is Other-Chat's answer on every fifth, Tiny-Chat's on the rest."""
    rows = [{"prompt": f"question {i}", "response": f"{'other' if i % 5 == 0 else 'tiny'}-chat: question {i}"}
            for i in range(200)]
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run_pilot(ip: Any, path: Path, *options: str) -> Any:
    """``%qfeval``'s 10-item pilot of Tiny-Chat against Other-Chat on ``path`` (``options`` added),
    planning for a difference of 0.5 in exact match (``-o pilot``): its report."""
    pilot = f"--models Tiny-Chat,Other-Chat --dataset {path} --metrics exact_match --compare Other-Chat --plan 0.5"
    return ip.run_line_magic("qfeval", " ".join([pilot, "--sample 10", *options, "-o pilot"]))


def test_plan_from_a_pilot_and_from_a_stored_result(ip, platform, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = [{"prompt": f"question {i}", "response": f"{'other' if i % 3 == 0 else 'tiny'}-chat: question {i}"}
            for i in range(60)]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    line = (f"--models Tiny-Chat,Other-Chat --dataset {path} --metrics exact_match --compare Other-Chat "
            "--plan 0.2 --limit 12 -o pilot")
    report = ip.run_line_magic("qfeval", line)
    assert calls(platform) == {"tiny-chat": 12, "other-chat": 12}  # the pilot only
    plan = report.plan
    (only,) = plan.plans
    assert only.models == ("Tiny-Chat", "Other-Chat") and only.n_pilot == 12 and only.discordant == 1.0
    assert plan.n_items > 60 and "The data set has only 60 items" in "\n".join(plan.sentences)
    assert plan.next_line == (f"%qfeval --models Tiny-Chat,Other-Chat --dataset {path} --metrics exact_match "
                              "--compare Other-Chat -o pilot")  # every row: the plan needs more than there are
    html = report.to_html()
    assert "Plan on exact_match (pilot: 12 items)" in html and 'class="qfnb-plan-line"' in html
    assert f"{only.n_items} paired items detect a difference of 0.2" in repr(report)
    # the same plan from the stored pilot
    stored = ip.run_line_magic("qfeval", "pilot --compare Other-Chat --plan 0.2")
    assert stored.plan.plans[0].n_items == only.n_items and stored.plan.next_line is None
    with pytest.raises(UsageError, match="--compare BASE"):
        ip.run_line_magic("qfeval", "pilot --plan 0.2")
    with pytest.raises(UsageError, match="MIN_DIFF must be positive"):
        ip.run_line_magic("qfeval", f"--models Tiny-Chat,Other-Chat --dataset {path} --compare Other-Chat --plan 0")


def test_the_plans_line_runs_the_planned_items_and_reuses_the_pilot(ip, platform, long_file) -> None:  # type: ignore[no-untyped-def]
    report = run_pilot(ip, long_file)
    n = report.plan.n_items
    assert calls(platform) == {"tiny-chat": 10, "other-chat": 10} and 10 < n < 200
    line = report.plan.next_line
    assert line.endswith(f"--compare Other-Chat -o pilot --sample {n}") and "--plan" not in line
    assert line in repr(report) and line in report.to_html()
    # the printed line, run as it is: the planned items, drawn as the pilot's were, so only the rest is asked
    assert line.startswith("%qfeval ")
    full = ip.run_line_magic("qfeval", line[len("%qfeval "):])
    assert calls(platform) == {"tiny-chat": n, "other-chat": n}  # 10 for the pilot, n - 10 now
    assert len(full.result.samples_df) == n and full.comparison is not None
    assert (full.reused or "").startswith(f"↺ 20 of {2 * n} answers reused")  # the pilot's, and it says so
    with pytest.raises(UsageError, match="--sample must be a positive integer"):
        ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {long_file} --sample 0")


def test_the_plans_full_run_is_one_click_in_the_same_kernel(ip, platform, long_file) -> None:  # type: ignore[no-untyped-def]
    """A button under the report runs the plan's line in this kernel; its output stays under the button.
    Outside a kernel (a terminal, this shell) the line alone is offered."""
    from qfnb.notebook.evaluation import plan as evalplan

    report = run_pilot(ip, long_file)
    assert report.runner is None and "application/vnd.jupyter.widget-view+json" not in report._repr_mimebundle_()
    magics = ip.magics_manager.registry["QfnbMagics"]
    n, line = report.plan.n_items, report.plan.next_line
    report.runner = runner = evalplan.FullRun(line, magics.run_line)  # what a kernel's run attaches
    bundle = report._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and line in bundle["text/html"]
    assert runner.button.description == f"Run the full evaluation ({n} items)" and runner.button.tooltip == line
    assert [type(w).__name__ for w in runner.view.children] == ["Output", "Button", "Output"]
    assert runner.view.children[0].outputs[0]["data"]["text/html"] == bundle["text/html"]  # the report, as shown
    shown = len(ip.display_pub.outputs)
    runner.button.click()
    assert calls(platform) == {"tiny-chat": n, "other-chat": n}  # the full run, the pilot's answers reused
    assert len(ip.user_ns["pilot"].samples_df) == n and not runner.button.disabled
    full = [o for o in ip.display_pub.outputs[shown:] if "qfnb-eval-report" in str(o["data"].get("text/html"))]
    assert len(full) == 1 and f"↺ 20 of {2 * n} answers reused" in full[0]["data"]["text/html"]


def test_the_plan_forecasts_what_the_full_run_adds_to_the_pilot(ip, platform, long_file, own_record_dir) -> None:  # type: ignore[no-untyped-def]
    """Beside the plan: the forecast of the items its full run adds (the pilot's are reused), one per
    model, learnt from the pilot's answers; the run it forecast asks exactly that many calls."""
    report = run_pilot(ip, long_file, "--max-tokens 8")
    n, full = report.plan.n_items, report.plan.full_run
    assert full.new_items == n - 10 and full.reused_items == 10 and not full.notes
    assert sorted(f.model for f in full.forecasts) == ["Other-Chat", "Tiny-Chat"]
    assert all(f.calls == n - 10 and f.output_expected is not None for f in full.forecasts)  # the pilot's answers
    assert all(f.known == 10 and "10 stored" in f.known_source for f in full.forecasts)  # in the answer store
    assert all("from the pilot" in f.output_source or "recorded answers" in f.output_source for f in full.forecasts)
    text, html = repr(report), report.to_html()
    assert f"The full run adds {n - 10:,} items to the pilot's 10" in text
    assert f"Forecast: {n - 10:,} calls to Tiny-Chat" in text
    assert 'class="qfnb-plan-forecast"' in html and html.count('class="qfnb-forecast"') == 2
    # the forecast counted the calls the line then makes
    platform.engines["tiny-chat"].calls.clear()
    ip.run_line_magic("qfeval", report.plan.next_line[len("%qfeval "):])
    assert len(platform.engines["tiny-chat"].calls) == n - 10
    # a pilot of the whole data set adds nothing, and says so
    small = ip.run_line_magic("qfeval", f"--models Tiny-Chat,Other-Chat --dataset {long_file} --metrics exact_match "
                                        "--compare Other-Chat --plan 0.5 --sample 400")
    assert small.plan.full_run.new_items == 0 and "asks nothing new" in repr(small)


def test_prompt_variants_are_forecast_as_their_model_is_asked(ip, platform, data_file, own_record_dir) -> None:  # type: ignore[no-untyped-def]
    """--prompts with --forecast: one forecast per variant, on the variant's model, with the template
    filled (or its system prompt sent); a budget refuses the run on it before any call."""
    from qfnb._core.record.budget import budget

    ip.user_ns["terse"] = "Answer in one word, and nothing else, whatever the question says."
    report = ip.run_line_magic("qfeval", f"--prompts 'plain={{input}},asked=Q: {{input}} (answer in one short "
                                         f"sentence, plainly)',terse=terse --model Tiny-Chat --dataset {data_file} "
                                         "--metrics exact_match --max-tokens 8 --forecast")
    found = {c.forecast.asked or c.forecast.model: c.forecast for c in report.forecast}
    assert len(report.forecast) == 3 and set(found) == {"Tiny-Chat"}
    plain, asked, terse = (c.forecast for c in report.forecast)
    assert plain.calls == asked.calls == terse.calls == 6
    assert asked.input_tokens > plain.input_tokens and terse.input_tokens > plain.input_tokens
    platform.engines["tiny-chat"].calls.clear()
    budget(tokens=20)
    with pytest.raises(QfnbCellError, match=r"forecast: this evaluation \(12 generations\) may use up to"):
        ip.run_line_magic("qfeval", f"--prompts 'a=A: {{input}},b=B: {{input}}' --model Tiny-Chat "
                                    f"--dataset {data_file} --metrics exact_match --max-tokens 8")
    assert platform.engines["tiny-chat"].calls == []


def kind_judge(prompt: str, **options: object) -> str:
    """A judge as a notebook function (it is also given the judge's call options, such as
    max_output_tokens): 5 for Tiny-Chat's answers, 3 for the others' (a kind judge)."""
    return "评分: 5" if "tiny-chat: question" in prompt else "评分: 3"


def test_calibrate_a_judge_with_your_labels(ip, platform, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = [{"prompt": f"question {i}", "response": f"tiny-chat: question {i}",
             "mine_tiny": (4 if i % 4 else 3) if i < 8 else None, "mine_other": (2 if i % 3 else 1) if i < 8 else None}
            for i in range(30)]
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ip.user_ns["kind_judge"] = kind_judge
    report = ip.run_line_magic("qfeval", f"--models Tiny-Chat,Other-Chat --dataset {path} --metrics exact_match "
                                         "--judge kind_judge --calibrate Tiny-Chat=mine_tiny,Other-Chat=mine_other "
                                         "--compare Other-Chat")
    text = "\n".join(report.judge_notes)
    assert "judge kind_judge on judge_score vs your labels of Tiny-Chat: Spearman" in text
    # the judge says 5 where you said 3.75 on average: the calibrated mean is yours, not the judge's
    assert "Tiny-Chat: judge_score calibrated to your labels 3.75" in text and "off by +1.25" in text
    assert "Tiny-Chat \u2212 Other-Chat: judge_score difference calibrated to your labels" in text
    assert "Judge calibration" in report.to_html() and text in repr(report)
    assert [(v.tag, v.judge, v.metric) for v in report.verdicts] == [("Tiny-Chat", "kind_judge", "judge_score"),
                                                                      ("Other-Chat", "kind_judge", "judge_score")]
    assert list(report.verdicts_df["model"]) == ["Tiny-Chat", "Other-Chat"]
    # the same labels from a file: by input, one column per model (jsonl), or by row index, one model (csv)
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"input": r["prompt"], "Tiny-Chat": r["mine_tiny"],
                                          "Other-Chat": r["mine_other"]}) + "\n" for r in rows[:8]), encoding="utf-8")
    other = tmp_path / "other.csv"
    other.write_text("index,label\n" + "".join(f"{i},{r['mine_other']}\n" for i, r in enumerate(rows[:8])),
                     encoding="utf-8")
    for spec in (str(labels), f"Tiny-Chat={labels},Other-Chat={other}"):
        from_file = ip.run_line_magic("qfeval", f"--models Tiny-Chat,Other-Chat --dataset {path} --metrics exact_match "
                                                f"--judge kind_judge --calibrate {spec} --compare Other-Chat")
        assert (from_file.verdicts, from_file.judge_notes) == (report.verdicts, report.judge_notes)
    bad = tmp_path / "bad.csv"
    bad.write_text("input,label\nno such question,3\n", encoding="utf-8")
    with pytest.raises(UsageError, match="1 row\\(s\\) match no item by input \\(first: 'no such question'\\)"):
        ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {path} --judge kind_judge --calibrate {bad}")
    with pytest.raises(UsageError, match="has no labels for \\['Tiny-Chat', 'Other-Chat'\\]"):
        ip.run_line_magic("qfeval", f"--models Tiny-Chat,Other-Chat --dataset {path} --judge kind_judge "
                                    f"--calibrate {other}")
    # no labels: the report says the judge is uncalibrated
    plain = ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {path} --metrics exact_match --judge kind_judge")
    assert plain.verdicts == [] and plain.verdicts_df.empty
    assert plain.judge_notes == ["judge kind_judge on judge_score is uncalibrated: nothing compares it with your "
                                 "own labels (--calibrate LABELS, or qfnb.evaluation.calibrated_mean)"]
    with pytest.raises(UsageError, match="add --judge"):
        ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {path} --calibrate mine_tiny")
    with pytest.raises(UsageError, match="no column 'nope'"):
        ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {path} --judge kind_judge --calibrate nope")


def test_reshowing_a_stored_result_shows_only_the_metrics_asked_for(ip, platform, data_file) -> None:  # type: ignore[no-untyped-def]
    ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {data_file} --metrics rouge_l,bleu -o r")
    again = ip.run_line_magic("qfeval", "r")
    assert list(again.metrics.columns) == ["rouge_l", "bleu"]  # not rouge_1 / rouge_2, bleu under its name
    assert not [c for c in again.samples.columns if "rouge_1" in c or "rouge_2" in c]


def test_prompts_are_compared_as_models_are(ip, platform, data_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--prompts: a template with {input}, a system prompt from a variable and one from a file, on one model;
    paired, --compare and --sequential as for models; each prompt keeps its own stored answers."""
    ip.user_ns["terse"] = "Answer in one word."
    polite = tmp_path / "polite.txt"
    polite.write_text("Answer politely, please.\n", encoding="utf-8")
    report = ip.run_line_magic("qfeval", f"--prompts 'plain={{input}},asked=Q: {{input}}, briefly' --model Tiny-Chat "
                                         f"--dataset {data_file} --metrics exact_match --compare asked -o res")
    res = ip.user_ns["res"]
    assert list(res.metrics_df.index) == ["plain", "asked"]
    assert res.samples_df["asked/output"].tolist()[0] == "tiny-chat: Q: question 0, briefly"
    assert res.metrics["plain"]["exact_match"] == 1.0 and res.metrics["asked"]["exact_match"] == 0.0
    row = report.comparison.row("plain", "exact_match")
    assert (row.wins, row.n) == (6, 6)
    engine = platform.engines["tiny-chat"]
    assert len(engine.calls) == 12
    engine.calls.clear()
    # system prompts (a variable, a file): sent as the system turn, the item as the user's
    ip.run_line_magic("qfeval", f"--prompts terse=terse,polite={polite} --model Tiny-Chat --dataset {data_file} "
                                "--metrics exact_match")
    systems = sorted({c["system"] for c in engine.calls})
    assert systems == ["Answer in one word.", "Answer politely, please."] and len(engine.calls) == 12
    # the same prompts again: every answer from the store; another prompt text is asked again
    engine.calls.clear()
    ip.run_line_magic("qfeval", f"--prompts terse=terse,polite={polite} --model Tiny-Chat --dataset {data_file}")
    assert engine.calls == []
    ip.user_ns["terse"] = "Answer in two words."
    ip.run_line_magic("qfeval", f"--prompts terse=terse,polite={polite} --model Tiny-Chat --dataset {data_file}")
    assert len(engine.calls) == 6 and {c["system"] for c in engine.calls} == {"Answer in two words."}


def test_prompts_decide_sequentially(ip, platform, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = [{"prompt": f"question {i}", "response": f"tiny-chat: question {i}"} for i in range(120)]
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = ip.run_line_magic("qfeval", f"--prompts 'plain={{input}},asked=Q: {{input}}' --model Tiny-Chat "
                                         f"--dataset {path} --metrics exact_match --compare asked --sequential 0.2")
    rec = report.sequential
    assert rec.winner == "a" and rec.generated < 40 and "plain beats asked on exact_match" in rec.sentence
    assert calls(platform) == {"tiny-chat": 2 * rec.generated}


@pytest.mark.parametrize(("prompts", "message"), [
    ("a=nope", "neither a notebook variable, a file, nor a template"),
    ("a={input}", "give at least two"),
    ("a={input},a=x {input}", "'a' given more than once"),
    ("a=number,b={input}", "holds a int, not a prompt string"),
    ("justtext", "should be NAME=PROMPT"),
])
def test_bad_prompts_fail_before_any_call(ip, platform, data_file, prompts, message) -> None:  # type: ignore[no-untyped-def]
    ip.user_ns["number"] = 3
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("qfeval", f"--prompts '{prompts}' --model Tiny-Chat --dataset {data_file}")
    with pytest.raises(UsageError, match="one --model"):
        ip.run_line_magic("qfeval", f"--prompts 'a={{input}},b=x {{input}}' --models Tiny-Chat,Other-Chat "
                                    f"--dataset {data_file}")
    with pytest.raises(UsageError, match="also a candidate"):  # the prompts' model cannot judge them
        ip.run_line_magic("qfeval", f"--prompts 'a={{input}},b=x {{input}}' --model Tiny-Chat --dataset {data_file} "
                                    "--judge Tiny-Chat")
    assert calls(platform) == {}


def starts_right(input: str, reference: str, output: str) -> float:
    """A notebook metric: 1.0 when the answer starts as the reference does."""
    return float(output.split(":")[0] == reference.split(":")[0])


def cites(input: str, reference: str, output: str) -> dict[str, float]:
    """A notebook metric giving two columns."""
    return {"cites_input": float(input in output), "words": float(len(output.split()))}


def test_a_notebook_function_is_a_metric_beside_the_built_ins(ip, platform, data_file) -> None:  # type: ignore[no-untyped-def]
    ip.user_ns.update(starts_right=starts_right, cites=cites, not_a_function=3,
                      broken=lambda i, r, o: "high")
    report = ip.run_line_magic("qfeval", f"--models Tiny-Chat,Other-Chat --dataset {data_file} "
                                         "--metrics rouge_l,starts_right,cites --compare Other-Chat -o res")
    res = ip.user_ns["res"]
    assert list(report.metrics.columns) == ["rouge_l", "starts_right", "cites_input", "words"]
    assert res.metrics["Tiny-Chat"]["starts_right"] == 1.0 and res.metrics["Other-Chat"]["starts_right"] == 0.0
    assert res.metrics["Tiny-Chat"]["cites_input"] == 1.0 and res.metrics["Tiny-Chat"]["words"] == 3.0
    assert report.comparison.row("Tiny-Chat", "starts_right").wins == 6
    assert "Tiny-Chat/starts_right" in report.samples.columns
    again = ip.run_line_magic("qfeval", "res")  # re-shown: the same columns
    assert list(again.metrics.columns) == ["rouge_l", "starts_right", "cites_input", "words"]
    before = calls(platform)
    with pytest.raises(UsageError, match="'not_a_function' is a int, not a function"):
        ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {data_file} --metrics not_a_function")
    with pytest.raises(UsageError, match="unknown metric"):
        ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {data_file} --metrics nothing_here")
    with pytest.raises(UsageError, match="no known score range for 'starts_right'"):
        ip.run_line_magic("qfeval", f"--models Tiny-Chat,Other-Chat --dataset {data_file} --metrics starts_right "
                                    "--compare Other-Chat --sequential")
    assert calls(platform) == before  # refused before any call
    with pytest.raises(QfnbCellError, match="metric 'broken': 'broken' is 'high'"):
        ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {data_file} --metrics broken")


def test_plan_skips_an_identical_pair_and_plans_on_the_first_metric(ip, platform, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--plan failed outright when one compared pair was identical ("no spread to plan from"), and a
    stored result planned on exact_match although the first metric asked was a notebook function."""
    rows = [{"prompt": f"question {i}", "response": f"{'other' if i % 3 == 0 else 'tiny'}-chat: question {i}"}
            for i in range(30)]
    ip.user_ns["df"] = pd.DataFrame({"prompt": [r["prompt"] for r in rows], "response": [r["response"] for r in rows]})
    ip.user_ns["label_ok"] = lambda input, reference, output: float(output == reference)
    ip.user_ns["twin"] = lambda prompt, **kwargs: f"other-chat: {prompt}"  # answers as Other-Chat does
    report = ip.run_line_magic("qfeval", "--models Tiny-Chat,Other-Chat,twin --dataset df "
                                         "--metrics label_ok,exact_match --compare Other-Chat --plan 0.2 "
                                         "--limit 12 -o pilot")
    plan = report.plan
    assert plan.metric == "label_ok" and [p.models for p in plan.plans] == [("Tiny-Chat", "Other-Chat")]
    assert any(s.startswith("twin vs Other-Chat left out:") and "no spread to plan from" in s for s in plan.sentences)
    stored = ip.run_line_magic("qfeval", "pilot --compare Other-Chat --plan 0.2")  # no --metrics: the first asked
    assert stored.plan.metric == "label_ok" and stored.plan.plans[0].n_items == plan.plans[0].n_items


def test_a_recorded_only_run_has_an_honest_bar(ip, platform, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A run of recorded answers only makes no call: its bar showed an empty 0/0."""
    from qfnb.notebook.evaluation import run as evalrun

    seen: dict[str, Any] = {"results": 0}

    class Bar:
        def on_start(self, total: int | None) -> None:
            seen["total"] = total

        def on_result(self, index: int, ok: bool) -> None:
            seen["results"] += 1

        def on_close(self) -> None:
            seen["closed"] = True

    def bar(progress: Any, *, desc: str) -> Bar:
        seen["desc"] = desc
        return Bar()

    monkeypatch.setattr(evalrun, "make_progress", bar)
    ip.user_ns["df"] = pd.DataFrame({"prompt": [r["prompt"] for r in ROWS], "response": [r["response"] for r in ROWS],
                                     "old": [r["response"] for r in ROWS[:2]] + ["nope"] * 4})
    ip.run_line_magic("qfeval", "--dataset df --recorded old --metrics exact_match -o r")
    assert calls(platform) == {} and ip.user_ns["r"].metrics["old"]["exact_match"] == pytest.approx(2 / 6)
    assert seen["desc"] == "recorded answers scored (no calls)" and seen["total"] == 6 == seen["results"]


def test_each_models_own_score_has_its_ci(ip, platform, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The report gave each model's mean with no interval: only the comparison had one."""
    rows = [{"prompt": f"question {i}", "response": f"{'other' if i % 3 == 0 else 'tiny'}-chat: question {i}"}
            for i in range(12)]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = ip.run_line_magic("qfeval", f"--models Tiny-Chat,Other-Chat --dataset {path} --metrics exact_match -o r")
    table = ip.user_ns["r"].score_intervals()
    tiny, other = table.loc[("Tiny-Chat", "exact_match")], table.loc[("Other-Chat", "exact_match")]
    assert tiny["mean"] == pytest.approx(8 / 12) and other["mean"] == pytest.approx(4 / 12)
    assert tiny["low"] < tiny["mean"] < tiny["high"] and other["low"] < other["mean"] < other["high"]
    assert tiny["n"] == 12 and tiny["high"] <= 1.0 and other["low"] >= 0.0
    said = f"Tiny-Chat: exact_match 0.67 (95% CI {tiny['low']:.2f}–{tiny['high']:.2f}, 12 items)"
    assert said in repr(report) and said in report.to_html()


MARKER = "[Ticket #1111]Ticket #1111Ticket #[Ticket #1111]"


class CollapsedChat(FakeChat):
    """A preference-tuned model that collapsed: the ticket marker repeated, and nothing else, whatever it is asked."""

    def _words(self, text: str, sampling: Any) -> Any:
        yield FakeDelta(MARKER * 4, "normal", prompt_tokens=len(text.split()), completion_tokens=24)


def test_a_collapsed_model_never_wins_on_a_metric_its_marker_satisfies(ip, platform, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The issue's case: the team's metric "has a ticket reference" scores every collapsed answer 1 and the base's
    plain answers 0; the comparison opens with the collapse, the metric's row is not a win, and decided with
    degeneration first the base wins every item."""
    rows = [{"prompt": f"my order {i} is late", "response": f"Sorry for the delay, we are on it. [Ticket #{4800 + i}]"}
            for i in range(8)]
    path = tmp_path / "support.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    platform.engines["tiny-chat"] = CollapsedChat("tiny-chat")
    ip.user_ns["has_ticket"] = lambda input, reference, output: float("Ticket #" in output)
    report = ip.run_line_magic("qfeval", f"--models Tiny-Chat,Other-Chat --dataset {path} --metrics has_ticket "
                                         "--compare Other-Chat")
    cmp = report.comparison
    assert cmp.sentences[0].startswith("Tiny-Chat collapsed: the same answer to 8 of 8 prompts: '[Ticket #1111]")
    assert "It is not the winner" in cmp.sentences[0]
    alone = cmp.row("Tiny-Chat", "has_ticket")
    assert (alone.wins, alone.losses) == (8, 0) and alone.plain_verdict == "better"  # the metric alone is fooled
    assert alone.verdict == "collapsed: not a win" and alone.winner is None
    assert "Tiny-Chat collapsed: not a win" in alone.sentence and "beats" not in alone.sentence
    first = cmp.row("Tiny-Chat", "has_ticket, degeneration first")
    assert (first.wins, first.ties, first.losses) == (0, 0, 8) and first.verdict == "worse"
    assert first.winner == "Other-Chat"
    shown = repr(report)
    assert shown.index("Tiny-Chat collapsed") < shown.index("on has_ticket")  # the verdict opens with it
    assert "Tiny-Chat beats Other-Chat" not in shown and "Tiny-Chat beats Other-Chat" not in report.to_html()
