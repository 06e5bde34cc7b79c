"""``%qfeval --models ... --dataset ...`` runs an evaluation: against the local platform's app with
engine doubles (Tiny-Chat answers ``"tiny-chat: <prompt>"``), through the real client stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError

from qfnb.evaluation import EvaluationResult
from qfnb.notebook.errors import QfnbCellError
from qfnb.notebook.evaluation.report import EvalReport
from tests.fakes.local_platform import FakeRegistry, ServedPlatform

ROWS = [
    {"prompt": "hello", "response": [["tiny-chat: hello"]]},
    {"prompt": "two words", "response": [["something else"]]},
    {"prompt": "third", "response": [["tiny-chat: third"]]},
]


@pytest.fixture
def platform(local_platform: ServedPlatform, monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    """The local platform's app with engine doubles on 127.0.0.1; the environment points qfnb at it."""
    local_platform.set_env(monkeypatch, QIANFAN_LLM_API_RETRY_COUNT="1")
    return local_platform.registry


def calls(registry: FakeRegistry) -> int:
    """Inference requests that reached the model doubles."""
    return sum(len(engine.calls) for engine in registry.engines.values())


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


def test_runs_two_models_and_renders_the_report(ip, platform, data_file, capsys) -> None:  # type: ignore[no-untyped-def]
    report = ip.run_line_magic(
        "qfeval", f"--models Tiny-Chat,endpoint:other-chat --dataset {data_file} --metrics exact_match,rouge_l -o res"
    )
    result = ip.user_ns["res"]
    assert isinstance(result, EvaluationResult) and isinstance(report, EvalReport) and report.result is result
    assert list(result.metrics_df.index) == ["Tiny-Chat", "other-chat"]
    # Tiny-Chat answers "tiny-chat: <prompt>": two of three rows match their reference exactly
    assert result.metrics["Tiny-Chat"]["exact_match"] == pytest.approx(2 / 3)
    assert result.metrics["other-chat"]["exact_match"] == 0.0
    assert 0 < result.metrics["other-chat"]["rouge_l"] < result.metrics["Tiny-Chat"]["rouge_l"]
    assert result.samples_df["Tiny-Chat/output"].tolist() == ["tiny-chat: hello", "tiny-chat: two words",
                                                              "tiny-chat: third"]
    assert calls(platform) == 6
    # the chart shows the chosen metrics; the table and the text form come from the same report
    assert report.chart_metrics == ["exact_match", "rouge_l"]
    assert list(report.metrics.columns) == ["exact_match", "rouge_l"]  # the names asked for
    assert report.chart_png().startswith(b"\x89PNG")
    assert "Evaluation — 2 model(s)" in repr(report) and "Tiny-Chat" in repr(report)
    assert 'class="qfnb-eval"' in report.to_html()
    # Contract 8 progress: one bar over inference and scoring (text outside a notebook kernel)
    err = capsys.readouterr().err
    assert "generations: 6/6 (6 ok, 0 failed)" in err  # 3 rows x 2 models; scoring is not counted


def test_report_shows_exactly_the_metrics_asked_for_under_their_names(ip, platform, data_file) -> None:  # type: ignore[no-untyped-def]
    ip.user_ns["path"] = str(data_file)
    report = ip.run_line_magic("qfeval", "--models Tiny-Chat --dataset {path} --metrics rouge_l,bleu")
    assert list(report.metrics.columns) == ["rouge_l", "bleu"]
    assert "rouge_1" not in report.to_html() and "bleu4" not in report.to_html()


