"""An evaluation's generations through the platform's durable batch job (``%qfeval --batch``).

Each model's answers that the :class:`~.answers.AnswerStore` lacks go as one batch-inference task
(:class:`~qfnb.resources.batch_job.BatchJob`). The task runs on the platform, so a kernel restart
loses nothing: the same rows, model and parameters have the same fingerprint, and a second submit
re-attaches to the task still running (or reuses the one that ended Done) instead of sending them
again. The answers a task wrote go into the store under the keys a live run would use, so the
evaluation then scores them from the store without calling any model, and a stopped task's finished
rows are kept (the next run sends only the rest).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qfnb.resources.batch_job import BatchJob
from qfnb.resources.targets import JobTarget

from .._errors import invalid
from ..base import EvalInput
from ..llm import PromptVariant, as_messages, as_target, resource_kind, target_identity
from .answers import AnswerStore, answer_key

__all__ = ["BatchPart", "batch_parts", "check_batchable", "harvest"]


def _chat_resource(tag: str, llm: Any) -> tuple[Any, PromptVariant | None]:
    """The platform chat resource that answers ``llm`` (and its prompt variant), or an error naming ``tag``."""
    variant = llm if isinstance(llm, PromptVariant) else None
    res = variant.model if variant is not None else llm
    if resource_kind(res) != "chat" or not (res.model or res.endpoint):
        what = ("a notebook function" if callable(res) and resource_kind(res) is None
                else f"a {type(res).__name__}")
        raise invalid("batch", f"{tag} is {what}: a batch job runs platform chat models (a model name or an "
                               "ep_... endpoint); evaluate it without --batch")
    return res, variant


def check_batchable(llms: Mapping[str, Any]) -> None:
    """Every model can go through a batch job (before anything is sent)."""
    for tag, llm in llms.items():
        _chat_resource(tag, llm)


def _body(item: EvalInput, variant: PromptVariant | None) -> dict[str, Any]:
    """One row's request, as the live call asks it (a prompt variant's template filled, or its system prompt)."""
    messages = as_messages(variant.fill(item) if variant is not None else item)
    if variant is not None and not variant.is_template:
        messages = [{"role": "system", "content": variant.prompt}, *messages]
    return {"messages": messages}


@dataclass
class BatchPart:
    """One model's rows for a batch job: the answer-store key and request of each row it lacks."""

    tag: str
    identity: str
    model: str | None
    endpoint: str | None
    keys: list[str]
    bodies: list[dict[str, Any]]
    #: answers the store already held (not sent)
    stored: int
    job: BatchJob | None = None

    def submit(self, params: Mapping[str, Any], *, reuse: bool, target: JobTarget | None = None) -> BatchJob:
        """The task of these rows: a new one, or (``reuse``) the running or finished one of the same rows;
        ``target``: where it runs (:mod:`qfnb.resources.targets`; on a cluster a stopped job resumes)."""
        self.job = BatchJob.submit(self.bodies, model=self.model, endpoint=self.endpoint,
                                   name=f"qfeval-{self.tag}"[:60], inference_params=dict(params), reuse=reuse,
                                   attach=reuse, target=target)
        return self.job


def batch_parts(llms: Mapping[str, Any], inputs: Sequence[EvalInput], *, repeats: int,
                infer_kwargs: Mapping[str, Any], store: AnswerStore) -> builtins.list[BatchPart]:
    """Per model, the rows (repeat-major, as a live run asks them) whose answers ``store`` lacks."""
    parts = []
    for tag, llm in llms.items():
        res, variant = _chat_resource(tag, llm)
        identity = target_identity(as_target(llm, tag))
        jobs = [(r, i) for r in range(repeats) for i in range(len(inputs))]
        keys = [answer_key(identity, inputs[i], infer_kwargs, r) for r, i in jobs]
        held = store.get_many(keys)
        todo = [(k, i) for k, (_, i) in zip(keys, jobs, strict=True) if k not in held]
        parts.append(BatchPart(tag, identity, res.model, res.endpoint,
                               [k for k, _ in todo], [_body(inputs[i], variant) for _, i in todo], len(held)))
    return parts


def harvest(part: BatchPart, store: AnswerStore) -> tuple[int, builtins.list[str]]:
    """Put the answers ``part``'s task wrote into ``store``: how many, and the errors of the rows that failed
    or never ran (they are asked again by the next run)."""
    assert part.job is not None
    answers: dict[str, str] = {}
    errors: builtins.list[str] = []
    for key, value in zip(part.keys, part.job.results(), strict=False):  # a row past the keys is not ours
        if value is None or isinstance(value, BaseException):
            errors.append("not run" if value is None else str(value))
        else:
            answers[key] = str(value.result)
    store.put_many(part.identity, answers)
    return len(answers), errors
