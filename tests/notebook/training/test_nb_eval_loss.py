"""Train and evaluation loss in the dashboard: a validation split from ``%qftrain --eval-split`` / the
launcher reaches the platform, whose held-out loss (``evalLossCurve``) the dashboard draws beside the
training loss, with a legend."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from qfnb.notebook.render import charts
from qfnb.notebook.training.launcher import DEFAULT_EVAL_SPLIT, FinetuneLauncher
from qfnb.notebook.training.run import TrainSpec
from qfnb.notebook.training.state import TrainingState
from qfnb.trainer.consts import ActionState
from qfnb.trainer.event import Event
from tests.fakes.local_platform import ServedPlatform


def _orange_pixels(png: bytes) -> int:
    """Pixels of the evaluation curve's colour (charts.SERIES[1]) in a chart."""
    from matplotlib import image

    rgba = image.imread(io.BytesIO(png), format="png")
    r, g, b = (int(charts.SERIES[1][i:i + 2], 16) / 255 for i in (1, 3, 5))
    near = (abs(rgba[..., 0] - r) < 0.08) & (abs(rgba[..., 1] - g) < 0.08) & (abs(rgba[..., 2] - b) < 0.08)
    return int((near & (rgba[..., 3] > 0.5)).sum())


def test_state_keeps_both_curves_and_the_chart_draws_the_second_only_when_there_is_one() -> None:
    st = TrainingState()
    detail = {"currentStep": 4, "totalSteps": 8, "lossCurve": [[1, 2.0], [2, 1.6], [3, 1.3], [4, 1.1]],
              "evalLossCurve": [[2, 1.9], [4, 1.5]]}
    assert st.apply(Event("train", ActionState.Running, "", detail, action_class="TrainAction"))
    assert st.eval_loss == [(2, 1.9), (4, 1.5)] and st.loss[-1] == (4, 1.1)
    assert "loss 1.1000 · eval loss 1.5000" in st.progress_text()
    assert not st.apply(Event("train", ActionState.Running, "", detail,
                              action_class="TrainAction"))  # the same curves again: nothing to redraw
    both = charts.loss_chart(st.loss, eval_points=st.eval_loss)
    train_only = charts.loss_chart(st.loss)
    assert _orange_pixels(both) > 50  # the dashed eval curve (and its legend line)
    assert _orange_pixels(train_only) == 0


def test_eval_split_option_and_launcher_field_reach_the_train_config() -> None:
    spec = TrainSpec(dataset="d.jsonl", eval_split=10)
    assert spec.train_config()["trainset_rate"] == 10
    assert "trainset_rate" not in TrainSpec(dataset="d.jsonl").train_config()  # the platform's default
    with pytest.raises(ValueError, match="--eval-split must be a percentage"):
        TrainSpec(dataset="d.jsonl", eval_split=95)
    launcher = FinetuneLauncher(base_models=("Tiny-Chat",))
    assert launcher.eval_split.value == DEFAULT_EVAL_SPLIT == 20
    assert launcher.checkpoints.value == 5 and launcher.spec().checkpoints == 5  # a split: 5 checkpoints
    launcher.eval_split.value = 0
    assert launcher.spec().eval_split == 0 and "--eval-split 0 --checkpoints 0" in launcher.command()
    assert launcher.spec().checkpoints == 0  # none to score them on
    launcher.eval_split.value = 10
    assert launcher.checkpoints.value == 5


def test_launcher_says_which_of_epochs_and_max_steps_decides() -> None:
    launcher = FinetuneLauncher(base_models=("Tiny-Chat",))
    launcher.epochs.value, launcher.steps.value = 1, 40
    assert "max steps wins: the run stops after 40 steps" in launcher.length.value
    assert "epochs 1 is not used" in launcher.length.value
    launcher.steps.value = 0
    assert "epochs decide: 1 pass(es)" in launcher.length.value
    launcher.epochs.value = 3
    assert "epochs decide: 3 pass(es)" in launcher.length.value and launcher.spec().steps is None


def test_magic_refuses_a_bad_split(ip) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="--eval-split"):
        ip.run_line_magic("qftrain", "--dataset d.jsonl --eval-split 120")


@pytest.fixture
def platform(local_platform: ServedPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServedPlatform:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    local_platform.as_default_backend(monkeypatch)
    return local_platform


def test_qftrain_eval_split_shows_both_losses(ip, platform: ServedPlatform, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "response": f"a{i}"}) + "\n" for i in range(8)))
    ip.run_line_magic("qftrain", f"--base Tiny-Chat --dataset {data} --eval-split 25 --batch-size 2 -o dash")
    state = ip.user_ns["dash"].wait(timeout=60)
    assert state.status == "succeeded", (state.error, list(state.log))
    assert state.total_steps == 3 and len(state.loss) == 3  # 6 of 8 rows train, in batches of 2
    assert state.eval_loss and state.eval_loss[-1][0] == 3
    assert "eval loss" in ip.user_ns["dash"].snapshot_html()

    ip.run_line_magic("qftrain", f"--base Tiny-Chat --dataset {data} --eval-split 0 --batch-size 2 -o plain")
    plain = ip.user_ns["plain"].wait(timeout=60)
    assert plain.status == "succeeded" and plain.total_steps == 4 and plain.eval_loss == []


def test_qftrain_eval_metric_takes_a_notebook_function(ip, platform: ServedPlatform, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "response": f"a{i}"}) + "\n" for i in range(12)))
    ip.user_ns["step_five"] = lambda input, reference, output: float("@step-5:" in output)
    ip.run_line_magic("qftrain", f"--base Tiny-Chat --dataset {data} --eval-split 25 --batch-size 1 "
                                 "--eval-metric step_five -o dash")
    state = ip.user_ns["dash"].wait(timeout=60)
    assert state.status == "succeeded", (state.error, list(state.log))
    out = ip.user_ns["dash"].trainer.output
    assert [c["step"] for c in out["checkpoints"]] == [2, 4, 5, 7, 9]
    assert out["best_checkpoint"] == 5 and {c["metricName"] for c in out["checkpoints"]} == {"step_five"}
    assert state.best is not None and state.best["step"] == 5  # the dashboard names the same checkpoint
    assert "best checkpoint: step 5, of 5 saved (step_five 1.000)" in ip.user_ns["dash"].snapshot_html()
    with pytest.raises(UsageError, match="--eval-metric must be one of rouge_l, exact_match or the name"):
        ip.run_line_magic("qftrain", f"--base Tiny-Chat --dataset {data} --eval-metric no_such_fn")
    with pytest.raises(UsageError, match="--eval-metric needs held-out rows"):
        ip.run_line_magic("qftrain", f"--base Tiny-Chat --dataset {data} --eval-split 0 --eval-metric rouge_l")
