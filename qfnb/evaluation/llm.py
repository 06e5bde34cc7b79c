"""Turn whatever the user passes as an "llm" into something that answers a list of inputs.

Accepted: a ``ChatCompletion`` / ``Completion`` resource (run through its ``abatch_do`` with a
bounded worker count), a ``qfnb.model.Service`` (its resource), a ``qfnb.model.Model`` that can
execute, or any callable ``f(input) -> str | response`` (sync or async). Failures are kept per
row (as exceptions), never raised for the whole batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qfnb._core.backend.discovery import read_runtime
from qfnb._core.config import Config
from qfnb._core.record.traces import item_scope
from qfnb._core.runtime.progress import ProgressArg
from qfnb.protocol.console.model_names import LOCAL_DEFAULT_MODELS
from qfnb.resources import ChatCompletion
from qfnb.resources.defaults import default_model

from ._errors import invalid
from .base import EvalInput
from .call_keys import call_key, current_item_keys
from .fingerprint import fingerprint

log = logging.getLogger("qfnb.evaluation")

Answer = str | BaseException
#: ``run(inputs, worker_num, infer_kwargs, progress)``; ``progress`` is a Contract 8 callback, or
#: ``False``/``None`` for none.
BatchFn = Callable[[Sequence[EvalInput], int, Mapping[str, Any], Any], Awaitable[list[Answer]]]


@dataclass(frozen=True)
class LLMTarget:
    """A model under evaluation: its tag (a column / row label) and how to run a batch."""

    tag: str
    run: BatchFn
    source: Any = None


def response_text(resp: Any) -> str:
    """The generated text of an inference response (v1 ``result``, v2 ``choices``) or a str."""
    if isinstance(resp, str):
        return resp
    getters: tuple[Callable[[Any], Any], ...] = (lambda r: r["result"], lambda r: r["choices"][0]["message"]["content"],
                                                  lambda r: r["choices"][0]["text"])
    for getter in getters:
        try:
            value = getter(resp)
        except (KeyError, IndexError, TypeError, AttributeError):
            continue
        if value is not None:
            return str(value)
    raise TypeError(f"cannot find the generated text in a {type(resp).__name__} response")


def as_messages(item: EvalInput) -> list[dict[str, Any]]:
    if isinstance(item, str):
        return [{"role": "user", "content": item}]
    return [dict(m) for m in item]


def as_prompt(item: EvalInput) -> str:
    if isinstance(item, str):
        return item
    users = [str(m.get("content", "")) for m in item if m.get("role") == "user"]
    return users[-1] if users else ""


def is_async_callable(fn: Any) -> bool:
    """Whether calling ``fn`` returns a coroutine (an ``async def`` function or ``__call__``)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(vars(type(fn)).get("__call__"))


