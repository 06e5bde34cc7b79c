"""``%qfeval ... --batch``: the generations go through the platform's durable batch job, against the
local platform's app with paced engine doubles (``tiny-chat`` answers ``"tiny-chat: <prompt>"``).
A kernel restart or an Interrupt loses nothing and sends nothing twice; failed rows are sent again
alone; options a batch job cannot run are refused before anything is sent."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from nb_doubles import RecordingPublisher

from qfnb._core.record.cache import set_process_mode
from qfnb.notebook.errors import QfnbCellError, QfnbInterrupted
from qfnb.notebook.models.discovery import ModelList
from qfnb.resources.batch_job import BatchJob
from tests.fakes.local_platform import ServedPlatform

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "batch"))
from batch_doubles import paced_platform  # the batch tests' platform with paced engines

ROWS = [
    {"prompt": "hello", "response": [["tiny-chat: hello"]]},
    {"prompt": "two words", "response": [["something else"]]},
    {"prompt": "third", "response": [["tiny-chat: third"]]},
    {"prompt": "fourth one", "response": [["tiny-chat: fourth one"]]},
]
LINE = "--models Tiny-Chat,endpoint:other-chat --dataset {path} --metrics exact_match,rouge_l --batch -o res"


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    with paced_platform(tmp_path / "data", monkeypatch, delay="0.01") as platform:
        platform.set_env(monkeypatch, QIANFAN_LLM_API_RETRY_COUNT="1")
        yield platform


@pytest.fixture()
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


def kernel() -> InteractiveShell:
    """A fresh kernel (a restart): a new shell with qfnb loaded, nothing in its namespace."""
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    shell.display_pub = RecordingPublisher(shell=shell)
    shell.extension_manager.load_extension("qfnb")
    shell.magics_manager.registry["QfnbMagics"].list_models = lambda: ModelList([], "test")
    return shell


@pytest.fixture()
def shell() -> Iterator[InteractiveShell]:
    yield kernel()
    InteractiveShell.clear_instance()
    set_process_mode("off")  # loading the extension turned this process's response cache on


def started(served: ServedPlatform) -> int:
    """Requests the paced engines started (batch rows and live calls alike)."""
    return sum(len(e.started) for e in served.registry.paced.values())  # type: ignore[attr-defined]


def test_batch_run_scores_as_a_live_run_and_names_its_tasks(served: ServedPlatform, shell: InteractiveShell,
                                                           data_file: Path, monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    report = shell.run_line_magic("qfeval", LINE.format(path=data_file))
    batched = shell.user_ns["res"]
    tasks = BatchJob.list()
    assert len(tasks) == 2 and all(t.status == "Done" and t.total == 4 for t in tasks)
    assert started(served) == 8  # 4 rows x 2 models, all as batch rows
    assert batched.metrics["Tiny-Chat"]["exact_match"] == pytest.approx(3 / 4)
    assert batched.samples_df["Tiny-Chat/output"].tolist() == [f"tiny-chat: {r['prompt']}" for r in ROWS]
    for task in tasks:
        assert task.task_id in (report.reused or "")
    assert "answers by batch tasks" in repr(report) and "8 rows" in repr(report)
    # the same evaluation live (an empty answer store) gives the same report
    monkeypatch.setenv("QFNB_EVAL_STORE", str(tmp_path / "live.sqlite"))
    shell.run_line_magic("qfeval", LINE.replace(" --batch", "").format(path=data_file))
    live = shell.user_ns["res"]
    assert live.metrics_df.equals(batched.metrics_df)
    assert started(served) == 16 and len(BatchJob.list()) == 2


def test_a_restart_mid_run_re_attaches_and_sends_nothing_twice(served: ServedPlatform, shell: InteractiveShell,
                                                              data_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupt while the tasks run: they go on; a restarted kernel's same line finds them (still
    running or finished) instead of submitting the rows again, and scores when they are back."""
    from qfnb.notebook.data import batch as batchwatch

    monkeypatch.setenv("QFNB_TEST_DELAY", "0.05")  # slow enough to be running when the kernel comes back
    served.registry.paced.clear()  # type: ignore[attr-defined]

    def interrupted(job: Any, **kwargs: Any) -> Any:
        def stop(_: float) -> None:
            raise KeyboardInterrupt

        return real(job, **{**kwargs, "sleep": stop})

    real = batchwatch.watch
    monkeypatch.setattr(batchwatch, "watch", interrupted)
    with pytest.raises(QfnbInterrupted, match="go on on the platform: run this %qfeval line again"):
        shell.run_line_magic("qfeval", LINE.format(path=data_file))
    assert "res" not in shell.user_ns
    first = {t.task_id for t in BatchJob.list()}
    assert len(first) == 2
    monkeypatch.setattr(batchwatch, "watch", real)  # the real watch, the same platform and store
    other = kernel()
    report = other.run_line_magic("qfeval", LINE.format(path=data_file))
    assert {t.task_id for t in BatchJob.list()} == first  # nothing submitted again
    assert started(served) == 8  # every row ran once
    assert "found again, not resubmitted" in (report.reused or "")
    assert other.user_ns["res"].metrics["Tiny-Chat"]["exact_match"] == pytest.approx(3 / 4)
    # Run All again: every answer is stored, no task is needed
    again = kernel().run_line_magic("qfeval", LINE.format(path=data_file))
    assert started(served) == 8 and len(BatchJob.list()) == 2
    assert "no batch task needed" in (again.reused or "") and "8 answers reused" in (again.reused or "")


