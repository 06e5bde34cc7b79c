"""``%qftrain --forecast``: training tokens counted by the base's tokenizer on the platform (the local
platform's app with paced engine doubles, whose tokenizer counts a turn's words), steps, time from
this machine's recorded fine-tunes, price where the table has one; a budget refuses before launch;
the dashboard puts the run beside the forecast. The run itself is a fake trainer."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from nb_doubles import FakeTrainer, use_trainer

from qfnb._core.record.budget import budget
from qfnb._core.record.ledger import UsageRow, default_ledger
from qfnb.notebook.errors import QfnbCellError
from qfnb.trainer.spend.forecast import forecast_training
from tests.fakes.local_platform import ServedPlatform, served_platform

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "batch"))
from batch_doubles import PacedRegistry  # the paced engines: a prompt's tokens are its last turn's words

ROWS = 10
LINE = "--base Tiny-Chat --dataset {path} --epochs 2 --batch-size 4 --eval-split 20 -o dash"


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_record_dir: None) -> Iterator[ServedPlatform]:
    with served_platform(tmp_path / "platform", registry=PacedRegistry()) as platform:
        platform.as_default_backend(monkeypatch)  # no credentials: the embedded (local) platform
        yield platform


@pytest.fixture()
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"question {i}", "response": [["one two three"]]}) + "\n"
                            for i in range(ROWS)), encoding="utf-8")
    return path


def trainers(ip: InteractiveShell, gate: threading.Event) -> list[FakeTrainer]:
    return use_trainer(ip, steps=4, step_time=0.01, gate=gate)


def history() -> None:
    """Three recorded local fine-tunes of Tiny-Chat: 2 s of start-up and 100 tokens a second."""
    ledger = default_ledger()
    for tokens in (1000, 2000, 4000):
        ledger.record(UsageRow(api="fine-tune", model="Tiny-Chat", platform="local", trained_tokens=tokens,
                               latency_s=2.0 + tokens / 100, ts=time.time() - 100, job=f"fine-tune old-{tokens}"))
    ledger.flush()


def html(ip: InteractiveShell) -> str:
    return "".join(str(o["data"].get("text/html", "")) for o in ip.display_pub.outputs)  # type: ignore[attr-defined]


def test_forecast_before_the_run_and_the_run_beside_it(served: ServedPlatform, ip: InteractiveShell,
                                                      data_file: Path) -> None:
    history()
    gate = threading.Event()
    made = trainers(ip, gate)
    ip.run_line_magic("qftrain", LINE.format(path=data_file) + " --forecast")
    fc = ip.user_ns["dash"].forecast
    # 10 rows, 2 held out: 8 trained x 2 epochs = 16 rows of 3 tokens (the answer turn, as the double counts)
    assert (fc.rows, fc.trained_rows, fc.steps, fc.tokens) == (10, 8, 4, 48)
    assert "counted by" in fc.token_source and "tokenizer" in fc.token_source
    assert fc.seconds == pytest.approx(2.0 + 48 / 100, rel=1e-3)
    assert "3 recorded fine-tunes of Tiny-Chat on this machine: 100 tokens/s after 2 s of start-up" in fc.speed_source
    assert fc.yuan == 0.0 and fc.price_source == "local fine-tune"
    shown = html(ip)
    assert "qfnb-forecast" in shown and "training tokens" in shown and "~48" in shown
    assert made, "the run started after the forecast"
    default_ledger().record(UsageRow(api="fine-tune", model="Tiny-Chat", platform="local", trained_tokens=50,
                                     latency_s=1.0, job="fine-tune task-1"))  # what the platform reports at its end
    gate.set()
    dash = ip.user_ns["dash"]
    dash.wait(timeout=20)
    assert "forecast vs actual: training tokens ~48 → 50 (104% of forecast) · steps 4 → 4" in dash.log_view.value


def test_a_budget_refuses_the_fine_tune_on_its_forecast(served: ServedPlatform, ip: InteractiveShell,
                                                        data_file: Path) -> None:
    made = trainers(ip, threading.Event())
    budget(tokens=40)
    with pytest.raises(QfnbCellError, match=r"this fine-tune \(forecast: 48 training tokens on Tiny-Chat\)"):
        ip.run_line_magic("qftrain", LINE.format(path=data_file))
    assert made == []  # nothing launched
    shown = html(ip)  # the forecast refused, shown without --forecast, with the line saying so
    assert "training tokens" in shown and "~48" in shown and "refuses this run" in shown
    budget()


def test_without_records_or_a_price_it_says_so(served: ServedPlatform, data_file: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fc = forecast_training(data_file, base="Tiny-Chat", max_steps=3, batch_size=4)
    assert fc.seconds is None and fc.speed_source == "no recorded runs of Tiny-Chat on this machine"
    assert fc.steps == 3 and fc.tokens == 12 * 3  # 3 batches of 4 rows
    assert "no recorded runs" in repr(fc)
    served.set_env(monkeypatch)  # the same platform as a cloud (credentials configured)
    cloud = forecast_training(data_file, base="ERNIE-Speed-8K", epochs=1)
    assert cloud.yuan is None and "has no fine-tune price for ERNIE-Speed-8K" in cloud.price_source
    with pytest.raises(ValueError, match="--forecast counts the rows of a training file"):
        forecast_training("ds-123", base="Tiny-Chat")


def test_a_dry_run_shows_the_forecast_and_starts_nothing(served: ServedPlatform, ip: InteractiveShell,
                                                        data_file: Path) -> None:
    made = trainers(ip, threading.Event())
    assert ip.run_line_magic("qftrain", LINE.format(path=data_file) + " --dry-run") is None
    shown = html(ip)
    assert "qfnb-forecast" in shown and "training tokens" in shown and "~48" in shown
    assert "refuses this run" not in shown
    budget(tokens=40)  # a dry run says the budget refuses it, and raises nothing
    ip.display_pub.outputs.clear()  # type: ignore[attr-defined]
    assert ip.run_line_magic("qftrain", LINE.format(path=data_file) + " --dry-run") is None
    assert "refuses this run" in html(ip) and "~48" in html(ip)
    assert made == [] and "dash" not in ip.user_ns  # no fine-tune launched, no dashboard
    budget()


def test_a_dpo_forecast_counts_both_answers_of_each_pair_and_its_budget_refuses_before_launch(
        served: ServedPlatform, ip: InteractiveShell, tmp_path: Path) -> None:
    from qfnb.trainer.spend.forecast import MODE_COST

    pairs = tmp_path / "prefs.jsonl"
    pairs.write_text("".join(json.dumps([{"prompt": f"question {i}", "chosen": "one two three",
                                          "rejected": "four five"}]) + "\n" for i in range(ROWS)), encoding="utf-8")
    history()
    fc = forecast_training(pairs, base="Tiny-Chat", epochs=2, batch_size=4, eval_split=20, train_mode="DPO")
    # 8 pairs trained x 2 epochs, each 3 + 2 answer tokens (the double counts the answer turn)
    assert (fc.steps, fc.tokens, fc.mode) == (4, 80, "DPO") and "chosen and with the rejected" in fc.token_source
    assert fc.seconds == pytest.approx((2.0 + 80 / 100) * MODE_COST["DPO"], rel=1e-3)
    assert fc.title.startswith("Forecast: DPO fine-tune of Tiny-Chat")
    sft = tmp_path / "sft.jsonl"
    sft.write_text(json.dumps({"prompt": "q", "response": "a"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"sft.jsonl line 1: looks like SFT \(prompt/response\) data; KTO wants"):
        forecast_training(sft, base="Tiny-Chat", train_mode="KTO")
    made = trainers(ip, threading.Event())
    budget(tokens=60)
    with pytest.raises(QfnbCellError, match=r"forecast: 80 training tokens on Tiny-Chat"):
        ip.run_line_magic("qftrain", f"--mode DPO {LINE.format(path=pairs)}")
    assert made == []


def test_a_forecast_that_names_no_epochs_counts_the_bases_own_default(served: ServedPlatform, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing set: the run trains the epochs and batch the platform fills in for the mode on that base (Gemma-3-270M's
    DPO: 2 epochs), and the forecast counts those, not the global defaults."""
    import dataclasses

    from qfnb.protocol.console.train_modes import MODE_TABLE

    pairs = tmp_path / "prefs.jsonl"
    pairs.write_text("".join(json.dumps([{"prompt": f"question {i}", "chosen": "one two three",
                                          "rejected": "four five"}]) + "\n" for i in range(ROWS)), encoding="utf-8")
    history()
    once = forecast_training(pairs, base="Tiny-Chat", eval_split=20, train_mode="DPO")
    assert once.steps == 2  # 8 pairs trained, batches of 4, 1 epoch (the mode's row)
    monkeypatch.setitem(MODE_TABLE, "DPO", dataclasses.replace(
        MODE_TABLE["DPO"], per_base={"tiny-chat": {"epoch": 2, "batchSize": 2}}))
    own = forecast_training(pairs, base="Tiny-Chat", eval_split=20, train_mode="DPO")
    assert (own.steps, own.tokens) == (8, 2 * once.tokens)  # 2 epochs of 4 batches of 2
    assert forecast_training(pairs, base="Tiny-Chat", eval_split=20, train_mode="DPO", epochs=1,
                             batch_size=4).steps == 2  # what the user names wins


