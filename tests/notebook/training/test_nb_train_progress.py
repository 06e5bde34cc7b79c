"""``trainer.run()`` shows progress: the training steps as a bar (widget in a kernel, text on a
terminal), fed by the trainer's own polls, against the cloud double."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfnb._core.config import Config
from qfnb.dataset import Dataset
from qfnb.trainer import LLMFinetune, TrainConfig
from tests.fakes.console_cloud import ConsoleCloud
from tests.fakes.console_fixtures import *  # noqa: F403  (cloud, cfg)
from tests.fakes.fixtures import fake_in_process  # noqa: F401
from tests.fakes.progress import RecordingBar

ROWS = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(4)]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))


def trainer(cfg: Config, name: str = "") -> LLMFinetune:
    return LLMFinetune(train_type="Fake-Base", dataset=Dataset.create_from_pyobj(ROWS), name=name,
                       train_config=TrainConfig(epoch=1, learning_rate=3e-4), config=cfg)


def test_run_feeds_every_step_to_the_bar(cloud: ConsoleCloud, cfg: Config) -> None:
    bar = RecordingBar()
    trainer(cfg).run(progress=bar)
    total = cloud.train_polls
    starts = [c for c in bar.calls if c[0] == "start"]
    results = [c[1] for c in bar.calls if c[0] == "result"]
    assert starts[0] == ("start", None) and ("start", total) in starts  # drawn at once; the total once known
    assert results == list(range(total)) and bar.calls[-1] == ("close", None)  # each step once, then closed


def test_run_draws_a_text_bar_on_a_terminal(cloud: ConsoleCloud, cfg: Config,
        capsys: pytest.CaptureFixture[str]) -> None:
    trainer(cfg, name="my-first-tune").run(progress=True)
    err = capsys.readouterr().err
    assert f"fine-tune my-first-tune: {cloud.train_polls}/{cloud.train_polls}" in err


def test_no_bar_outside_a_kernel_by_default(cloud: ConsoleCloud, cfg: Config,
        capsys: pytest.CaptureFixture[str]) -> None:
    trainer(cfg).run()
    assert "fine-tune" not in capsys.readouterr().err
