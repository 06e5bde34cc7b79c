"""The model words of ``%qfeval`` (``--models``, ``--judge``, ``--pairwise``): a notebook variable, a
deployed endpoint (``ep_...``, ``endpoint:NAME`` or any endpoint the platform's service list has, such as
a named fine-tune's ``helpdesk_faq_3f2a9c1d``) or a model name, each resolved the way a call would
resolve it, before any inference.

A checkpoint of a deployed fine-tune (``ENDPOINT@best``, ``@last``, ``@step-8``) is asked through its own
adapter; ``@best`` and ``@last`` are tagged with the step they stand for (``helpdesk_faq_3f2a@best
(step 16)``), so a report comparing checkpoints says which is which."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from qfnb._core.runtime import sync
from qfnb.evaluation.llm import as_target
from qfnb.notebook.evaluation.options import EvalArgsError, reason
from qfnb.notebook.models.discovery import endpoint_of
from qfnb.protocol.console import checkpoints
from qfnb.resources import ChatCompletion
from qfnb.resources.console import FineTune, Model, Service
from qfnb.resources.defaults import default_model

log = logging.getLogger("qfnb.notebook.evaluation.targets")

#: Endpoint words: ``ep_...`` (what a deploy names them by default) or an explicit ``endpoint:NAME``.
ENDPOINT_PREFIXES = ("endpoint:", "ep:")


def _endpoint_of(word: str) -> str | None:
    for prefix in ENDPOINT_PREFIXES:
        if word.startswith(prefix):
            return word[len(prefix):].strip() or None
    return word if word.startswith("ep_") else None


def _url_endpoint(entry: Any) -> str:
    """The endpoint of a ``service/list`` entry (the last segment of its url; "" without one)."""
    return endpoint_of(str(entry.get("url") or "") if isinstance(entry, Mapping) else "")


def _known_endpoints(services: Mapping[str, Any]) -> set[str]:
    """Endpoint suffixes in a ``service/list`` result."""
    return {ep for group in ("common", "custom") for entry in services.get(group) or [] if (ep := _url_endpoint(entry))}


async def _aservices(res: Any, name: str) -> Mapping[str, Any] | None:
    """The platform's ``service/list`` (read again when it lacks the endpoint ``name``: deployed
    since it was cached?); None when it cannot be read (no console keys, or the platform failed)."""
    cfg = res.client.config
    if not (cfg.access_key and cfg.secret_key):
        return None
    try:
        services: Mapping[str, Any] = await res.client.list_services()
        if name not in _known_endpoints(services):
            services = await res.client.list_services(refresh=True)
    except Exception as exc:  # the list is a help, not a requirement
        log.warning("could not fetch the platform's service list to look up %r: %s", name, exc)
        return None
    return services


async def _acheck_resource(res: Any, endpoint: str | None) -> None:
    """Resolve ``res`` the way a call would (no inference is sent); an endpoint must be listed
    by the platform's ``service/list`` when that list can be read."""
    await res.aresolve()
    if endpoint is None:
        return
    endpoint = endpoint.partition("@")[0]  # NAME@best, NAME@step-8: a checkpoint of the service NAME
    services = await _aservices(res, endpoint)  # None: no list to check against; the first call will tell
    if services is not None and endpoint not in _known_endpoints(services):
        raise EvalArgsError(f"no deployed service with endpoint {endpoint!r} (the platform lists "
                            f"{len(services.get('custom') or [])} custom service(s))")


async def _alisted(res: Any, endpoint: str) -> Mapping[str, Any] | None:
    """The platform's service-list entry of ``endpoint`` (its part before ``@``), or else of the newest
    service launched under that name (``helpdesk-faq``, the name given at launch); None when the list
    cannot be read or lacks both."""
    name = endpoint.partition("@")[0]
    services = await _aservices(res, name)
    if services is None:
        return None
    custom = list(services.get("custom") or [])
    by_endpoint = next((e for e in custom if _url_endpoint(e) == name), None)
    named = [e for e in custom if str(e.get("name") or "").lower() == name.lower() and _url_endpoint(e)]
    return by_endpoint or (named[-1] if named else None)


def _result(resp: Any) -> dict[str, Any]:
    value = resp.body.get("result")
    return dict(value) if isinstance(value, dict) else {}