def test_a_rft_forecast_counts_the_sampled_answers_and_a_budget_refuses_on_them(served: ServedPlatform,
                                                                                  tmp_path: Path) -> None:
    from qfnb.usage import BudgetExceeded

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"question {i}", "keyword": "yes"}) + "\n" for i in range(ROWS)),
                       encoding="utf-8")
    fc = forecast_training(prompts, base="Tiny-Chat", max_steps=3, batch_size=4, train_mode="RFT", group_size=2,
                           max_new_tokens=5)
    # 12 prompts trained on (3 batches of 4 of the 8 not held out), 2 answers each of at most 5 new tokens,
    # each answer trained with its prompt's 2 tokens
    assert fc.steps == 3 and fc.sampled == 12 * 2 * 5 and fc.tokens == 12 * 2 * (2 + 5)
    assert ("sampled tokens", "≤120", "RFT's answers, included above") in fc.table()
    budget(tokens=150)  # the prompts alone (24) fit; with the answers they sample, the run does not
    with pytest.raises(BudgetExceeded, match="168 training tokens on Tiny-Chat"):
        fc.check_budget()
    budget()


def test_a_post_pretrain_forecast_of_a_small_corpus_counts_the_passes_min_steps_adds(
        served: ServedPlatform, tmp_path: Path) -> None:
    """A preference file handed to PostPretrain: its preferred conversations pack into one block, one step an
    epoch; the platform's default ``minSteps`` (20) passes over it again, and the forecast says so."""
    pairs = tmp_path / "prefs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"question {i}", "chosen": "one two three", "rejected": "four"})
                             + "\n" for i in range(ROWS)), encoding="utf-8")
    fc = forecast_training(pairs, base="Tiny-Chat", batch_size=4, eval_split=0, train_mode="PostPretrain")
    once = forecast_training(pairs, base="Tiny-Chat", batch_size=4, eval_split=0, train_mode="PostPretrain",
                             min_steps=0)
    assert (once.steps, fc.steps, fc.mode) == (1, 20, "PostPretrain") and fc.tokens == 20 * once.tokens
