"""The Ray backend of ``BatchJob`` (``target="ray://HOST:DASHBOARD_PORT"``): the job runs on a Ray
cluster, submitted through Ray's Jobs API (``ray.job_submission.JobSubmissionClient``).

* One qfnb job is one fingerprint (its input rows, model and parameters); each time it is called it
  runs as one Ray job, ``submission_id`` ``qfnb-<fingerprint>-<attempt>``, its metadata carrying the
  fingerprint mark, the job's row count and its name.
* The entrypoint is ``python -m qfnb.local.cluster.ray_batch`` on the rows still to answer (uploaded
  as the job's ``working_dir``): this notebook's own interpreter and qfnb when the head is on this
  machine, else ``python`` with a ``runtime_env`` that ships this very qfnb (its package folder as
  ``py_modules``, its requirements pinned: :func:`qfnb.local.cluster.jobs.shipped_qfnb`; ``qfnb`` is
  never installed from an index); ``runtime_env=`` adds the model's own packages or replaces it.
* The journal is the jobs' logs: every finished row is one ``QFNB-ROW`` line, checked before it
  counts (:mod:`.ray_journal`: its submission's own mark, a row it sent, usage within that
  row's worst case; anything else is refused and reported). Calling the same job
  again (from any kernel that reaches the head) reads every earlier attempt's rows and sends only the
  ones no attempt answered, so each row is answered once; while an attempt still runs it is attached
  to instead.
* Results, progress and usage are read back from those logs; each attempt's usage goes to the ledger
  once, under the model that answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shlex
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfnb._core.errors import ValidationError
from qfnb._core.http.recording.batch_hold import settle_task
from qfnb._core.http.response import QfResponse
from qfnb._core.record.traces import batch_spans
from qfnb.local.cluster import jobs
from qfnb.local.cluster.jobs import NODE_KEY, PROMPT_KEY, ROW_PREFIX, SENT_PREFIX, SPENT_PREFIX, log_items
from qfnb.protocol.wires.qianfan.batch import BatchStatus

from ..targets import refused
from .files import v2_value
from .ray_journal import Journal, checked
from .state import JobState, answered, row_spans

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

    from ..targets import JobTarget

logger = logging.getLogger("qfnb.batch.ray")

#: the ledger's ``platform`` of a Ray job's rows: the cluster's own engines, priced ¥0 as local models are
LEDGER_PLATFORM = "ray"
#: the module a job runs
ENTRY_MODULE = "qfnb.local.cluster.ray_batch"
#: Ray's job status -> the runStatus a JobState carries
STATUS = {"PENDING": BatchStatus.QUEUING.value, "RUNNING": BatchStatus.RUNNING.value,
          "SUCCEEDED": BatchStatus.DONE.value, "STOPPED": BatchStatus.STOPPED.value,
          "FAILED": BatchStatus.FAILED.value}
_GOING = ("PENDING", "RUNNING")


def connect(target: JobTarget) -> Any:
    """The Jobs API client on ``target``'s head (:func:`qfnb.local.cluster.jobs.connect`); ValidationError
    naming ``target`` when it cannot take jobs."""
    with refused():
        return jobs.connect(target)


def log_lines(logs: str, prefix: str) -> list[dict[str, Any]]:
    """The JSON objects a job's log holds after ``prefix``, in the order they were printed."""
    return [item for _, item in log_items(logs, (prefix,))]


def log_rows(logs: str) -> list[dict[str, Any]]:
    """The finished rows a job's log holds (``QFNB-ROW`` lines), in the order they were printed."""
    return log_lines(logs, ROW_PREFIX)


def usage_of(rows: Sequence[dict[str, Any]], spent: Sequence[dict[str, Any]] = ()) -> tuple[int, int, str]:
    """Prompt and completion tokens of ``rows``' answers plus what rows in flight had ``spent`` when the
    attempt was stopped (``QFNB-SPENT`` lines), and the model that answered."""
    bodies = [body for body in map(answered, rows) if body is not None]
    usages = [item.get("usage") or {} for item in (*bodies, *spent)]
    prompt = sum(int(u.get("prompt_tokens") or 0) for u in usages)
    completion = sum(int(u.get("completion_tokens") or 0) for u in usages)
    return prompt, completion, next((str(b["model"]) for b in bodies if b.get("model")), "")