def test_without_models_the_default_chat_model_is_evaluated(ip, platform, data_file, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from qfnb.resources import ChatCompletion

    # this platform double's default chat model (the embedded platform reports its own)
    monkeypatch.setattr(ChatCompletion, "_default_model", lambda self: "Tiny-Chat")
    default = "Tiny-Chat"
    report = ip.run_line_magic("qfeval", f"--dataset {data_file} --metrics exact_match -o r")
    assert list(report.metrics.index) == [default] and calls(platform) == 3


def test_namespace_objects_limit_and_generation_options(ip, platform) -> None:  # type: ignore[no-untyped-def]
    from qfnb.resources import ChatCompletion

    ip.user_ns["tiny"] = ChatCompletion(model="Tiny-Chat")
    ip.user_ns["df"] = pd.DataFrame({"question": ["a b c d", "e f g h"], "answer": ["tiny-chat: a", "x"]})
    seen: list[dict[str, Any]] = []

    def shout(prompt: str, **kwargs: Any) -> str:  # a plain callable model gets the generation options too
        seen.append(kwargs)
        return prompt.upper()

    ip.user_ns["shout"] = shout
    ip.run_line_magic("qfeval", "-m tiny -m shout --dataset df --input-column question --reference-column answer "
                                "--metrics exact_match --limit 1 --max-tokens 2 -t 0.5 -o r")
    r = ip.user_ns["r"]
    assert r.samples_df.index.tolist() == [0], "--limit 1 evaluates one row"
    assert r.samples_df["tiny/output"].tolist() == ["tiny-chat: a"], "--max-tokens 2 caps the answer"
    assert r.metrics["tiny"]["exact_match"] == 1.0 and r.samples_df["shout/output"].tolist() == ["A B C D"]
    assert seen == [{"temperature": 0.5, "max_output_tokens": 2}]
    sent = platform.engines["tiny-chat"].calls
    assert len(sent) == 1 and sent[0]["sampling"].max_tokens == 2
    assert sent[0]["sampling"].temperature == 0.5


def test_judge_adds_a_judge_score(ip, platform, data_file) -> None:  # type: ignore[no-untyped-def]
    # the double judge echoes the prompt, which ends with the answer format "评分: <整数>": the
    # parser finds no number in range, so the scores are empty and counted as unparsed
    ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {data_file} --metrics bleu --judge Other-Chat -o r")
    r = ip.user_ns["r"]
    assert {"bleu4", "judge_score_unparsed"} <= set(r.metrics["Tiny-Chat"])
    assert all(j.startswith("other-chat: ") for j in r.samples["judge_score_judgement"])
    assert len(platform.engines["other-chat"].calls) == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--models Tiny-Chat --dataset {data} --metrics rouge_l,perplexity", r"unknown metric\(s\) \['perplexity'\]"),
        ("--models Tiny-Chat --dataset {data} --metrics judge", "needs a judge model"),
        ("--models Tiny-Chat --dataset missing.jsonl", "no such file: missing.jsonl"),
        ("--models Tiny-Chat --dataset nothing_here", "no variable, file or dataset id named 'nothing_here'"),
        ("--models , --dataset {data}", "--models: give at least one model"),
        ("--models Tiny-Chat", "--dataset is required"),
        ("--models No-Such-Model --dataset {data}", "--models: .*unknown model 'No-Such-Model'"),
        ("--models ep_nope --dataset {data}", "no deployed service with endpoint 'ep_nope'"),
        ("--models Tiny-Chat,Tiny-Chat --dataset {data}", "given more than once"),
        ("--models Tiny-Chat --dataset {data} --judge Nope-Judge", "--judge: .*unknown model 'Nope-Judge'"),
        ("--models Tiny-Chat --dataset noref", "no reference answers"),
        ("--models Tiny-Chat --dataset noprompt", "--dataset: no column found among"),
        ("--models Tiny-Chat --dataset {data} --input-column q", "--input-column: column 'q' not in the dataset"),
        ("--models Tiny-Chat --dataset {data} --limit 0", "--limit must be a positive integer"),
        ("--models Tiny-Chat --dataset {data} -t 2", "temperature must be in"),
        ("--models Tiny-Chat --dataset {data} --top-k 0", r"--top-k must be in \[1, 1000\], got 0"),
        ("--models Tiny-Chat --dataset {data} --max-tokens 70000", r"--max-tokens must be in \[1, 65536\]"),
        ("--models Tiny-Chat --dataset {data} -o 1x", "-o/--output must be a Python identifier"),
        ("res --models Tiny-Chat --dataset {data}", "not both"),
        ("--models notamodel --dataset {data}", "--models: notamodel: cannot run 'int'"),
    ],
)
def test_bad_arguments_fail_before_any_model_call(ip, platform, data_file, line: str, message: str) -> None:  # type: ignore[no-untyped-def]
    ip.user_ns["noref"] = [{"prompt": "q"}]
    ip.user_ns["noprompt"] = pd.DataFrame({"text": ["q"], "response": ["a"]})
    ip.user_ns["notamodel"] = 3
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("qfeval", line.format(data=data_file))
    assert calls(platform) == 0
    assert "r" not in ip.user_ns


def test_every_inference_failing_is_one_clear_cell_error(ip, platform, data_file) -> None:  # type: ignore[no-untyped-def]
    def broken(prompt: Any) -> str:
        raise ConnectionError("model server went away")

    ip.user_ns["broken"] = broken
    with pytest.raises(QfnbCellError, match=r"every inference failed.*model server went away"):
        ip.run_line_magic("qfeval", f"--models broken --dataset {data_file} -o r")
    assert "r" not in ip.user_ns


def test_show_form_still_works_with_a_run_result(ip, platform, data_file) -> None:  # type: ignore[no-untyped-def]
    ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {data_file} --metrics rouge -o first")
    report = ip.run_line_magic("qfeval", "first --chart rouge_2")
    assert report.chart_metrics == ["rouge_2"] and list(report.metrics.columns) == ["rouge_1", "rouge_2", "rouge_l"]



def test_platform_dataset_that_cannot_be_read_is_one_clear_line(ip, platform) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(QfnbCellError) as err:  # the platform has no such dataset (or cannot export it)
        ip.run_line_magic("qfeval", "--models Tiny-Chat --dataset 987654 -o r")
    assert err.value.title == "qfeval could not start"
    assert calls(platform) == 0 and "r" not in ip.user_ns


def test_forecast_is_shown_first_and_the_report_puts_the_run_beside_it(ip, platform, data_file, own_record_dir) -> None:  # type: ignore[no-untyped-def]
    report = ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {data_file} --metrics exact_match "
                                         "--max-tokens 8 --forecast")
    shown = [o["data"].get("text/plain", "") for o in ip.display_pub.outputs]
    assert shown and shown[0].startswith("Forecast: 3 calls to Tiny-Chat")  # before the run's bar and report
    assert len(report.forecast) == 1 and report.forecast[0].calls == 3
    assert "Forecast vs actual (3 calls)" in repr(report) and "qfnb-forecast-check" in report.to_html()


def test_a_budget_refuses_an_evaluation_on_its_forecast(ip, platform, data_file, own_record_dir) -> None:  # type: ignore[no-untyped-def]
    from qfnb._core.record.budget import budget

    budget(tokens=20)  # no recorded answers: 3 items x up to 8 tokens, with their prompts, are more than 20
    with pytest.raises(QfnbCellError, match=r"forecast: this evaluation \(3 generations\) may use up to"):
        ip.run_line_magic("qfeval", f"--models Tiny-Chat --dataset {data_file} --metrics exact_match --max-tokens 8")
    assert calls(platform) == 0
