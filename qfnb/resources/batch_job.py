"""``BatchJob``: a durable batch-inference task the platform runs (``/v2/batchinference``).

The rows are uploaded as one JSONL object to the platform's object store and the platform
(the local daemon) runs them: the job goes on when the kernel restarts or the caller exits,
and any kernel finds it again (:meth:`BatchJob.attach`, :meth:`BatchJob.list`).
:meth:`BatchJob.results` reads the answers back as ``batch_do`` returns them: a
:class:`~qfnb.resources.QfResponse` per input (the v1 chat body), or the exception as a value.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qfnb._core.config import resolve_config
from qfnb._core.errors import QfnbError, ValidationError
from qfnb._core.http.batch_hold import RowTally, hold_rows, keep, settle_task
from qfnb._core.http.recorded import output_cap, with_output_cap
from qfnb._core.http.response import QfResponse
from qfnb._core.record import bound
from qfnb._core.record.budget import active_budget, batch_rows_reserved
from qfnb._core.runtime import sync
from qfnb.protocol.batch import ACTIVE, BatchStatus

from . import batch_objects
from .console.data import Data

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config
    from qfnb.protocol.answers import BatchTask

INPUT_BUCKET = "qfnb-batch-inputs"
OUTPUT_URI = "bos:/qfnb-batch-results/"
#: what the description of a task qfnb submits carries: ``qfnb-batch:<fingerprint>`` (so the
#: platform itself remembers which input, model and parameters a task ran, as a fine-tune's recipe)
MARK = "qfnb-batch:"
#: how many pages of tasks (100 each) are searched for a finished twin
MAX_PAGES = 10
#: the states of a task a restarted kernel re-attaches to (not one being stopped)
GOING = (BatchStatus.QUEUING.value, BatchStatus.RUNNING.value)


@dataclass
class JobState:
    """A snapshot of a task: ``status`` (the platform's runStatus), counts and tokens."""

    task_id: str
    name: str
    status: str
    done: int
    failed: int
    total: int
    output_tokens: int
    run_seconds: float
    view: dict[str, Any]

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE

    @property
    def tokens_per_second(self) -> float:
        return self.output_tokens / self.run_seconds if self.run_seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        processed = self.done + self.failed
        if not processed or self.finished or self.run_seconds <= 0:
            return None
        return self.run_seconds / processed * (self.total - processed)

    @classmethod
    def of(cls, task: BatchTask | dict[str, Any]) -> JobState:
        """The state of a task as the platform describes it (its answer's ``result``, typed or a dict);
        ``view`` keeps every key it sent."""
        from qfnb.protocol.answers import BatchTask  # deferred: loads pydantic

        t = task if isinstance(task, BatchTask) else BatchTask.model_validate(task)
        return cls(t.task_id, t.name, t.run_status, t.succeeded_count, t.failed_count, t.total_count,
                   t.output_token_usage, t.run_seconds, t.model_dump(by_alias=True, exclude_unset=True))


def record_job(state: JobState, config: Config, *, reused: bool = False) -> None:
    """The ended task's tokens: settled against the budget its submission held here, and in the
    usage ledger once, whichever process reads it first (:func:`~qfnb._core.http.batch_hold.settle_task`)."""
    view = state.view
    model = str(view.get("endpoint") or view.get("modelId") or view.get("model") or "batch")
    settle_task(config, state.task_id, prompt=int(view.get("inputTokenUsage") or 0),
                completion=state.output_tokens, seconds=state.run_seconds, model=model, reused=reused)


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


def done_twin(states: Iterable[JobState], fingerprint: str, *, running: bool = False) -> JobState | None:
    """The newest task that ran this fingerprint and ended Done (a failed or stopped one never counts);
    with ``running``, one still running counts too (a restarted kernel finds its task again)."""
    mark = MARK + fingerprint
    found = [s for s in states if (s.status == "Done" or (running and s.status in GOING))
             and mark in str(s.view.get("description") or "")]
    return found[-1] if found else None


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


def v1_value(row: dict[str, Any]) -> Any:
    """An output or error row as ``batch_do`` gives it: a QfResponse with the v1 chat body, or
    the exception as a value."""
    if row.get("error") is None and row.get("response"):
        body = row["response"]["body"]
        choice = (body.get("choices") or [{}])[0]
        finish = choice.get("finish_reason") or "stop"
        return QfResponse(200, {}, {"id": body.get("id"), "object": "chat.completion", "created": body.get("created"),
                                    "result": (choice.get("message") or {}).get("content", ""),
                                    "is_truncated": finish == "length", "need_clear_history": False,
                                    "finish_reason": "normal" if finish == "stop" else finish,
                                    "usage": body.get("usage") or {}})
    error = row.get("error") or {}
    return QfnbError(f"{error.get('code', 'error')}: {error.get('message', '')}")


class BatchJob:
    """A handle on one batch-inference task (holds its id, never its rows)."""

    def __init__(self, task_id: str, config: Config | None = None) -> None:
        if not isinstance(task_id, str) or not task_id:
            raise ValidationError("task_id", "is required")
        self.task_id, self.config = task_id, config
        #: the finished task this handle reuses instead of a new one (``submit(reuse=True)``), or None
        self.reused: JobState | None = None
        #: the running task of the same rows this handle attached to (``submit(reuse=True, attach=True)``), or None
        self.attached: JobState | None = None

    def __repr__(self) -> str:
        return f"BatchJob({self.task_id!r})"

    # ---- submit / find ----------------------------------------------------------------------

    @classmethod
    async def asubmit(cls, inputs: Iterable[Any], *, model: str | None = None, endpoint: str | None = None,
                      model_id: str | None = None, name: str | None = None,
                      inference_params: dict[str, Any] | None = None, reuse: bool = False,
                      attach: bool = False, config: Config | None = None) -> BatchJob:
        """Upload ``inputs`` (prompts, message lists or bodies) and start a task on ``model``/
        ``endpoint``/``model_id`` (the platform's model version).

        The task's description carries its fingerprint (:class:`Recipe`). With ``reuse=True`` the
        platform's tasks are searched first: a Done task of the same input lines, model and
        parameters is returned instead (its ``reused`` set), and nothing is uploaded or run. With
        ``attach=True`` as well, a task of the same fingerprint still running is returned (its ``attached``
        set): a restarted kernel re-attaches to it instead of submitting the rows again."""
        if not (model or endpoint or model_id):
            raise ValidationError("model", "give model=, endpoint= or model_id=")
        cfg = resolve_config(config)
        recipe = Recipe(model=model, endpoint=endpoint, model_id=model_id, inference_params=inference_params)
        rows = iter(enumerate(inputs))
        first = next(rows, None)
        if first is None:
            raise ValidationError("inputs", "is empty")
        budget, params, tally = active_budget(), inference_params or {}, RowTally()

        def line(index: int, item: Any) -> str:
            request = request_line(index, item)
            if budget is not None:  # each row's worst case, counted as it streams to the upload
                request["body"] = budgeted_row(params, request["body"])
                tally.add({**params, **request["body"]})
            return json.dumps(request, ensure_ascii=False) + "\n"

        lines: Iterator[str] = (recipe.add(line(i, item)) for i, item in itertools.chain([first], rows))
        if reuse:
            lines = iter(builtins.list(lines))  # the whole input is hashed before anything is sent
            found = await cls._atwin(recipe.fingerprint, attach, cfg, config)
            if found is not None:
                return found
        key = f"{uuid.uuid4().hex}.jsonl"
        await batch_objects.aupload_lines(cfg, f"bos:/{INPUT_BUCKET}/{key}", lines)  # in bounded pieces
        held = hold_rows(tally, str(endpoint or model or model_id), cfg,
                         what=f"a durable batch of {tally.rows:,} rows")
        try:
            with bound(batch_rows_reserved, True):
                made = await Data.acreate_offline_batch_inference_task(
                    name=name or f"qfnb-batch-{key[:8]}", input_bos_uri=f"bos:/{INPUT_BUCKET}/{key}",
                    output_bos_uri=OUTPUT_URI, model_id=model_id, endpoint=endpoint or model,
                    inference_params=params, description=MARK + recipe.fingerprint, config=cfg)
        except BaseException:
            if held is not None:
                held.release()
            raise
        task_id = made.parsed.result.task_id
        if held is not None:
            keep(cfg, task_id, held)
        return cls(task_id, config)

    @classmethod
    async def _atwin(cls, fingerprint: str, attach: bool, cfg: Config, config: Config | None) -> BatchJob | None:
        """A handle on the task of this fingerprint that ended Done (``reused``) or, with ``attach``, still
        runs (``attached``); None when there is none."""
        twin = done_twin(await cls._alist(cfg, MAX_PAGES), fingerprint, running=attach)
        if twin is None:
            return None
        job = cls(twin.task_id, config)
        if twin.finished:
            job.reused = twin
        else:
            job.attached = twin
        return job

    @classmethod
    async def _alist(cls, config: Config | None, max_pages: int | None = None) -> builtins.list[JobState]:
        """The platform's tasks as it lists them (every page, or the first ``max_pages``)."""
        states: builtins.list[JobState] = []
        marker: str | None = None
        for _ in itertools.count() if max_pages is None else range(max_pages):
            got = await Data.alist_offline_batch_inference_task(marker=marker, max_keys=100, config=config)
            page = got.parsed.result
            states += [JobState.of(t) for t in page.task_list]
            if not page.page_info.is_truncated:
                break
            marker = page.page_info.next_marker
        return states

    @classmethod
    def submit(cls, inputs: Iterable[Any], **kwargs: Any) -> BatchJob:
        """Blocking :meth:`asubmit`."""
        return sync.run(cls.asubmit(inputs, **kwargs))

    @classmethod
    def attach(cls, task_id: str | None = None, config: Config | None = None) -> BatchJob:
        """The task ``task_id``, or the newest one (from any kernel)."""
        if task_id:
            return cls(task_id, config)
        found = cls.list(config)
        if not found:
            raise ValidationError("task_id", "no batch inference task on this platform yet")
        return cls(found[-1].task_id, config)

    @classmethod
    def list(cls, config: Config | None = None) -> builtins.list[JobState]:
        """Every task, oldest first."""
        return sync.run(cls._alist(config))

    # ---- state --------------------------------------------------------------------------------

    async def astate(self) -> JobState:
        resp = await Data.aget_offline_batch_inference_task(task_id=self.task_id, config=self.config)
        return JobState.of(resp.parsed.result)

    def state(self) -> JobState:
        return sync.run(self.astate())

    def stop(self) -> JobState:
        """Stop the task; rows it finished stay in its output."""
        Data.stop_offline_batch_inference_task(task_id=self.task_id, config=self.config)
        return self.state()

    async def await_done(self, *, on_state: Callable[[JobState], None] | None = None,
                         interval: float = 0.5) -> JobState:
        """Poll until the task ends, calling ``on_state`` with each snapshot."""
        while True:
            state = await self.astate()
            if on_state is not None:
                on_state(state)
            if state.finished:
                record_job(state, resolve_config(self.config))
                return state
            await asyncio.sleep(interval)

    def wait(self, *, on_state: Callable[[JobState], None] | None = None, interval: float = 0.5) -> JobState:
        return sync.run(self.await_done(on_state=on_state, interval=interval))

    # ---- results -------------------------------------------------------------------------------

    async def aiter_rows(self, which: str = "output") -> AsyncIterator[dict[str, Any]]:
        """The raw rows (OpenAI's batch row shape) of the ``"output"`` or ``"errors"`` object, read
        lazily in bounded pieces: memory does not grow with the job's size."""
        field = {"output": "outputFileUri", "errors": "errorFileUri"}.get(which)
        if field is None:
            raise ValidationError("which", f"must be 'output' or 'errors', got {which!r}")
        state = await self.astate()
        async for line in batch_objects.aiter_lines(resolve_config(self.config), str(state.view[field])):
            yield json.loads(line)

    async def arows(self) -> tuple[builtins.list[dict[str, Any]], builtins.list[dict[str, Any]]]:
        """The raw output and error rows (OpenAI's batch row shape)."""
        return [r async for r in self.aiter_rows("output")], [r async for r in self.aiter_rows("errors")]

    async def aiter_results(self) -> AsyncIterator[tuple[int, Any]]:
        """``(input index, value)`` for every finished row, as the job wrote them (answers, then
        errors): a QfResponse or the exception as a value. Lazy, in bounded memory."""
        for which in ("output", "errors"):
            async for row in self.aiter_rows(which):
                yield _index(row), v1_value(row)

    def iter_results(self) -> Iterator[tuple[int, Any]]:
        """Blocking :meth:`aiter_results` (a generator: rows are read as it is iterated)."""
        return sync.iterate(self.aiter_results())

    async def aresults(self) -> builtins.list[Any]:
        """Per input, in input order: a QfResponse, the exception as a value, or None (not run)."""
        state = await self.astate()
        values: builtins.list[Any] = [None] * state.total
        async for index, value in self.aiter_results():
            if 0 <= index < len(values) and (values[index] is None or not isinstance(value, Exception)):
                values[index] = value
        return values

    def results(self) -> builtins.list[Any]:
        return sync.run(self.aresults())


def _index(row: dict[str, Any]) -> int:
    """The input index of an output or error row (its custom_id; else its input line)."""
    try:
        return int(row["custom_id"])
    except (TypeError, ValueError, KeyError):
        return int(row.get("line") or 0) - 1


async def submit_durable(inference: Any, items: Iterable[dict[str, Any]], common: dict[str, Any]) -> BatchJob:
    """``batch_do(..., durable=True)``: the chat requests ``items`` as a platform task on the
    inference object's model or endpoint."""
    if getattr(inference, "batch_field", None) != "messages":
        raise ValidationError("durable", f"durable batches run chat requests; {type(inference).__name__} is not chat")
    model, endpoint = getattr(inference, "_model", None), getattr(inference, "_endpoint", None)
    if not (model or endpoint):
        raise ValidationError("model", "a durable batch needs the ChatCompletion's model= or endpoint=")
    return await BatchJob.asubmit(items, model=model, endpoint=endpoint, config=inference.config)
