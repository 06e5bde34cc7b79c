"""What a durable batch job is, whichever backend runs it (:mod:`.console`: the console's
offline batch-inference task; :mod:`.files`: the v2 Files + Batch API): its state
(:class:`JobState`), the fingerprint mark that finds it again (:func:`done_twin`), and the
:class:`BatchBackend` protocol ``BatchJob`` drives."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from qfnb._core.errors import QfnbError
from qfnb._core.http.response import QfResponse
from qfnb._core.record.traces import RowSpan
from qfnb.protocol.wires.qianfan.batch import ACTIVE, ROW_SECONDS_KEY, BatchStatus

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.protocol.wires.qianfan.answers import BatchTask

#: what a job qfnb submits carries (a task's description, a batch's ``metadata``):
#: ``qfnb-batch:<fingerprint>`` (so the platform itself remembers which input, model and parameters it ran)
MARK = "qfnb-batch:"
#: how many pages of jobs (100 each) are searched for a finished twin
MAX_PAGES = 10
#: the states of a job a restarted kernel re-attaches to (not one being stopped)
GOING = (BatchStatus.QUEUING.value, BatchStatus.RUNNING.value)


@dataclass
class JobState:
    """A snapshot of a job: ``status`` (the platform's runStatus; a Files + Batch batch's status is
    mapped to it), counts and tokens; ``view`` keeps every key the platform sent."""

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
        """The state of a console task as the platform describes it (its answer's ``result``, typed or a dict)."""
        from qfnb.protocol.wires.qianfan.answers import BatchTask  # deferred: loads pydantic

        t = task if isinstance(task, BatchTask) else BatchTask.model_validate(task)
        return cls(t.task_id, t.name, t.run_status, t.succeeded_count, t.failed_count, t.total_count,
                   t.output_token_usage, t.run_seconds, t.model_dump(by_alias=True, exclude_unset=True))


def mark_of(view: dict[str, Any]) -> str:
    """The fingerprint mark a job carries: a task's description, or a batch's ``metadata``."""
    meta = view.get("metadata")
    return str(view.get("description") or "") + (str(meta.get("description") or "") if isinstance(meta, dict) else "")


def done_twin(states: Iterable[JobState], fingerprint: str, *, running: bool = False) -> JobState | None:
    """The newest job that ran this fingerprint and ended Done (a failed or stopped one never counts);
    with ``running``, one still running counts too (a restarted kernel finds its job again)."""
    mark = MARK + fingerprint
    found = [s for s in states if (s.status == "Done" or (running and s.status in GOING)) and mark in mark_of(s.view)]
    return found[-1] if found else None


def row_error(row: dict[str, Any]) -> QfnbError:
    """The exception an error row stands for (its ``error``, or its answer's non-200 body)."""
    error = row.get("error") or ((row.get("response") or {}).get("body") or {}).get("error") or {}
    if not isinstance(error, dict):
        error = {"message": str(error)}
    return QfnbError(f"{error.get('code', 'error')}: {error.get('message', '')}")


def row_index(row: dict[str, Any]) -> int:
    """The input index of an output or error row (its custom_id; else its input line)."""
    try:
        return int(row["custom_id"])
    except (TypeError, ValueError, KeyError):
        return int(row.get("line") or 0) - 1


def answered(row: dict[str, Any]) -> dict[str, Any] | None:
    """The chat completion an output row carries, or None for an error row."""
    response = row.get("response") or {}
    if row.get("error") is None and response and int(response.get("status_code") or 200) < 300:
        body = response.get("body")
        return body if isinstance(body, dict) else None
    return None


class BatchBackend(Protocol):
    """What runs a durable batch: submits its spooled JSONL rows and reads the job back."""

    def model_of(self, model: str | None, endpoint: str | None, model_id: str | None) -> str:
        """The model the job's rows are priced (and, where rows name it, sent) as."""

    def body(self, body: dict[str, Any], params: dict[str, Any], model: str) -> dict[str, Any]:
        """A row's request body as this backend sends it."""

    async def create(self, lines: Iterator[str], *, name: str, mark: str, model: str, endpoint: str | None,
                     model_id: str | None, params: dict[str, Any]) -> str:
        """Upload ``lines`` and start the job; its id."""

    async def state(self, job_id: str) -> JobState: ...

    async def page(self, max_pages: int | None) -> list[JobState]:
        """The platform's jobs, oldest first (every page, or the first ``max_pages``)."""

    async def stop(self, job_id: str) -> None: ...

    def rows(self, state: JobState, which: str) -> AsyncIterator[dict[str, Any]]:
        """The raw rows of the ``"output"`` or ``"errors"`` file."""

    def value(self, row: dict[str, Any]) -> QfResponse | Exception:
        """An output or error row as ``batch_do`` gives it."""

    async def record(self, state: JobState, *, reused: bool = False) -> None:
        """The ended job settled against its hold and in the usage ledger once."""


def row_spans(rows: Sequence[dict[str, Any]]) -> list[RowSpan]:
    """Each output or error row as its span: its tokens, and the seconds a Ray worker took over it (a
    Files + Batch row says none)."""
    found = []
    for row in rows:
        body = answered(row)
        usage = (body or {}).get("usage") or {}
        took = row.get(ROW_SECONDS_KEY)
        found.append(RowSpan(str(row.get("custom_id")), int(usage.get("prompt_tokens") or 0),
                             int(usage.get("completion_tokens") or 0),
                             float(took) if isinstance(took, int | float) else 0.0, 200 if body is not None else 500))
    return found
