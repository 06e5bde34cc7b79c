"""``%qfbatch`` in a kernel against the local platform: submit with a live line, find the job
again from another "kernel" (--attach, --list), results as a Dataset with ``llm_output``, and an
Interrupt that stops the bar but not the job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_doubles import paced_platform
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from qfnb._core.record.cache import set_process_mode
from qfnb.local.engines.call_state import calls as engine_calls
from qfnb.notebook.data import batch as batchjob
from qfnb.notebook.errors import QfnbInterrupted
from qfnb.resources.batch_job import BatchJob
from tests.fakes.local_platform import ServedPlatform
from tests.notebook.nb_doubles import RecordingPublisher


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    with paced_platform(tmp_path / "data", monkeypatch, delay="0.01") as platform:
        platform.set_env(monkeypatch)
        yield platform


@pytest.fixture()
def ip() -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    old, shell.display_pub = shell.display_pub, RecordingPublisher(shell=shell)
    shell.extension_manager.load_extension("qfnb")
    yield shell
    shell.display_pub = old
    InteractiveShell.clear_instance()
    set_process_mode("off")  # loading the extension turned this process's response cache on


def _lines(ip: InteractiveShell) -> list[str]:
    return [str(o["data"].get("text/html", "")) for o in ip.display_pub.outputs]  # type: ignore[attr-defined]


def test_submit_watch_and_results_as_a_dataset(served: ServedPlatform, ip: InteractiveShell) -> None:
    ip.user_ns["prompts"] = [f"p{i}" for i in range(6)]
    ds = ip.run_line_magic("qfbatch", "prompts -m tiny-chat -o job")
    frame = ds.to_pandas()
    assert frame["llm_output"].tolist() == [f"tiny-chat: p{i}" for i in range(6)]
    assert frame["prompt"].tolist() == [f"p{i}" for i in range(6)]
    job = ip.user_ns["job"]
    assert isinstance(job, BatchJob)
    shown = _lines(ip)
    assert any("Done 6/6 rows · 0 failed" in line and "tok/s" in line for line in shown)
    values = job.results()  # what batch_do returns: QfResponse per input
    assert [v["result"] for v in values] == [f"tiny-chat: p{i}" for i in range(6)]
    # another kernel finds it again
    InteractiveShell.clear_instance()
    other = InteractiveShell.instance()
    other.extension_manager.load_extension("qfnb")
    listed = other.run_line_magic("qfbatch", "--list")
    assert job.task_id in listed["task"].tolist() and listed.iloc[0]["status"] == "Done"
    again = other.run_line_magic("qfbatch", f"--attach {job.task_id}")
    assert again.to_pandas()["llm_output"].tolist() == frame["llm_output"].tolist()


class _Bar:
    def __init__(self) -> None:
        self.shown: list[tuple[str, str]] = []

    def show(self, state: Any, note: str = "") -> None:
        self.shown.append((batchjob.progress_text(state), note))


def test_without_a_model_the_batch_runs_the_notebooks_default_model(served: ServedPlatform,
                                                                    ip: InteractiveShell) -> None:
    """``%config QfnbMagics.default_model`` is %qfbatch's model when ``-m`` is not given (read from the
    settings ``%load_ext qfnb`` handed it); a BatchMagics without them leaves the platform to choose."""
    ip.run_line_magic("config", "QfnbMagics.default_model = 'other-chat'")
    ip.user_ns["prompts"] = ["p0", "p1"]
    ds = ip.run_line_magic("qfbatch", "prompts")
    assert ds.to_pandas()["llm_output"].tolist() == ["other-chat: p0", "other-chat: p1"]
    assert batchjob.BatchMagics(shell=None).default_model == ""


def test_interrupt_stops_the_bar_not_the_job(served: ServedPlatform) -> None:
    job = BatchJob.submit([f"q{i} " + "w " * 10 for i in range(60)], model="tiny-chat")
    bar = _Bar()

    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(QfnbInterrupted, match="the job goes on"):
        batchjob.watch(job, bar=bar, sleep=interrupt)
    assert "goes on" in bar.shown[-1][1] and job.task_id in bar.shown[-1][1]
    state = job.wait(interval=0.05)  # the job went on without the bar
    assert state.status == "Done" and state.done == 60


def test_durable_batch_do_returns_a_job(served: ServedPlatform) -> None:
    from qfnb.resources import ChatCompletion

    job = ChatCompletion(model="tiny-chat").batch_do([[{"role": "user", "content": f"m{i}"}] for i in range(4)],
                                                     durable=True)
    assert isinstance(job, BatchJob)
    assert job.wait(interval=0.05).status == "Done"
    assert [r["result"] for r in job.results()] == [f"tiny-chat: m{i}" for i in range(4)]


def test_run_all_reuses_a_finished_task_of_the_same_rows_model_and_parameters(served: ServedPlatform,
                                                                              ip: InteractiveShell) -> None:
    """Restart & Run All: the same %qfbatch line reuses the Done task (no new task, no engine call),
    says so under the bar, and --fresh runs a new one; other rows or another model never match."""
    ip.user_ns["prompts"] = [f"r{i}" for i in range(4)]
    first = ip.run_line_magic("qfbatch", "prompts -m tiny-chat -o job")
    made = ip.user_ns["job"]
    assert made.reused is None
    tasks = len(BatchJob.list())
    calls = sum(engine_calls.snapshot().values())  # counted at the platform (it runs in this process)
    assert calls >= 4
    InteractiveShell.clear_instance()  # a restarted kernel
    other = InteractiveShell.instance()
    old, other.display_pub = other.display_pub, RecordingPublisher(shell=other)
    other.extension_manager.load_extension("qfnb")
    other.user_ns["prompts"] = [f"r{i}" for i in range(4)]
    again = other.run_line_magic("qfbatch", "prompts -m tiny-chat -o job")
    reused = other.user_ns["job"]
    assert reused.task_id == made.task_id and reused.reused is not None
    assert len(BatchJob.list()) == tasks  # no new task
    assert sum(engine_calls.snapshot().values()) == calls  # no new engine call
    assert again.to_pandas()["llm_output"].tolist() == first.to_pandas()["llm_output"].tolist()
    assert any(f"↺ reused {made.task_id}" in line and "--fresh" in line for line in _lines(other))
    from qfnb import usage

    rows = usage.frame()
    rows = rows[rows["job"] == f"batch-job {made.task_id}"]
    assert sorted(rows["cache_hit"].tolist()) == [False, True]  # ran once; the reuse counts as saved
    # other rows, another order, or --fresh: a new task
    other.user_ns["prompts"] = [f"r{i}" for i in reversed(range(4))]
    other.run_line_magic("qfbatch", "prompts -m tiny-chat -o job")
    assert other.user_ns["job"].reused is None and len(BatchJob.list()) == tasks + 1
    other.user_ns["prompts"] = [f"r{i}" for i in range(4)]
    other.run_line_magic("qfbatch", "prompts -m tiny-chat --fresh -o job")
    assert other.user_ns["job"].reused is None and len(BatchJob.list()) == tasks + 2
    other.display_pub = old


def test_a_task_that_did_not_end_done_is_never_reused(served: ServedPlatform) -> None:
    from qfnb.resources.batch_job import JobState, done_twin

    def state(task: str, status: str, description: str) -> JobState:
        return JobState.of({"taskId": task, "runStatus": status, "description": description})

    fp = "a" * 24
    assert done_twin([state("t1", "Failed", "qfnb-batch:" + fp), state("t2", "Stopped", "qfnb-batch:" + fp),
                      state("t3", "Running", "qfnb-batch:" + fp)], fp) is None
    assert done_twin([state("t1", "Done", "qfnb-batch:" + fp), state("t2", "Done", "qfnb-batch:" + fp),
                      state("t3", "Done", "qfnb-batch:" + "b" * 24)], fp).task_id == "t2"  # type: ignore[union-attr]


def test_a_running_bars_saved_line_says_it_is_a_snapshot_not_live() -> None:
    from qfnb.resources.batch_job import JobState

    running = JobState.of({"taskId": "infer-1", "runStatus": "Running", "succeededCount": 0, "totalCount": 42})
    line = batchjob.progress_html(running)
    assert "Running 0/42 rows" in line and ", not live" in line and "%qfbatch --attach infer-1" in line
    done = JobState.of({"taskId": "infer-1", "runStatus": "Done", "succeededCount": 42, "totalCount": 42})
    assert "not live" not in batchjob.progress_html(done)


def test_a_bar_has_a_track_and_a_finished_one_no_eta() -> None:
    """The finished bar was a fixed-width block with no track and kept "ETA –" after Done."""
    from qfnb.resources.batch_job import JobState

    half = JobState.of({"taskId": "infer-1", "runStatus": "Running", "succeededCount": 21, "totalCount": 42,
                        "outputTokenUsage": 100, "runSeconds": 10})
    assert "ETA" in batchjob.progress_text(half)
    line = batchjob.progress_html(half)
    assert "qfnb-batch-track" in line and "border:1px solid" in line and "width:50.0%" in line
    for status in ("Done", "Failed", "Stopped"):
        ended = JobState.of({"taskId": "infer-1", "runStatus": status, "succeededCount": 42, "totalCount": 42})
        assert "ETA" not in batchjob.progress_text(ended) and "ETA" not in batchjob.progress_html(ended)
    done = batchjob.progress_html(JobState.of({"taskId": "infer-1", "runStatus": "Done", "succeededCount": 42,
                                               "totalCount": 42}))
    assert "qfnb-batch-track" in done and "width:100.0%" in done and "success-color" in done


def test_sampling_options_go_to_every_row(served: ServedPlatform, ip: InteractiveShell) -> None:
    """``%qfbatch`` takes the sampling options of ``%%qfchat``/``%qfeval`` (the spec's), sent as
    the task's inferenceParams; a bad one is refused before anything is uploaded."""
    ip.user_ns["prompts"] = ["p0", "p1"]
    with pytest.raises(UsageError, match=r"^--top-p must be in \[0.0, 1.0\], got 1.5$"):
        ip.run_line_magic("qfbatch", "prompts -m tiny-chat --top-p 1.5")
    assert BatchJob.list() == []
    ds = ip.run_line_magic("qfbatch", "prompts -m tiny-chat -t 0.5 --top-k 3 --max-tokens 8 -o job")
    assert ds.to_pandas()["llm_output"].tolist() == ["tiny-chat: p0", "tiny-chat: p1"]
    view = ip.user_ns["job"].state().view
    assert view["inferenceParams"] == {"temperature": 0.5, "top_k": 3, "max_output_tokens": 8}


def test_json_and_schema_ask_every_row_for_the_shape(served: ServedPlatform, ip: InteractiveShell) -> None:
    """``%qfbatch --json`` / ``--schema NAME`` send ``response_format`` with every row (``batch_do``
    takes it): the durable path answers in the asked shape too. A bad NAME is refused before upload."""
    from pydantic import BaseModel

    class Ticket(BaseModel):
        label: str

    ip.user_ns.update(prompts=["p0"], Ticket=Ticket)
    with pytest.raises(UsageError, match="--schema Nope: no variable 'Nope'"):
        ip.run_line_magic("qfbatch", "prompts -m tiny-chat --schema Nope")
    with pytest.raises(UsageError, match="--json and --schema both given"):
        ip.run_line_magic("qfbatch", "prompts -m tiny-chat --json --schema Ticket")
    assert BatchJob.list() == []
    ip.run_line_magic("qfbatch", "prompts -m tiny-chat --schema Ticket -o job")
    sent = ip.user_ns["job"].state().view["inferenceParams"]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"]["properties"] == {
        "label": {"title": "Label", "type": "string"}}
    ip.run_line_magic("qfbatch", "prompts -m tiny-chat --json -o job2")
    assert ip.user_ns["job2"].state().view["inferenceParams"] == {"response_format": {"type": "json_object"}}


