"""``BatchJob``: a durable batch-inference job the platform runs.

The rows are written once to a spooled JSONL file (hashed into the job's fingerprint and, under a
budget, their worst case held before anything is sent), then handed to the config's backend:

* on the cloud with the v2 API (``Config.api_version == 2``): the Files + Batch API
  (:mod:`.batch.files`: a file upload and a batch, billed at the batch price);
* else (v1 keys, and the embedded platform): a console batch-inference task (:mod:`.batch.console`:
  one JSONL object in the platform's BOS, ``/v2/batchinference``);
* with ``target="ray://HOST:DASHBOARD_PORT"`` (or ``QFNB_TARGET``): one Ray job on that cluster
  (:mod:`.batch.ray_jobs`); ``"local"`` / ``"qianfan"`` name the platform the config must point at.

The job goes on when the kernel restarts or the caller exits, and any kernel finds it again
(:meth:`BatchJob.attach`, :meth:`BatchJob.list`, a fingerprint twin). :meth:`BatchJob.results` reads
the answers back as ``batch_do`` returns them: a :class:`~qfnb.resources.QfResponse` per input (the
v1 chat body; on Files + Batch the v2 chat body with ``result`` beside it), or the exception as a value.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import importlib
import itertools
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import IO, Any

from qfnb._core.config import Config, resolve_config
from qfnb._core.errors import ValidationError
from qfnb._core.http.recording.batch_hold import RowTally, hold_rows, keep
from qfnb._core.http.recording.recorded import output_cap, with_output_cap
from qfnb._core.record import bound
from qfnb._core.record.budget import active_budget, batch_rows_reserved
from qfnb._core.runtime import sync

from .batch.console import INPUT_BUCKET, OUTPUT_URI, ConsoleTasks, v1_value
from .batch.files import FilesBatches
from .batch.state import GOING, MARK, MAX_PAGES, BatchBackend, JobState, done_twin, row_index
from .targets import JobTarget, check_platform, parse_target

__all__ = ["GOING", "INPUT_BUCKET", "MARK", "MAX_PAGES", "OUTPUT_URI", "BatchJob", "JobState", "Recipe",
           "backend_for", "check_durable_options", "cluster_backend", "done_twin", "record_job", "request_line",
           "v1_value"]

#: bytes of the spooled input kept in memory before it goes to a temporary file
SPOOL_BYTES = 8 * 1024 * 1024


def cluster_backend(config: Config, target: JobTarget | None) -> BatchBackend | None:
    """The batch backend of ``target``'s cluster kind, as its ``CLUSTERS`` line names it (imported
    here: a cluster's client library loads only for its target); None for no cluster."""
    if target is None or target.cluster is None:
        return None
    module, name = target.cluster.batch.split(":")
    backend: BatchBackend = getattr(importlib.import_module(module), name)(config, target)
    return backend


def backend_for(config: Config, target: JobTarget | None = None) -> BatchBackend:
    """What runs ``config``'s batch jobs at ``target``: a cluster's backend (:func:`cluster_backend`),
    Files + Batch on the cloud's v2 API, else console tasks."""
    backend = cluster_backend(config, target)
    if backend is not None:
        return backend
    check_platform(target, config)
    if config.api_version == 2 and not config.embedded:
        return FilesBatches(config)
    return ConsoleTasks(config)


def config_for(config: Config | None, target: JobTarget | None) -> Config:
    """The config a job uses: on a cluster as given (no platform is needed), else resolved (the
    embedded platform found or started when no credentials are set)."""
    if target is not None and target.cluster is not None:
        return config if config is not None else Config.from_env()
    return resolve_config(config)


def record_job(state: JobState, config: Config, *, reused: bool = False, target: JobTarget | None = None) -> None:
    """The ended job's tokens: settled against the budget its submission held here, and in the
    usage ledger once, whichever process reads it first (:func:`~qfnb._core.http.recording.batch_hold.settle_task`)."""
    sync.run(backend_for(config, target).record(state, reused=reused))


class Recipe:
    """A task's fingerprint, built as its input lines are written: sha256 over the model (or
    endpoint or model version), the inference parameters and every request line, in order."""

    def __init__(self, *, model: str | None, endpoint: str | None, model_id: str | None,
                 inference_params: dict[str, Any] | None) -> None:
        head = {"model": model, "endpoint": endpoint, "model_id": model_id, "params": inference_params or {}}
        self._sha = hashlib.sha256(json.dumps(head, sort_keys=True, ensure_ascii=False, default=str).encode())

    def add(self, line: str) -> str:
        self._sha.update(line.encode("utf-8"))
        return line

    @property
    def fingerprint(self) -> str:
        return self._sha.hexdigest()[:24]


