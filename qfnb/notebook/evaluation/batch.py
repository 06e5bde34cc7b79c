"""``%qfeval ... --batch``: the generations through the platform's durable batch job, then the usual run.

Each model's missing answers go as one batch-inference task (:mod:`qfnb.evaluation.runs.batch_answers`),
watched with ``%qfbatch``'s live line. An Interrupt stops the watching, not the tasks; the same line
run again (in this kernel or after a restart) re-attaches to them and sends nothing twice. When the
rows are back their answers are in the answer store, and the evaluation scores them from there,
exactly as a normal run's (its report names the tasks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qfnb.evaluation.runs.batch_answers import BatchPart, batch_parts, harvest
from qfnb.notebook.errors import QfnbCellError, QfnbInterrupted
from qfnb.notebook.evaluation.run import EvalPlan

log = logging.getLogger("qfnb.notebook.evaluation.batch")


@dataclass(frozen=True)
class BatchRecord:
    """What the batch phase did: per model, its task (None: every answer was stored), rows sent, rows reused."""

    tasks: dict[str, str | None]
    sent: int
    stored: int
    #: tasks found again instead of submitted: ``{task id: "running" | "done"}``
    found: dict[str, str]

    @property
    def note(self) -> str:
        """The report's line: which tasks answered, and what was found again or reused."""
        named = [f"{task} ({tag})" for tag, task in self.tasks.items() if task]
        head = (f"answers by batch task{'s' * (len(named) != 1)} {', '.join(named)}: {self.sent:,} rows"
                if named else "no batch task needed")
        again = [f"{task} ({'still running' if how == 'running' else 'finished'})" for task, how in self.found.items()]
        tail = f" · found again, not resubmitted: {', '.join(again)}" if again else ""
        kept = f" · {self.stored:,} answers reused from earlier runs" if self.stored else ""
        return f"⧉ {head}{tail}{kept}"


def _task_name(part: BatchPart) -> str | None:
    return part.job.task_id if part.job is not None else None


def generate(plan: EvalPlan, *, watch: Callable[..., Any]) -> BatchRecord:
    """Send ``plan``'s missing answers as batch tasks (or find their tasks again), wait for them with
    ``watch(job)`` (``%qfbatch``'s live line) and store their answers; raise
    :class:`QfnbCellError` when rows failed (the next run sends only those)."""
    store = plan.store
    assert store is not None  # --batch runs models (checked by plan())
    inputs = list(plan.frame["input"])
    params = plan.sampling.fields()
    parts = batch_parts(plan.llms, inputs, repeats=plan.repeats, infer_kwargs=params, store=store)
    reuse = not store.refresh
    found: dict[str, str] = {}
    for part in parts:
        if part.keys:
            job = part.submit(params, reuse=reuse, target=plan.target)
            if job.attached is not None:
                found[job.task_id] = "running"
            elif job.reused is not None:
                found[job.task_id] = "done"
    failed: list[str] = []
    waiting = [p for p in parts if p.job is not None]
    for part in waiting:
        assert part.job is not None
        try:
            state = watch(part.job)
        except QfnbInterrupted:
            going = ", ".join(str(_task_name(p)) for p in waiting)
            raise QfnbInterrupted(f"stopped watching; batch task(s) {going} go on on the platform: run this "
                                  "%qfeval line again to re-attach and score them (nothing is sent twice)",
                                  title="evaluation still generating") from None
        got, errors = harvest(part, store)
        log.info("qfeval --batch: %s: %d of %d answers from %s (%s)", part.tag, got, len(part.keys),
                 part.job.task_id, state.status)
        if errors:
            failed.append(f"{part.tag}: {len(errors)} of {len(part.keys)} rows of {part.job.task_id} "
                          f"({state.status}) have no answer (first: {errors[0]})")
    if failed:
        raise QfnbCellError("; ".join(failed) + ". The answered rows are kept: run the line again to send only "
                            "the others in a new batch task.", title="batch rows missing")
    store.refresh = False  # the answers just stored are this run's (--fresh asked for them anew)
    return BatchRecord({p.tag: _task_name(p) for p in parts}, sent=sum(len(p.keys) for p in parts),
                       stored=sum(p.stored for p in parts), found=found)


def phase(plan: EvalPlan, *, watch: Callable[..., Any]) -> BatchRecord | None:
    """``--batch``'s phase before the run scores (None without ``--batch``); a task that could not be
    started (over budget, refused by the platform) is one clear line, with nothing run."""
    if not plan.batch:
        return None
    try:
        return generate(plan, watch=watch)
    except (QfnbCellError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise QfnbCellError(f"{type(exc).__name__}: {exc}", title="qfeval batch not started") from exc