def test_forecast_before_the_batch_and_the_run_beside_it(served: ServedPlatform, ip: InteractiveShell,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    served.as_default_backend(monkeypatch)  # the local platform as qfnb finds its daemon: its tokenizer counts
    ip.user_ns["prompts"] = [f"p{i} is a short prompt" for i in range(6)]
    ds = ip.run_line_magic("qfbatch", "prompts -m tiny-chat --max-tokens 16 --forecast")
    assert len(ds.to_pandas()) == 6
    shown = [o["data"] for o in ip.display_pub.outputs]  # type: ignore[attr-defined]
    kinds = ["forecast" if "qfnb-forecast'" in d.get("text/html", "") else
             "check" if "qfnb-forecast-check" in d.get("text/html", "") else "bar" for d in shown]
    assert kinds[0] == "forecast" and kinds[-1] == "check"  # the forecast before the task, the check after
    forecast, check = shown[0]["text/plain"], shown[-1]["text/plain"]
    assert "6 calls to Tiny-Chat (local)" in forecast and "30" in forecast  # 6 x 5 words, counted by the engine
    assert "input tokens" in check and "→  30" in check  # the batch's own count equals the forecast's


def test_a_budget_refuses_a_batch_on_its_forecast_before_submitting(served: ServedPlatform, ip: InteractiveShell,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    own_record_dir: None) -> None:
    from qfnb._core.record.budget import budget
    from qfnb.notebook.errors import QfnbCellError

    # an empty ledger: the forecast's output bound is then max_tokens itself (recorded short answers of
    # Tiny-Chat from earlier tests would narrow it below the budget, and the submission's worst case refuses)
    served.as_default_backend(monkeypatch)
    ip.user_ns["prompts"] = [f"p{i} is a short prompt" for i in range(6)]
    before = len(BatchJob.list())
    budget(tokens=100)  # 30 input tokens and up to 6 x 16 output: 126 may be used
    with pytest.raises(QfnbCellError, match=r"forecast: this batch \(6 rows\) may use up to 126 tokens") as err:
        ip.run_line_magic("qfbatch", "prompts -m tiny-chat --max-tokens 16")
    assert "100 of 100 left" in str(err.value) and "nothing was sent" in str(err.value)
    assert len(BatchJob.list()) == before


def test_a_dry_run_shows_the_forecast_and_submits_nothing(served: ServedPlatform, ip: InteractiveShell,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          own_record_dir: None) -> None:
    from qfnb._core.record.budget import budget

    served.as_default_backend(monkeypatch)
    ip.user_ns["prompts"] = [f"p{i} is a short prompt" for i in range(6)]
    before, calls = len(BatchJob.list()), sum(engine_calls.snapshot().values())
    assert ip.run_line_magic("qfbatch", "prompts -m tiny-chat --max-tokens 16 --dry-run -o job") is None
    (shown,) = [o["data"]["text/plain"] for o in ip.display_pub.outputs]  # type: ignore[attr-defined]
    assert shown.startswith("Forecast: 6 calls to Tiny-Chat (local)") and "30" in shown  # counted, not run
    budget(tokens=100)  # up to 126 tokens: a dry run says the budget refuses it, and raises nothing
    ip.display_pub.outputs.clear()  # type: ignore[attr-defined]
    assert ip.run_line_magic("qfbatch", "prompts -m tiny-chat --max-tokens 16 --dry-run") is None
    (refused,) = [o["data"]["text/plain"] for o in ip.display_pub.outputs]  # type: ignore[attr-defined]
    assert "refuses this run" in refused and "may use up to 126 tokens" in refused
    assert len(BatchJob.list()) == before and "job" not in ip.user_ns  # no job submitted, none stored
    assert sum(engine_calls.snapshot().values()) == calls  # no engine asked