def test_failed_rows_are_kept_out_and_sent_again_alone(served: ServedPlatform, shell: InteractiveShell,
                                                      data_file: Path) -> None:
    chat = served.registry.chat("tiny-chat")  # type: ignore[attr-defined]
    chat.failures["third"] = [ValueError("the engine refused this row")]  # the first task's row fails
    with pytest.raises(QfnbCellError, match=r"Tiny-Chat: 1 of 4 rows of .* have no answer.*send only the others"):
        shell.run_line_magic("qfeval", LINE.format(path=data_file))
    chat.failures.clear()
    before, tasks = started(served), len(BatchJob.list())
    report = shell.run_line_magic("qfeval", LINE.format(path=data_file))
    assert len(BatchJob.list()) == tasks + 1  # one new task, of the one missing row
    assert started(served) == before + 1
    assert "1 rows" in (report.reused or "") and "7 answers reused" in (report.reused or "")
    assert shell.user_ns["res"].samples_df["Tiny-Chat/output"].tolist()[2] == "tiny-chat: third"


@pytest.mark.parametrize(("extra", "message"), [
    ("--models fn --batch", "--batch: fn is a notebook function: a batch job runs platform chat models"),
    ("--models Tiny-Chat,endpoint:other-chat --compare Tiny-Chat --sequential --batch",
     "--batch sends every item at once and --sequential stops early"),
])
def test_what_a_batch_cannot_run_is_refused_before_anything_is_sent(served: ServedPlatform,
                                                                    shell: InteractiveShell, data_file: Path,
                                                                    extra: str, message: str) -> None:
    shell.user_ns["fn"] = lambda prompt: "an answer"
    with pytest.raises(UsageError, match=message):
        shell.run_line_magic("qfeval", f"--dataset {data_file} --metrics exact_match {extra}")
    assert BatchJob.list() == [] and started(served) == 0


def test_each_prompt_variants_forecast_is_compared_with_its_own_task(served: ServedPlatform, shell: InteractiveShell,
                                                                      data_file: Path, own_record_dir: None) -> None:
    report = shell.run_line_magic("qfeval", f"--prompts 'a=A: {{input}},b=B: {{input}} please' --model Tiny-Chat "
                                            f"--dataset {data_file} --metrics exact_match --batch --forecast")
    a, b = report.forecast
    tasks = {t.name: t.task_id for t in BatchJob.list()}
    assert a.forecast.jobs == (f"batch-job {tasks['qfeval-a']}",)
    assert b.forecast.jobs == (f"batch-job {tasks['qfeval-b']}",)
    assert a.calls == b.calls == 1  # each variant's own task (one row in the ledger), not both
    assert b.prompt_tokens > a.prompt_tokens  # b's prompts are longer: its own task's tokens, not a's
