"""Answers from a batch-inference job's output, for scoring recorded answers (issue 23 item 4):
a :class:`~qfnb.resources.batch_job.BatchJob` (the durable job ``%qfbatch`` and
``batch_do(durable=True)`` start), or its output file in OpenAI's batch shape
(``{"custom_id", "response": {"body": <chat.completion>}, "error"}`` per line).

A qfnb job's ``custom_id`` is the input's index, so answers line up with the dataset's rows; an
OpenAI file whose ids are not indices is taken in file order. A row that failed (or never ran)
is an empty answer, and a warning says how many there were.
"""

from __future__ import annotations

import logging
from typing import Any

from qfnb.protocol.console.textmetrics import as_text

from .._errors import invalid

log = logging.getLogger("qfnb.evaluation")


def is_job(src: Any) -> bool:
    """A batch job handle (duck-typed: its results by input index, and an id)."""
    return callable(getattr(src, "results", None)) and isinstance(getattr(src, "task_id", None), str)


def is_openai_output(columns: Any) -> bool:
    return "custom_id" in columns and "response" in columns


def _content(response: Any) -> str | None:
    if not isinstance(response, dict):
        return None
    body = response.get("body")
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    return as_text(message.get("content")) if isinstance(message, dict) else None


def _note_missing(field: str, missing: int, total: int) -> None:
    if missing:
        log.warning("%s: %d of %d items have no answer in the batch output (failed or not run); they are "
                    "scored as empty answers", field, missing, total)


def job_answers(job: Any, n_items: int, field: str) -> list[str]:
    """A job's answers in input order (``job.results()``: a response, an exception or None per input)."""
    values = list(job.results())
    if len(values) != n_items:
        raise invalid(field, f"batch job {job.task_id} has {len(values)} inputs for {n_items} items")
    answers = [v.result if v is not None and not isinstance(v, BaseException) else "" for v in values]
    _note_missing(field, sum(1 for v in values if v is None or isinstance(v, BaseException)), n_items)
    return answers


def openai_output_answers(frame: Any, n_items: int, field: str) -> list[str]:
    """Answers from an OpenAI-shaped batch output (its rows in any order)."""
    ids = [str(v) for v in frame["custom_id"]]
    texts = [_content(r) for r in frame["response"]]
    if all(i.isdigit() for i in ids):
        by_index = {int(i): t for i, t in zip(ids, texts, strict=True)}
        if by_index and max(by_index) >= n_items:
            raise invalid(field, f"the batch output's custom_id {max(by_index)} is past the {n_items} items")
        ordered = [by_index.get(k) for k in range(n_items)]
    elif len(texts) == n_items:
        ordered = texts
    else:
        raise invalid(field, f"{len(texts)} batch output rows for {n_items} items, and their custom_ids are "
                             "not item indices")
    _note_missing(field, sum(1 for t in ordered if t is None), n_items)
    return [t or "" for t in ordered]