async def acall(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, awaited when it is async, else in a worker thread (the loop never blocks)."""
    if is_async_callable(fn):
        return await fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)


def resource_kind(obj: Any) -> str | None:
    """``"chat"`` / ``"completion"`` for qfnb inference resources (by the names of its classes)."""
    names = {c.__name__ for c in type(obj).__mro__}
    if "ChatCompletion" in names:
        return "chat"
    if "Completion" in names:
        return "completion"
    return None


def resource_tag(res: Any) -> str:
    for attr in ("model", "endpoint"):
        value = getattr(res, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(res).__name__


def _answer(result: Any) -> Answer:
    """A batch result as an answer: its text, or the error it is (or that reading its text raised)."""
    if isinstance(result, BaseException):
        return result
    try:
        return response_text(result)
    except TypeError as exc:
        return exc


def _resource_runner(res: Any, kind: str) -> BatchFn:
    async def run(inputs: Sequence[EvalInput], workers: int, kwargs: Mapping[str, Any],
                  progress: ProgressArg = None) -> list[Answer]:
        if not inputs:
            return []
        items = [as_messages(i) for i in inputs] if kind == "chat" else [as_prompt(i) for i in inputs]
        keys = current_item_keys(len(items))
        try:
            if keys is None:
                results = await res.abatch_do(items, worker_num=workers, progress=progress, **kwargs)
            else:  # each item's call keyed by what it asks: a restarted kernel's rerun takes the kept answer
                rows = [{res.batch_field: item} for item in items]
                keyed = [{**row, "idempotency_key": call_key(key, {**kwargs, **row})}
                         for key, row in zip(keys, rows, strict=True)]
                results = await res.abatch_do(body_list=keyed, worker_num=workers, progress=progress, **kwargs)
        except Exception as exc:  # the whole batch failed: every row records why
            log.warning("batch inference failed for %s: %s", resource_tag(res), exc)
            return [exc for _ in inputs]
        return [_answer(r) for r in results]

    return run


def _callable_runner(fn: Callable[..., Any]) -> BatchFn:
    async def run(inputs: Sequence[EvalInput], workers: int, kwargs: Mapping[str, Any],
                  progress: ProgressArg = None) -> list[Answer]:
        gate = asyncio.Semaphore(max(1, workers))
        bar = None if isinstance(progress, bool) else progress  # the caller owns the bar: False = none

        async def one(index: int, item: EvalInput) -> Answer:
            async with gate:
                answer: Answer
                try:
                    with item_scope(index):  # an evaluation item's span: its calls nest under it
                        value = await acall(fn, item, **kwargs)
                    answer = response_text(value)
                except Exception as exc:
                    answer = exc
            if bar is not None:
                bar.on_result(index, not isinstance(answer, BaseException))
            return answer

        return list(await asyncio.gather(*(one(i, item) for i, item in enumerate(inputs))))

    return run


#: where a prompt template takes the item's text
INPUT_PLACEHOLDER = "{input}"


@dataclass(frozen=True)
class PromptVariant:
    """A prompt under evaluation, answered by ``model``: a template whose ``{input}`` each item fills
    (the last user turn of a conversation), or, without ``{input}``, a system prompt sent with every
    item (a completion model gets it as the text's first paragraph). Compared like models; the answer
    store keys it by the prompt's text and the model (:func:`target_identity`)."""

    prompt: str
    model: Any

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise invalid("prompts", "a prompt must be a non-empty string")

    @property
    def is_template(self) -> bool:
        return INPUT_PLACEHOLDER in self.prompt

    def fill(self, item: EvalInput) -> EvalInput:
        """The item as this template asks it (a system prompt leaves it as it is)."""
        if not self.is_template:
            return item
        if isinstance(item, str):
            return self.prompt.replace(INPUT_PLACEHOLDER, item)
        turns = [dict(m) for m in item]
        last = max((k for k, m in enumerate(turns) if m.get("role") == "user"), default=None)
        if last is not None:
            turns[last]["content"] = self.prompt.replace(INPUT_PLACEHOLDER, str(turns[last].get("content", "")))
        return turns

    def target(self, tag: str) -> LLMTarget:
        inner = as_target(self.model, tag)
        chat = resource_kind(getattr(inner, "source", None)) != "completion"

        async def run(inputs: Sequence[EvalInput], workers: int, kwargs: Mapping[str, Any],
                      progress: ProgressArg = None) -> list[Answer]:
            items = [self.fill(i) for i in inputs]
            if self.is_template:
                return await inner.run(items, workers, kwargs, progress)
            if chat:
                return await inner.run(items, workers, {**kwargs, "system": self.prompt}, progress)
            return await inner.run([f"{self.prompt}\n\n{as_prompt(i)}" for i in items], workers, kwargs, progress)

        return LLMTarget(tag, run, self)


def _default_tag(llm: Any) -> str:
    """Official-style tags: Service ``{id}_{endpoint}``, Model ``{model_set_id}_{version_id}_{name}``."""
    from qfnb.model import Model, Service  # deferred: loads pydantic (`import qfnb.evaluation` does not)

    if isinstance(llm, Service):
        parts = [llm.id, llm.endpoint]
        return "_".join(str(p) for p in parts if p not in (None, "")) or "service"
    if isinstance(llm, Model):
        parts = [llm.model_set_id or llm.set_id, llm.version_id, llm.name]
        return "_".join(str(p) for p in parts if p not in (None, "")) or "model"
    if resource_kind(llm):
        return resource_tag(llm)
    return str(getattr(llm, "__name__", None) or type(llm).__name__)


def as_target(llm: Any, tag: str | None = None) -> LLMTarget:
    """Wrap ``llm`` (see the module docstring); ``tag`` defaults to an official-style tag."""
    if isinstance(llm, PromptVariant):
        return llm.target(tag or "prompt")
    tag = tag or _default_tag(llm)
    from qfnb.model import Model  # deferred: loads pydantic (`import qfnb.evaluation` does not)

    if isinstance(llm, Model):  # a published Model runs via its deployed service
        if llm.service is None:
            raise invalid("llms", f"model {tag!r} has no deployed service: deploy it (model.deploy(...)) "
                                  "or evaluate it on the platform with qianfan_evaluators")
        return LLMTarget(tag, as_target(llm.service, tag).run, llm)
    kind = resource_kind(llm)
    if kind and hasattr(llm, "abatch_do"):
        return LLMTarget(tag, _resource_runner(llm, kind), llm)
    get_res = getattr(llm, "get_res", None)
    if callable(get_res):  # a deployed Service: evaluate through its inference resource
        res = get_res()
        kind = resource_kind(res)
        if kind is None:
            raise invalid("llms", f"service {tag!r} does not serve chat or completions")
        return LLMTarget(tag, _resource_runner(res, kind), llm)
    if callable(llm):
        return LLMTarget(tag, _callable_runner(llm), llm)
    raise invalid("llms", f"cannot run {type(llm).__name__!r}: pass a ChatCompletion, Completion, "
                          "Service, Model or a callable input -> text")


def embedded_chat(model: str | None = None) -> ChatCompletion:
    """A ``ChatCompletion`` on the embedded local platform (offline), even when cloud credentials
    are configured: the default judge. ``model`` defaults to the default chat model, named, so the
    judge's scores say which model gave them."""
    return ChatCompletion(model=model or _embedded_default(), config=Config())


def _embedded_default() -> str | None:
    """The embedded platform's default chat model, whatever cloud key is set: the environment's default
    with a v2 key is a cloud model the local platform does not serve (every judged item failed). With
    credentials set it is read from the running daemon, or the built-in choice, never by starting one."""
    if not Config.from_env().is_configured:
        return default_model("chat") or None  # the embedded platform's, as the user's own calls find it
    running = read_runtime()
    return (running.default_models if running is not None else {}).get("chat") or LOCAL_DEFAULT_MODELS["chat"]


def as_targets(llms: Any) -> list[LLMTarget]:
    """``llms`` as a list (or a ``{tag: llm}`` mapping) of targets with unique tags."""
    if llms is None or (isinstance(llms, Sequence | Mapping) and not isinstance(llms, str) and len(llms) == 0):
        raise invalid("llms", "at least one model is required")
    if isinstance(llms, Mapping):
        pairs: list[tuple[str | None, Any]] = [(str(k), v) for k, v in llms.items()]
    elif isinstance(llms, Sequence) and not isinstance(llms, str):
        pairs = [(None, v) for v in llms]
    else:
        pairs = [(None, llms)]
    targets: list[LLMTarget] = []
    seen: dict[str, int] = {}
    for tag, llm in pairs:
        target = as_target(llm, tag)
        n = seen.get(target.tag, 0)
        seen[target.tag] = n + 1
        if n:
            target = LLMTarget(f"{target.tag}#{n + 1}", target.run, target.source)
        targets.append(target)
    return targets


# -- what answers a target -----------------------------------------------------------------------

def _platform(obj: Any) -> str:
    """Which platform answers ``obj``'s calls: ``embedded`` (no credentials configured) or the
    configured base URL (never a credential)."""
    for attr in ("given_config", "config"):
        cfg = getattr(obj, attr, None)
        if cfg is not None and hasattr(cfg, "is_configured"):
            return str(cfg.base_url) if cfg.is_configured else "embedded"
    return "env" if any(k.startswith("QIANFAN_") for k in os.environ) else "embedded"


def _model_identity(obj: Any) -> str | None:
    """``endpoint:NAME@platform`` / ``model:NAME@platform`` for what answers through ``obj``, else None."""
    service = getattr(obj, "service", None)  # a published Model runs on its service
    for one in (obj, service):
        if one is None:
            continue
        value = getattr(one, "endpoint", None)
        if isinstance(value, str) and value:
            return f"endpoint:{value}@{_platform(one)}"
    if obj is not None and resource_kind(obj) is not None:
        return f"model:{resource_tag(obj)}@{_platform(obj)}"
    return None


def target_identity(target: LLMTarget) -> str:
    """What answers a target's calls: ``endpoint:NAME`` (a deployed service, whichever object
    reaches it) or ``model:NAME`` on a platform (``@embedded`` / ``@base-url``); for a callable,
    its qualified name and a digest of what it is (:mod:`.fingerprint`: code, closure, attributes),
    or what it says it is (``answer_identity()``); a prompt variant, its prompt's digest and its model."""
    src = target.source
    if isinstance(src, PromptVariant):
        digest = hashlib.sha256(src.prompt.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return f"prompt:{digest}|{target_identity(as_target(src.model, target.tag))}"
    model = _model_identity(src)
    if model is not None:
        return model
    own = getattr(src, "answer_identity", None)
    if callable(own):
        return str(own())
    if callable(src):
        fn = getattr(src, "__func__", src)
        name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        return f"callable:{getattr(fn, '__module__', '')}.{name}#{fingerprint(src, _model_identity)}"
    return f"tag:{target.tag}"