async def _acheckpoint_step(res: Any, endpoint: str) -> int | None:
    """The step ``ENDPOINT@best`` / ``ENDPOINT@last`` stands for: the checkpoint the platform routes it
    to, read from the task detail of the run the service was published from (None: unknown)."""
    name, _, which = endpoint.partition("@")
    if which not in ("best", "last"):
        return None
    try:
        entry = await _alisted(res, name)
        if entry is None or entry.get("serviceId") is None:
            return None
        cfg = res.client.config
        service = _result(await Service.aget(entry["serviceId"], config=cfg))
        version = _result(await Model.adetail(service["modelVersionId"], config=cfg))
        run = ((version.get("sourceExtra") or {}).get("trainSourceExtra") or {}).get("runIdStr")
        if not run:
            return None
        detail = _result(await FineTune.V2.atask_detail(task_id=str(run), config=cfg))
        return int(checkpoints.choose(detail.get("checkpointList") or [], which)["step"])
    except Exception as exc:  # the label only: the call itself still goes to the checkpoint
        log.warning("could not tell which step %s is: %s", endpoint, exc)
        return None


def checkpoint_tag(endpoint: str, step: int | None) -> str:
    """The report's name for an endpoint word: ``NAME@best (step 16)`` when ``@best``/``@last`` was
    resolved to a step, else the endpoint as typed (``NAME@step-8`` already says its step)."""
    return endpoint if step is None else f"{endpoint} (step {step})"


def resolve_llm(word: str, namespace: Mapping[str, Any], option: str = "--models") -> tuple[str, Any]:
    """``(tag, llm)`` for one model word: a namespace variable, an endpoint or a model name."""
    if word.isidentifier() and word in namespace:
        value = namespace[word]
        try:
            as_target(value, word)  # the same check EvaluationManager makes
        except ValueError as exc:
            raise EvalArgsError(f"{option}: {word}: {reason(exc)}") from exc
        return word, value
    endpoint = _endpoint_of(word)
    if any(word.startswith(p) for p in ENDPOINT_PREFIXES) and endpoint is None:
        raise EvalArgsError(f"{option}: {word!r} names no endpoint")
    res = ChatCompletion(endpoint=endpoint) if endpoint else ChatCompletion(model=word)
    try:
        sync.run(_acheck_resource(res, endpoint))
    except EvalArgsError as exc:
        raise EvalArgsError(f"{option}: {exc}") from None
    except ValueError as exc:  # qfnb.errors.ValidationError: unknown model
        entry = sync.run(_alisted(res, word)) if endpoint is None else None
        if entry is not None:  # a named fine-tune: its endpoint, or the service launched under that name
            name, at, which = word.partition("@")
            listed = _url_endpoint(entry)
            tag, llm = resolve_llm(f"endpoint:{listed}{at}{which}", namespace, option)
            return tag.replace(listed, name, 1), llm
        hint = "" if endpoint else " (a deployed service goes by its endpoint: ep_... or endpoint:NAME)"
        raise EvalArgsError(f"{option}: {reason(exc)}{hint}") from exc
    if endpoint is not None and "@" in endpoint:
        return checkpoint_tag(endpoint, sync.run(_acheckpoint_step(res, endpoint))), res
    return (endpoint or word), res


def resolve_llms(words: Sequence[str], namespace: Mapping[str, Any]) -> dict[str, Any]:
    dupes = sorted({w for w in words if words.count(w) > 1})
    if dupes:
        raise EvalArgsError(f"--models: {dupes} given more than once")
    found = dict(resolve_llm(w, namespace) for w in words)
    if len(found) < len(words):
        raise EvalArgsError(f"--models: {list(words)} name the same model twice (as {list(found)})")
    return found


def tag_of(word: str | None, words: Sequence[str], llms: Mapping[str, Any]) -> str | None:
    """``--compare``'s word as its tag: ``ep_x@best`` typed names ``ep_x@best (step 16)``."""
    if word is None or len(words) != len(llms):
        return word
    pairs = list(zip(words, llms, strict=True))
    typed = {**{_endpoint_of(w) or w: t for w, t in pairs}, **dict(pairs)}  # `endpoint:X` typed, X compared
    return typed.get(word, word)


def default_chat_model() -> str:
    name = default_model("chat")
    if not name:
        raise EvalArgsError("--models: no default chat model is configured; name one (a model, ep_... or a variable)")
    return name