def lost_sends(attempts: Sequence[Attempt]) -> dict[str, list[tuple[int, int, int]]]:
    """The sendings ``attempts`` lost, by row: each one's cap, and what a stop's ``QFNB-SPENT`` line
    already counted of it (prompt, completion). A sending is lost when an engine had it and its answer
    went away: sent again by its worker after the engine crashed (a row line's ``qfnb_lost``), or at a
    worker when its attempt ended (``QFNB-SENT`` and no row line; an attempt still going has those in flight)."""
    lost: dict[str, list[tuple[int, int, int]]] = {}
    for attempt in attempts:
        for row in attempt.rows:
            for cap in row.get(jobs.LOST_KEY) or ():
                lost.setdefault(str(row.get("custom_id")), []).append((int(cap), 0, 0))
        if attempt.going:
            continue
        ended = {str(r.get("custom_id")) for r in attempt.rows}
        spent = {str(s.get("custom_id")): s.get("usage") or {} for s in attempt.spent}
        for item in attempt.sent:
            key = str(item.get("custom_id"))
            if key not in ended:
                used = spent.get(key, {})
                lost.setdefault(key, []).append((int(item["cap"]), int(used.get("prompt_tokens") or 0),
                                                 int(used.get("completion_tokens") or 0)))
    return lost


def lost_paid(attempt: Attempt, earlier: Sequence[Attempt]) -> tuple[int, int, int]:
    """What ``attempt`` pays for lost sendings (:func:`lost_sends`): its own, each one request and its
    answer at its cap (an estimate), whether or not a later attempt answers the row; and the prompt
    tokens of its own and ``earlier`` attempts' lost sendings of the rows it answers (each its answer's
    own: the same row, so exact; no engine says a prompt's count before it answers). What a
    ``QFNB-SPENT`` line counted of a sending is not paid again."""
    own = lost_sends([attempt])
    requests = sum(len(sends) for sends in own.values())
    completion = sum(max(0, cap - spent) for sends in own.values() for cap, _, spent in sends)
    known = lost_sends(earlier)
    prompt = 0
    for row in attempt.rows:
        body = answered(row)
        if body is None:
            continue
        key = str(row.get("custom_id"))
        paid = int((body.get("usage") or {}).get("prompt_tokens") or 0)
        prompt += sum(max(0, paid - spent) for _, spent, _ in (*known.get(key, ()), *own.get(key, ())))
    return requests, prompt, completion


@dataclass
class Attempt:
    """One Ray job of a qfnb job: its details as the Jobs API lists them, and its rows once read."""

    submission_id: str
    status: str
    mark: str
    total: int
    name: str
    start: float
    end: float | None
    message: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: journal lines refused (why each), see :mod:`.ray_journal`
    refused: list[str] = field(default_factory=list)
    #: rows in flight when it was stopped: what they had used (``QFNB-SPENT`` lines)
    spent: list[dict[str, Any]] = field(default_factory=list)
    #: rows it sent to a worker (``QFNB-SENT`` lines: ``custom_id``, ``cap``)
    sent: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""

    @classmethod
    def of(cls, details: Any) -> Attempt | None:
        meta = getattr(details, "metadata", None) or {}
        sid = getattr(details, "submission_id", None)
        if not sid or not str(meta.get("qfnb") or ""):
            return None  # not a qfnb job
        status = getattr(details, "status", "")
        status = str(getattr(status, "value", status))
        end = getattr(details, "end_time", None)
        return cls(str(sid), status, str(meta["qfnb"]), int(meta.get("qfnb_total") or 0),
                   str(meta.get("qfnb_name") or ""), (getattr(details, "start_time", None) or 0) / 1000,
                   end / 1000 if end else None,
                   str(getattr(details, "message", "") or ""), model=str(meta.get("qfnb_model") or ""))

    @property
    def going(self) -> bool:
        return self.status in _GOING


