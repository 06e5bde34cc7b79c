"""Collect the models' answers: repeats, a durable per-item store, and recorded answers.

* ``repeats=N`` asks each model every item N times (with the caller's sampling settings).
* An :class:`AnswerStore` (SQLite) keeps every answer under a key of (model identity, input,
  inference settings, repeat), written as answers arrive (one by one by a single worker, a chunk at a
  time by several): a re-run with one
  more model or more items asks only for what the store lacks, and an interrupted run resumes.
  Failed inferences are never stored (they are asked again).
* :func:`recorded_answers` reads answers already made (a dataset column, or a batch-inference
  output) so they are scored without calling any model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfnb._core.record.cache import cache_mode, repeat_index
from qfnb._core.record.ledger import STORE_API, UsageRow, default_ledger
from qfnb._core.record.traces import OpenSpan, item_spans
from qfnb.protocol.console.textmetrics import as_text
from qfnb.protocol.platform.daemon import default_data_dir

from .._errors import invalid
from ..base import EvalInput
from ..call_keys import item_keys
from ..data import to_frame
from ..llm import Answer, LLMTarget, target_identity
from .batch_output import is_job, is_openai_output, job_answers, openai_output_answers

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("qfnb.evaluation")

#: ``gen_ai.operation.name`` of an evaluation item's span
EVALUATE_OPERATION = "evaluate"
#: answers asked for per store write by several workers (a crash loses at most this many per model);
#: one worker's are written one by one, as each arrives
CHUNK = 16
#: batch-inference output columns holding the answer (``Model.batch_inference``: ``llm_output``)
RECORDED_OUTPUT_NAMES = ("llm_output", "completion", "output", "prediction", "answer_text")


def answer_key(identity: str, item: EvalInput, infer_kwargs: Mapping[str, Any], repeat: int) -> str:
    blob = json.dumps([identity, item, dict(sorted(infer_kwargs.items())), repeat], ensure_ascii=False,
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class AnswerStore:
    """Answers by key in one SQLite file (safe across threads and runs)."""

    def __init__(self, path: str | Path, *, refresh: bool = False) -> None:
        self.path = Path(path).expanduser()
        #: ask every model again (and keep the new answers) instead of reusing stored ones
        self.refresh = refresh
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        #: answers this store gave back instead of asking a model (a report says how many were reused)
        self.hits = 0
        fresh = not self.path.exists()
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT, output TEXT)")
            db.execute("CREATE TABLE IF NOT EXISTS label_queues (key TEXT PRIMARY KEY, state TEXT)")
        if fresh:  # answers can hold private data: the user's only
            self.path.chmod(0o600)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.refresh:
            return out
        with self._lock, self._connect() as db:
            for start in range(0, len(keys), 500):
                part = list(keys[start:start + 500])
                marks = ",".join("?" * len(part))
                out.update(db.execute(f"SELECT key, output FROM answers WHERE key IN ({marks})", part).fetchall())
            self.hits += len(out)
        return out

    def holds(self, keys: Sequence[str]) -> set[str]:
        """The keys a run would take from this store (none with ``refresh``), not counted as reused."""
        if self.refresh or not keys:
            return set()
        found: set[str] = set()
        with self._lock, self._connect() as db:
            for start in range(0, len(keys), 500):
                part = list(keys[start:start + 500])
                marks = ",".join("?" * len(part))
                found.update(k for (k,) in db.execute(f"SELECT key FROM answers WHERE key IN ({marks})", part))
        return found

    def put_many(self, model: str, items: Mapping[str, str]) -> None:
        if not items:
            return
        with self._lock, self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO answers (key, model, output) VALUES (?, ?, ?)",
                           [(k, model, v) for k, v in items.items()])

    def label_state(self, key: str) -> dict[str, Any] | None:
        """A label queue's saved state (:meth:`qfnb.evaluation.LabelQueue.state`) under ``key``, or None.
        The person's labels are facts: ``refresh`` (new answers) does not forget them."""
        with self._lock, self._connect() as db:
            row = db.execute("SELECT state FROM label_queues WHERE key = ?", (key,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save_label_state(self, key: str, state: Mapping[str, Any]) -> None:
        """Keep a label queue's state under ``key`` (written at each label: a restarted kernel continues)."""
        with self._lock, self._connect() as db:
            db.execute("INSERT OR REPLACE INTO label_queues (key, state) VALUES (?, ?)", (key, json.dumps(state)))

    def __len__(self) -> int:
        with self._lock, self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def __repr__(self) -> str:
        return f"AnswerStore({str(self.path)!r})"


def stored_flags(store: AnswerStore | None, target: LLMTarget, inputs: Sequence[EvalInput],
                 infer_kwargs: Mapping[str, Any], repeats: int) -> list[bool]:
    """Per answer, repeat by repeat (as :func:`answers_of` asks them): whether ``store`` holds it, so
    a run takes it without a call (a forecast counts it as none)."""
    if store is None:
        return [False] * (repeats * len(inputs))
    identity = target_identity(target)
    keys = [answer_key(identity, inputs[i], infer_kwargs, r) for r in range(repeats) for i in range(len(inputs))]
    held = store.holds(keys)
    return [k in held for k in keys]


def default_store_path() -> Path:
    """``$QFNB_EVAL_STORE`` or ``<data dir>/evaluations/answers.sqlite`` (the notebook's default)."""
    raw = os.environ.get("QFNB_EVAL_STORE")
    return Path(raw).expanduser() if raw else default_data_dir() / "evaluations" / "answers.sqlite"


def as_store(store: Any) -> AnswerStore | None:
    if store is None or store is False:
        return None
    if isinstance(store, AnswerStore):
        return store
    if isinstance(store, str | Path):
        return AnswerStore(store)
    raise invalid("store", f"expected a path or an AnswerStore, got {type(store).__name__}")


class MappedProgress:
    """Progress of a sub-batch: each result's index told to ``report`` as its position in the whole
    evaluation (``positions[index]``); the sub-batch's own start and close are dropped."""

    def __init__(self, report: Callable[[int, bool], None], positions: Sequence[int]) -> None:
        self._report, self._positions = report, positions

    def on_start(self, total: int | None) -> None:
        pass

    def on_result(self, index: int, ok: bool) -> None:
        if 0 <= index < len(self._positions):
            self._report(self._positions[index], ok)

    def on_close(self) -> None:
        pass


def _reuse(store: AnswerStore, target: LLMTarget, keys: Sequence[str], got: list[Answer | None], tracker: Any,
           offset: int) -> None:
    """Fill ``got`` with the answers ``store`` holds; each is in the ledger as reused (no call made),
    so a cell's figures say so."""
    cached = store.get_many(keys)
    for j, key in enumerate(keys):
        if key in cached:
            got[j] = cached[key]
            tracker.result(offset + j, True)
    if cached:
        log.info("%s: %d of %d answers from the store", target.tag, len(cached), len(keys))
        ledger = default_ledger()
        for _ in cached:
            ledger.record(UsageRow(api=STORE_API, model=target.tag, platform="local", cache_hit=True))


async def answers_of(target: LLMTarget, inputs: Sequence[EvalInput], *, repeats: int, workers: int,
                     infer_kwargs: Mapping[str, Any], tracker: Any, offset: int, store: AnswerStore | None,
                     spans: dict[tuple[int, int], OpenSpan] | None = None) -> list[list[Answer]]:
    """``answers[r][i]``: the target's answer to item ``i`` in repeat ``r`` (stored ones reused).
    ``spans`` gets the span of each item asked now, under ``(r, i)``: its call timed, its platform
    calls nested under it (the caller adds the scores and keeps them)."""
    jobs = [(r, i) for r in range(repeats) for i in range(len(inputs))]
    got: list[Answer | None] = [None] * len(jobs)
    keys: list[str] = []
    if store is not None:
        identity = target_identity(target)
        keys = [answer_key(identity, inputs[i], infer_kwargs, r) for r, i in jobs]
        _reuse(store, target, keys, got, tracker, offset)
    refresh = store is not None and store.refresh
    for r in range(repeats):  # each repeat in its own context: the response cache keeps repeats apart
        todo = [j for j, a in enumerate(got) if a is None and jobs[j][0] == r]
        # stored a chunk at a time; one at a time by one worker (a sequential run loses no answer it got)
        step = len(todo) if store is None else 1 if workers <= 1 else max(CHUNK, workers)
        for start in range(0, len(todo), max(step, 1)):
            part = todo[start:start + step]
            hook = MappedProgress(tracker.result, [offset + j for j in part]) if tracker.active else False
            opened = [item_span(target.tag, jobs[j][1], r) for j in part] if spans is not None else []
            if spans is not None:
                spans.update({jobs[j]: span for j, span in zip(part, opened, strict=True)})
            # with a store (and no refresh), each call keyed by its item's store key: see ..call_keys
            asked = [keys[j] for j in part] if store is not None and not refresh else None
            with repeat_index(r), (cache_mode("refresh") if refresh else contextlib.nullcontext()), \
                    item_spans(opened), item_keys(asked):
                fresh = await target.run([inputs[jobs[j][1]] for j in part], workers, infer_kwargs, hook)
            for j, answer in zip(part, fresh, strict=True):
                got[j] = answer
            if store is not None:
                store.put_many(target_identity(target),
                               {keys[j]: a for j, a in zip(part, fresh, strict=True) if isinstance(a, str)})
    out: list[list[Answer]] = [[] for _ in range(repeats)]
    for (r, _), done in zip(jobs, got, strict=True):
        assert done is not None
        out[r].append(done)
    return out


def item_span(tag: str, index: int, repeat: int) -> OpenSpan:
    """The span of one evaluation item: the model tag asked, the item's index and repeat."""
    return OpenSpan(EVALUATE_OPERATION, tag, "evaluation", {"qfnb.eval.index": index, "qfnb.eval.repeat": repeat})


def _output_column(frame: Any, field: str) -> str:
    name = next((n for n in RECORDED_OUTPUT_NAMES if n in frame.columns), None)
    if name is not None:
        return name
    raise invalid(field, f"no answer column among {list(RECORDED_OUTPUT_NAMES)} (columns: {list(frame.columns)})")


def recorded_answers(recorded: Any, dataset_frame: Any, inputs: Sequence[EvalInput]) -> dict[str, list[str]]:
    """``{tag: [answer per item]}`` from ``recorded``: a column name of the dataset, a mapping
    ``{tag: column name | list of answers | batch output}`` where a batch output is a Dataset / DataFrame / records /
    ``.jsonl`` path with ``prompt`` and ``llm_output`` (or ``completion``) — matched to the items
    by prompt, else by row order —, a ``BatchJob``, or a job's output file in OpenAI's batch shape
    (by ``custom_id``, see :mod:`.batch_output`)."""
    pairs = recorded.items() if isinstance(recorded, Mapping) else [(None, recorded)]
    out: dict[str, list[str]] = {}
    for tag, src in pairs:
        field = f"recorded[{tag!r}]" if tag is not None else "recorded"
        if isinstance(src, str) and src in dataset_frame.columns:
            out[str(tag or src)] = [as_text(v) for v in dataset_frame[src]]
        elif isinstance(src, list | tuple) and all(isinstance(v, str) for v in src):
            if len(src) != len(inputs):
                raise invalid(field, f"{len(src)} recorded answers for {len(inputs)} items")
            out[str(tag or "recorded")] = list(src)
        elif is_job(src):  # a durable batch job (%qfbatch, batch_do(durable=True)): answers by input index
            out[str(tag or "recorded")] = job_answers(src, len(inputs), field)
        else:
            out[str(tag or "recorded")] = _output_answers(_output_frame(src, dataset_frame, field), inputs, field)
    return out


def _output_frame(src: Any, dataset_frame: Any, field: str) -> pd.DataFrame:
    """A batch output as a frame: a file (``.jsonl`` or JSON), else anything :func:`to_frame` reads."""

    if not isinstance(src, str | Path):
        return to_frame(src)
    path = Path(src).expanduser()
    if not path.exists():
        raise invalid(field, f"{str(src)!r} is neither a dataset column ({list(dataset_frame.columns)}) nor a file")
    import pandas as pd

    return pd.read_json(path, lines=path.suffix == ".jsonl")


def _output_answers(frame: Any, inputs: Sequence[EvalInput], field: str) -> list[str]:
    if is_openai_output(frame.columns):  # a batch job's output file as the platform wrote it
        return openai_output_answers(frame, len(inputs), field)
    col = _output_column(frame, field)
    answers = [as_text(v) for v in frame[col]]
    prompts = [as_text(v) for v in frame["prompt"]] if "prompt" in frame.columns else None
    wanted = [as_text(i) if isinstance(i, str) else json.dumps(i, ensure_ascii=False) for i in inputs]
    if prompts is not None and set(wanted) <= set(prompts):
        by_prompt = dict(zip(prompts, answers, strict=True))
        return [by_prompt[p] for p in wanted]
    if len(answers) == len(inputs):
        return answers
    raise invalid(field, f"{len(answers)} recorded answers for {len(inputs)} items, and their prompts "
                         "do not match the dataset's")
