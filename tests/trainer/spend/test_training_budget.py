"""Issue 92 §3 through ``TrainAction`` (the console's fine-tunes, ``LLMFinetune``, ``%qftrain``): a
fine-tune's forecast is held against the budget before its run is created (one it cannot fit is
refused, nothing sent), and the run, however it ends (done, failed, stopped), settles the budget to
the tokens it trained on and is in the ledger once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from qfnb._core.config import Config
from qfnb._core.errors import ValidationError
from qfnb._core.record import ledger as ledger_mod
from qfnb.dataset import Dataset
from qfnb.trainer import Event, EventHandler, LLMFinetune, TrainConfig, TrainerStopped, TrainFailedError
from qfnb.trainer.actions import TrainAction
from qfnb.usage import Budget, BudgetExceeded, budget
from tests.fakes.console_cloud import ConsoleCloud

pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py: own ledger, no budget

ROWS = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(4)]
#: the fake run trains this many tokens a poll; it runs ConsoleCloud.train_polls (3) polls
PER_POLL = 500
#: a run's statuses once it has ended
ENDED = ("Done", "Failed", "Stopped")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))


def _trainer(cfg: Config, **kw: object) -> LLMFinetune:
    return LLMFinetune(train_type="Fake-Base", dataset=Dataset.create_from_pyobj(ROWS),
                       train_config=TrainConfig(epoch=1, learning_rate=3e-4), config=cfg, model_not_publish=True,
                       replay=False, **kw)  # type: ignore[arg-type]


def _fine_tunes() -> list[ledger_mod.UsageRow]:
    return [r for r in ledger_mod.default_ledger().rows() if r.api == "fine-tune"]


def _settled(held: Budget, tokens: int) -> None:
    assert (held.spent_tokens, held.reserved_tokens) == (tokens, 0)
    rows = _fine_tunes()
    assert [(r.trained_tokens, r.cache_hit) for r in rows] == [(tokens, False)]


def test_a_fine_tune_its_budget_cannot_fit_is_refused_before_anything_is_sent(cloud: ConsoleCloud,
                                                                              cfg: Config) -> None:
    held = budget(tokens=5_000)
    with pytest.raises(BudgetExceeded) as refused:
        _trainer(cfg, forecast_tokens=20_000).run()
    said = str(refused.value)
    assert "fine-tune refused" in said and "5,000" in said and "20,000 trained tokens on Fake-Base" in said
    assert cloud.calls("CreateFineTuningTask") == []
    assert (held.spent_tokens, held.reserved_tokens) == (0, 0) and _fine_tunes() == []


def test_without_a_forecast_the_training_step_holds_max_steps_worst_case() -> None:
    """Rows on the platform (nothing to forecast here): max_steps bounds the run, steps x batch x sequence
    length; without it the run holds nothing and settles on its tokens."""
    bounded = TrainAction("Fake-Base", TrainConfig(max_steps=10, batch_size=2, max_seq_len=512))
    assert bounded._forecast() == 10 * 2 * 512
    assert TrainAction("Fake-Base", TrainConfig(epoch=3))._forecast() == 0
    assert TrainAction("Fake-Base", TrainConfig(max_steps=10), forecast_tokens=7)._forecast() == 7
    with pytest.raises(ValidationError, match="forecast_tokens"):
        TrainAction("Fake-Base", forecast_tokens=-1)


def test_a_run_that_fits_is_held_while_it_trains_and_settled_on_its_tokens(cloud: ConsoleCloud,
                                                                          cfg: Config) -> None:
    cloud.trained_per_poll = PER_POLL
    held = budget(tokens=5_000)
    seen: list[int] = []

    class Watch(EventHandler):
        def dispatch(self, event: Event) -> None:
            if event.action_class == "TrainAction" and event.action_state == "Running" and (
                    (event.data or {}).get("runStatus") not in ENDED):  # the read that shows it ended settles it
                seen.append(held.reserved_tokens)

    _trainer(cfg, forecast_tokens=4_000, event_handler=Watch()).run()
    assert seen and set(seen) == {4_000}  # the forecast held while the run trained
    _settled(held, 3 * PER_POLL)


def test_the_training_steps_create_is_held_once_not_again_by_the_console_door(cloud: ConsoleCloud,
                                                                            cfg: Config) -> None:
    """TrainAction holds its forecast itself; the console's create it sends (whose ``maxSteps`` would be held
    by the ``train`` stage for a direct call) is not held a second time."""
    cloud.trained_per_poll = PER_POLL
    held = budget(tokens=10**6)
    seen: list[int] = []

    class Watch(EventHandler):
        def dispatch(self, event: Event) -> None:
            if event.action_class == "TrainAction" and event.action_state == "Running" and (
                    (event.data or {}).get("runStatus") not in ENDED):
                seen.append(held.reserved_tokens)

    trainer = LLMFinetune(train_type="Fake-Base", dataset=Dataset.create_from_pyobj(ROWS), config=cfg,
                          train_config=TrainConfig(epoch=1, max_steps=10, batch_size=2, max_seq_len=512),
                          model_not_publish=True, replay=False, forecast_tokens=4_000, event_handler=Watch())
    trainer.run()
    assert seen and set(seen) == {4_000}  # not 4,000 + the stage's 10 x 2 x 512
    _settled(held, 3 * PER_POLL)


def test_a_failed_run_is_settled_on_what_it_trained(cloud: ConsoleCloud, cfg: Config) -> None:
    cloud.trained_per_poll = PER_POLL
    cloud.fail_training = "CUDA out of memory"
    held = budget(tokens=5_000)
    with pytest.raises(TrainFailedError):
        _trainer(cfg, forecast_tokens=4_000).run()
    _settled(held, 3 * PER_POLL)


def test_a_stopped_run_is_settled_on_what_it_trained(cloud: ConsoleCloud, cfg: Config) -> None:
    cloud.trained_per_poll = PER_POLL
    cloud.train_polls = 1000
    held = budget(tokens=10**6)
    started = threading.Event()

    class Once(EventHandler):
        def dispatch(self, event: Event) -> None:
            if event.action_state == "Running" and event.action_class == "TrainAction":
                started.set()

    trainer = _trainer(cfg, forecast_tokens=4_000, event_handler=Once())
    trainer.start()
    assert started.wait(10)
    trainer.stop()
    with pytest.raises(TrainerStopped):
        trainer.wait(10)
    task = cloud.tasks[str(trainer.train_action.task_id)]
    assert task["runStatus"] == "Stopped"
    _settled(held, task["polls"] * PER_POLL)


def test_a_local_datasets_run_is_forecast_and_refused_before_its_upload(cloud: ConsoleCloud, cfg: Config) -> None:
    """No forecast given: ``LLMFinetune`` forecasts its local rows (here estimated: the fake cloud has no
    tokenizer) before anything is sent, the dataset's upload included."""
    held = budget(tokens=2)
    with pytest.raises(BudgetExceeded) as refused:
        _trainer(cfg).run()
    assert "forecast:" in str(refused.value) and "training tokens on Fake-Base" in str(refused.value)
    assert cloud.calls("dataset/create") == [] and cloud.calls("CreateFineTuningTask") == []
    assert (held.spent_tokens, held.reserved_tokens) == (0, 0)


def test_a_local_datasets_forecast_is_held_while_it_trains(cloud: ConsoleCloud, cfg: Config) -> None:
    cloud.trained_per_poll = PER_POLL
    held = budget(tokens=10**6)
    seen: list[int] = []

    class Watch(EventHandler):
        def dispatch(self, event: Event) -> None:
            if event.action_class == "TrainAction" and event.action_state == "Running" and (
                    (event.data or {}).get("runStatus") not in ENDED):  # the read that shows it ended settles it
                seen.append(held.reserved_tokens)

    trainer = _trainer(cfg, event_handler=Watch())
    trainer.run()
    forecast = trainer.train_action.forecast_tokens
    assert forecast and set(seen) == {forecast}
    _settled(held, 3 * PER_POLL)