class RayJobs:
    """:class:`~qfnb.resources.batch.state.BatchBackend` over a Ray cluster's Jobs API."""

    def __init__(self, config: Config, target: JobTarget, *, client: Any = None,
                 runtime_env: dict[str, Any] | None = None, workers: int | None = None) -> None:
        self.config, self.target = config, target
        self._client = client
        self.runtime_env, self.workers = runtime_env, workers
        #: rows, in-flight spending, sendings and refused lines of attempts that ended (their logs are final)
        self._ended: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[str]]] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.target)
        return self._client

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A blocking Jobs API call, off the event loop, given up after :data:`~qfnb.local.cluster.jobs.API_TIMEOUT`."""
        with refused():
            return await asyncio.to_thread(jobs.call, self.target, fn, *args, **kwargs)

    # ---- attempts and their rows ----------------------------------------------------------------

    async def _attempts(self, mark: str | None = None) -> list[Attempt]:
        """Every qfnb Ray job (of ``mark``), oldest first."""
        found = [a for a in map(Attempt.of, await self._call(self.client.list_jobs))
                 if a is not None and (mark is None or a.mark == mark)]
        return sorted(found, key=lambda a: (a.start, a.submission_id))

    async def _read(self, attempt: Attempt) -> None:
        """``attempt``'s finished rows and in-flight spending, from its log (read once after it ended)."""
        read = self._ended.get(attempt.submission_id)
        if read is None:
            with refused():
                logs = await asyncio.to_thread(jobs.job_logs, self.client, self.target, attempt.submission_id)
            read = checked(attempt.submission_id, log_rows(logs), log_lines(logs, SPENT_PREFIX),
                           log_lines(logs, SENT_PREFIX))
            if not attempt.going:
                self._ended[attempt.submission_id] = read
        attempt.rows, attempt.spent, attempt.sent, attempt.refused = read

    async def _family(self, job_id: str) -> tuple[Attempt, list[Attempt]]:
        """The attempt ``job_id`` and every attempt of its qfnb job up to it, oldest first, rows read."""
        details = await self._call(self.client.get_job_info, job_id)
        this = Attempt.of(details)
        if this is None:
            raise ValidationError("task_id", f"Ray job {job_id} at {self.target} is not a qfnb batch job")
        family = [a for a in await self._attempts(this.mark) if a.start <= this.start and a.submission_id != job_id]
        family.append(this)
        for attempt in family:
            await self._read(attempt)
        return this, family

    def _state(self, this: Attempt, family: list[Attempt]) -> JobState:
        keys = {str(r.get("custom_id")) for a in family for r in a.rows if answered(r) is not None}
        failed = {str(r.get("custom_id")) for r in this.rows if answered(r) is None} - keys
        _, completion, _ = usage_of(this.rows, this.spent)
        seconds = max(0.0, (this.end or time.time()) - this.start) if this.start else 0.0
        view = {"description": this.mark, "submission_id": this.submission_id, "ray_status": this.status,
                "attempts": [a.submission_id for a in family], "target": str(self.target),
                "errorReason": "" if this.status == "SUCCEEDED" else this.message,
                "refused_rows": sum(len(a.refused) for a in family),
                "refused": next((r for a in family for r in a.refused), ""),
                # sendings an engine had and lost (an attempt ended, an engine crashed): each sent again, and paid
                "repeatedRequests": sum(len(sends) for sends in lost_sends(family).values()),
                "createTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(this.start)) if this.start else None}
        return JobState(this.submission_id, this.name or this.submission_id, STATUS.get(this.status, this.status),
                        len(keys), len(failed), this.total, completion, seconds, view)

    # ---- BatchBackend ---------------------------------------------------------------------------

    def model_of(self, model: str | None, endpoint: str | None, model_id: str | None) -> str:
        name = model or endpoint or model_id
        if not name:
            raise ValidationError("model", "a Ray batch names the model its workers' engines serve: model=")
        return str(name)

    def body(self, body: dict[str, Any], params: dict[str, Any], model: str) -> dict[str, Any]:
        row = {"model": model, **params, **body}  # each row carries its model and parameters (OpenAI names)
        if "max_output_tokens" in row:
            row.setdefault("max_tokens", row.pop("max_output_tokens"))
        return row

    async def create(self, lines: Iterator[str], *, name: str, mark: str, model: str, endpoint: str | None,
                     model_id: str | None, params: dict[str, Any]) -> str:
        """Submit the rows no earlier attempt of ``mark`` answered as one Ray job; an attempt still
        running is attached to, and a job every row of which is answered is not run again."""
        earlier = await self._attempts(mark)
        going = [a for a in earlier if a.going]
        if going:
            logger.info("qfnb job %s already runs on %s as %s", mark, self.target, going[-1].submission_id)
            return going[-1].submission_id
        done: set[str] = set()
        for i, attempt in enumerate(earlier):
            await self._read(attempt)
            done |= {str(r.get("custom_id")) for r in attempt.rows if answered(r) is not None}
            self._settle(attempt, earlier[:i])  # an attempt stopped or killed elsewhere: its rows' usage, once
        journal = Journal.new()
        with tempfile.TemporaryDirectory(prefix="qfnb-ray-") as tmp:
            total = pending = 0
            with open(Path(tmp) / "rows.jsonl", "w", encoding="utf-8") as out:
                for line in lines:
                    total += 1
                    row = json.loads(line)
                    if str(row.get("custom_id")) not in done:
                        out.write(line)
                        journal.add(row)
                        pending += 1
            if not pending and earlier:
                return earlier[-1].submission_id
            submission_id = f"qfnb-{mark.rsplit(':', 1)[-1]}-{len(earlier) + 1}"
            journal.save(submission_id)  # before the job can print a row
            await self._submit(**self._job(tmp, journal.mark, model), submission_id=submission_id,
                               metadata={"qfnb": mark, "qfnb_total": str(total), "qfnb_name": name or "",
                                         "qfnb_model": model})
        logger.info("Ray job %s submitted to %s: %d of %d rows (%d answered before)", submission_id, self.target,
                    pending, total, len(done))
        return submission_id

    async def _submit(self, **job: Any) -> None:
        """``submit_job``, waiting for a just-started head's job agent (:func:`qfnb.local.cluster.jobs.submit`)."""
        with refused():
            await asyncio.to_thread(jobs.submit, self.client, self.target, **job)

    def _job(self, working_dir: str, mark: str, model: str) -> dict[str, Any]:
        """The job's entrypoint and ``runtime_env``: the rows as its working dir, its journal mark
        (:func:`qfnb.local.cluster.jobs.job_env`: this qfnb on this machine's head, else shipped)."""
        python, env = jobs.job_env(self.target, working_dir, {jobs.JOURNAL_ENV: mark}, ["local"], self.runtime_env)
        workers = f" --workers {int(self.workers)}" if self.workers else ""
        return {"entrypoint": f"{shlex.quote(python)} -m {ENTRY_MODULE} --input rows.jsonl "
                              f"--model {shlex.quote(model)}{workers}", "runtime_env": env}

    async def state(self, job_id: str) -> JobState:
        return self._state(*await self._family(job_id))

    async def page(self, max_pages: int | None) -> list[JobState]:
        return [await self.state(attempt.submission_id) for attempt in await self._attempts()]

    async def stop(self, job_id: str) -> None:
        await self._call(self.client.stop_job, job_id)

    async def rows(self, state: JobState, which: str) -> AsyncIterator[dict[str, Any]]:
        """Each row once, across every attempt: its answer (the first), else its last error."""
        _, family = await self._family(state.task_id)
        answers: dict[str, dict[str, Any]] = {}
        errors: dict[str, dict[str, Any]] = {}
        for attempt in family:
            for row in attempt.rows:
                key = str(row.get("custom_id"))
                if answered(row) is not None:
                    answers.setdefault(key, row)
                else:
                    errors[key] = row
        chosen = answers if which == "output" else {k: v for k, v in errors.items() if k not in answers}
        for row in chosen.values():
            yield {k: v for k, v in row.items() if k not in (PROMPT_KEY, NODE_KEY, jobs.LOST_KEY, jobs.JOURNAL_KEY)}

    async def prompts(self, state: JobState) -> list[str]:
        """Each input row's last user message, by row index, as the journal carries it ("" for a row
        no attempt has finished)."""
        _, family = await self._family(state.task_id)
        found: dict[int, str] = {}
        for attempt in family:
            for row in attempt.rows:
                with contextlib.suppress(TypeError, ValueError):
                    found.setdefault(int(row.get("custom_id")), str(row.get(PROMPT_KEY) or ""))  # type: ignore[arg-type]
        return [found.get(i, "") for i in range(state.total)]

    def value(self, row: dict[str, Any]) -> QfResponse | Exception:
        return v2_value(row)

    async def record(self, state: JobState, *, reused: bool = False) -> None:
        """Each ended attempt's usage, settled against its hold and in the ledger once (under the model
        that answered; priced as a batch job)."""
        if not state.finished:
            return
        _, family = await self._family(state.task_id)
        for i, attempt in enumerate(family):
            self._settle(attempt, family[:i], reused=reused and attempt.submission_id == state.task_id)

    def _settle(self, attempt: Attempt, earlier: Sequence[Attempt], *, reused: bool = False) -> None:
        """``attempt``'s usage in the ledger, once: its rows' and stopped rows' tokens, and the sendings
        it lost and the prompts of earlier lost sendings of the rows it answered (:func:`lost_paid`)."""
        if attempt.going:
            return
        prompt, completion, model = usage_of(attempt.rows, attempt.spent)
        repeated, repeat_prompt, repeat_completion = lost_paid(attempt, earlier)
        prompt, completion = prompt + repeat_prompt, completion + repeat_completion
        seconds = max(0.0, (attempt.end or attempt.start) - attempt.start)
        spans = row_spans(attempt.rows)
        name = model or attempt.model or None
        fresh = settle_task(self.config, attempt.submission_id, prompt=prompt, completion=completion, seconds=seconds,
                            model=name, reused=reused, platform=LEDGER_PLATFORM,
                            rows=sum(s.status < 400 for s in spans) + repeated)
        if fresh and not reused:
            batch_spans(f"batch-job {attempt.submission_id}", name or "batch", LEDGER_PLATFORM, spans,
                        started=attempt.start, seconds=seconds)