def budgeted_row(params: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """A row's body under a budget: without a cap (its own or the task's), sent with the one reserved."""
    return body if output_cap(params) is not None else with_output_cap("v2/chat", body)


def request_line(index: int, item: Any) -> dict[str, Any]:
    """One input line: ``custom_id`` is the input's index; ``item`` is a message list, a prompt
    string or a request body (``{"messages": [...], ...}``)."""
    if isinstance(item, str):
        body: dict[str, Any] = {"messages": [{"role": "user", "content": item}]}
    elif isinstance(item, list):
        body = {"messages": item}
    elif isinstance(item, dict) and isinstance(item.get("messages"), list):
        body = {k: v for k, v in item.items() if k not in ("stream", "retry_count", "request_timeout")}
    else:
        raise ValidationError(f"inputs[{index}]", "must be a prompt, a message list or a body with 'messages'")
    return {"custom_id": str(index), "method": "POST", "url": "/v2/chat/completions", "body": body}


def _spool(lines: Iterable[str]) -> IO[str]:
    """``lines`` written once, in memory up to :data:`SPOOL_BYTES` and then on disk; rewound."""
    # returned open: the caller's ``with`` closes it
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+", encoding="utf-8", newline="\n")  # noqa: SIM115
    try:
        for line in lines:
            spool.write(line)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool  # a text-mode spool reads and writes str


class BatchJob:
    """A handle on one batch-inference job (holds its id, never its rows)."""

    def __init__(self, task_id: str, config: Config | None = None, target: JobTarget | str | None = None) -> None:
        if not isinstance(task_id, str) or not task_id:
            raise ValidationError("task_id", "is required")
        self.task_id, self.config = task_id, config
        #: where the job runs (None: the config's platform); see :mod:`.targets`
        self.target = parse_target(target)
        self._backend: BatchBackend | None = None
        #: the finished job this handle reuses instead of a new one (``submit(reuse=True)``), or None
        self.reused: JobState | None = None
        #: the running job of the same rows this handle attached to (``submit(reuse=True, attach=True)``), or None
        self.attached: JobState | None = None

    def __repr__(self) -> str:
        where = "" if self.target is None else f", target={str(self.target)!r}"
        return f"BatchJob({self.task_id!r}{where})"

    @property
    def on_cluster(self) -> bool:
        """Runs on a cluster (an Interrupt stops it there)."""
        return self.target is not None and self.target.cluster is not None

    @property
    def backend(self) -> BatchBackend:
        """What runs this job (:func:`backend_for` its config and target; made once)."""
        if self._backend is None:
            self._backend = backend_for(config_for(self.config, self.target), self.target)
        return self._backend

    # ---- submit / find ----------------------------------------------------------------------

    @classmethod
    async def asubmit(cls, inputs: Iterable[Any], *, model: str | None = None, endpoint: str | None = None,
                      model_id: str | None = None, name: str | None = None,
                      inference_params: dict[str, Any] | None = None, reuse: bool = False,
                      attach: bool = False, config: Config | None = None,
                      target: JobTarget | str | None = None) -> BatchJob:
        """Upload ``inputs`` (prompts, message lists or bodies) and start a job on ``model``/
        ``endpoint``/``model_id`` (the platform's model version; on Files + Batch, ``model`` is the v2
        model id).

        The job carries its fingerprint (:class:`Recipe`; a task's description, a batch's metadata).
        With ``reuse=True`` the platform's jobs are searched first: a Done job of the same input lines,
        model and parameters is returned instead (its ``reused`` set), and nothing is uploaded or run.
        With ``attach=True`` as well, a job of the same fingerprint still running is returned (its
        ``attached`` set): a restarted kernel re-attaches to it instead of submitting the rows again.
        Under a budget the rows' worst case is held before anything is sent (BudgetExceeded past it).

        ``target``: ``"local"``, ``"qianfan"`` or ``"ray://HOST:DASHBOARD_PORT"`` (default ``QFNB_TARGET``,
        else the config's platform). On Ray, calling the same job again resumes it: only the rows no
        earlier attempt answered are run (:mod:`.batch.ray_jobs`)."""
        if not (model or endpoint or model_id):
            raise ValidationError("model", "give model=, endpoint= or model_id=")
        where = parse_target(target)
        cfg = config_for(config, where)
        backend = backend_for(cfg, where)  # a cluster's head is reached (its version checked) before any row is sent
        priced_as = backend.model_of(model, endpoint, model_id)
        recipe = Recipe(model=model, endpoint=endpoint, model_id=model_id, inference_params=inference_params)
        rows = iter(enumerate(inputs))
        first = next(rows, None)
        if first is None:
            raise ValidationError("inputs", "is empty")
        budget, params, tally = active_budget(), inference_params or {}, RowTally()

        def line(index: int, item: Any) -> str:
            request = request_line(index, item)
            request["body"] = backend.body(request["body"], params, priced_as)
            if budget is not None:  # each row's worst case, counted as it is written
                request["body"] = budgeted_row(params, request["body"])
                tally.add({**params, **request["body"]})
            return json.dumps(request, ensure_ascii=False) + "\n"

        with _spool(recipe.add(line(i, item)) for i, item in itertools.chain([first], rows)) as spool:
            if reuse:  # the whole input is hashed before anything is sent
                found = await cls._atwin(recipe.fingerprint, attach, cfg, config, where)
                if found is not None:
                    return found
            held = hold_rows(tally, priced_as, cfg, what=f"a durable batch of {tally.rows:,} rows",
                             platform=where.kind if where is not None and where.cluster else None)
            try:
                with bound(batch_rows_reserved, True):
                    task_id = await backend.create(iter(spool), name=name or "", mark=MARK + recipe.fingerprint,
                                                   model=priced_as, endpoint=endpoint, model_id=model_id, params=params)
            except BaseException:
                if held is not None:
                    held.release()
                raise
        if held is not None:
            keep(cfg, task_id, held)
        job = cls(task_id, config, where)
        job._backend = backend
        return job

    @classmethod
    async def _atwin(cls, fingerprint: str, attach: bool, cfg: Config, config: Config | None,
                     target: JobTarget | None = None) -> BatchJob | None:
        """A handle on the job of this fingerprint that ended Done (``reused``) or, with ``attach``, still
        runs (``attached``); None when there is none."""
        twin = done_twin(await backend_for(cfg, target).page(MAX_PAGES), fingerprint, running=attach)
        if twin is None or (target is not None and target.cluster and twin.finished and twin.failed):
            return None  # none; or a cluster's job with error rows: submitted again, it sends those rows only
        job = cls(twin.task_id, config, target)
        if twin.finished:
            job.reused = twin
        else:
            job.attached = twin
        return job

    @classmethod
    async def _alist(cls, config: Config | None, max_pages: int | None = None,
                     target: JobTarget | None = None) -> builtins.list[JobState]:
        """The platform's jobs as it lists them, oldest first (every page, or the first ``max_pages``)."""
        return await backend_for(config_for(config, target), target).page(max_pages)

    @classmethod
    def submit(cls, inputs: Iterable[Any], **kwargs: Any) -> BatchJob:
        """Blocking :meth:`asubmit`."""
        return sync.run(cls.asubmit(inputs, **kwargs))

    @classmethod
    def attach(cls, task_id: str | None = None, config: Config | None = None,
               target: JobTarget | str | None = None) -> BatchJob:
        """The job ``task_id``, or the newest one (from any kernel)."""
        where = parse_target(target)
        if task_id:
            return cls(task_id, config, where)
        found = cls.list(config, where)
        if not found:
            raise ValidationError("task_id", "no batch inference job on this platform yet")
        return cls(found[-1].task_id, config, where)

    @classmethod
    def list(cls, config: Config | None = None, target: JobTarget | str | None = None) -> builtins.list[JobState]:
        """Every job, oldest first."""
        return sync.run(cls._alist(config, target=parse_target(target)))

    # ---- state --------------------------------------------------------------------------------

    async def astate(self) -> JobState:
        return await self.backend.state(self.task_id)

    def state(self) -> JobState:
        return sync.run(self.astate())

    async def astop(self) -> JobState:
        """Stop (cancel) the job; rows it finished stay in its output."""
        await self.backend.stop(self.task_id)
        return await self.astate()

    def stop(self) -> JobState:
        """Blocking :meth:`astop`."""
        return sync.run(self.astop())

    def prompts(self, state: JobState) -> builtins.list[str] | None:
        """Each input row's last user message where the job's own journal keeps it (a Ray job's log),
        else None (a platform job's input is read from its input object)."""
        found = getattr(self.backend, "prompts", None)
        return None if found is None else list(sync.run(found(state)))

    def record(self, state: JobState, *, reused: bool = False) -> None:
        """The ended job's tokens settled and in the usage ledger once (:func:`record_job`)."""
        sync.run(self.backend.record(state, reused=reused))

    async def await_done(self, *, on_state: Callable[[JobState], None] | None = None,
                         interval: float = 0.5, timeout: float | None = None) -> JobState:
        """Poll until the job ends, calling ``on_state`` with each snapshot; the ended job is recorded.
        ``timeout`` (seconds): TimeoutError naming the job when it has not ended by then (it goes on;
        ``wait`` again, or ``stop()`` it)."""
        backend = self.backend
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = await backend.state(self.task_id)
            if on_state is not None:
                on_state(state)
            if state.finished:
                await backend.record(state)
                return state
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"batch job {self.task_id} has not ended after {timeout:g} s (timeout=); it "
                                   f"is {state.status}, {state.done} of {state.total} rows done, and goes on")
            await asyncio.sleep(interval)

    def wait(self, *, on_state: Callable[[JobState], None] | None = None, interval: float = 0.5,
             timeout: float | None = None) -> JobState:
        return sync.run(self.await_done(on_state=on_state, interval=interval, timeout=timeout))

    # ---- results -------------------------------------------------------------------------------

    async def aiter_rows(self, which: str = "output") -> AsyncIterator[dict[str, Any]]:
        """The raw rows (OpenAI's batch row shape) of the ``"output"`` or ``"errors"`` file, read
        lazily (console tasks in bounded pieces)."""
        if which not in ("output", "errors"):
            raise ValidationError("which", f"must be 'output' or 'errors', got {which!r}")
        backend = self.backend
        async for row in backend.rows(await backend.state(self.task_id), which):
            yield row

    async def arows(self) -> tuple[builtins.list[dict[str, Any]], builtins.list[dict[str, Any]]]:
        """The raw output and error rows (OpenAI's batch row shape)."""
        return [r async for r in self.aiter_rows("output")], [r async for r in self.aiter_rows("errors")]

    async def aiter_results(self) -> AsyncIterator[tuple[int, Any]]:
        """``(input index, value)`` for every finished row, as the job wrote them (answers, then
        errors): a QfResponse or the exception as a value. Lazy."""
        backend = self.backend
        state = await backend.state(self.task_id)
        for which in ("output", "errors"):
            async for row in backend.rows(state, which):
                yield row_index(row), backend.value(row)

    def iter_results(self) -> Iterator[tuple[int, Any]]:
        """Blocking :meth:`aiter_results` (a generator: rows are read as it is iterated)."""
        return sync.iterate(self.aiter_results())

    async def aresults(self) -> builtins.list[Any]:
        """Per input, in input order: a QfResponse, the exception as a value, or None (not run). Each
        row is answered once: an answer wins over an error for the same ``custom_id``."""
        state = await self.astate()
        values: builtins.list[Any] = [None] * state.total
        async for index, value in self.aiter_results():
            if 0 <= index < len(values) and (values[index] is None or not isinstance(value, Exception)):
                values[index] = value
        return values

    def results(self) -> builtins.list[Any]:
        return sync.run(self.aresults())


#: what each ``batch_do`` option a durable job has no use for does in a live batch, and what to use instead
_LIVE_ONLY = {
    "worker_num": "the platform (or the cluster's workers) paces a job's rows",
    "output_file": "a job keeps its answers in its own output: job.wait(), then job.results() (or %qfbatch, "
                   "which writes them into a dataset)",
    "progress": "job.wait(on_state=...) hears of each state; %qfbatch draws the job's bar",
    "retry_budget": "a job's rows are retried by the platform; on a cluster, calling it again sends its error rows",
}


def check_durable_options(given: dict[str, Any]) -> None:
    """Refuse, by name, a ``batch_do`` option a durable or cluster job would not honour (anything but its
    default in ``given``), before any row is sent: an ignored ``output_file=`` would lose the answers."""
    for name, value in given.items():
        if value is not None:
            raise ValidationError(name, f"not used by a durable batch (durable=True or a cluster target): "
                                        f"{_LIVE_ONLY[name]}; leave it out, or run the batch live")


