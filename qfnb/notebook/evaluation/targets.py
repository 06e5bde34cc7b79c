"""The model words of ``%qfeval`` (``--models``, ``--judge``, ``--pairwise``): a notebook variable, a
deployed endpoint (``ep_...`` or ``endpoint:NAME``, checked against the platform's service list) or a
model name, each resolved the way a call would resolve it, before any inference."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from qfnb._core.runtime import sync
from qfnb.evaluation.llm import as_target
from qfnb.notebook.evaluation.options import EvalArgsError, reason
from qfnb.resources import ChatCompletion
from qfnb.resources.defaults import default_model

log = logging.getLogger("qfnb.notebook.evaluation.targets")

#: Endpoint words: ``ep_...`` (what a deploy names them by default) or an explicit ``endpoint:NAME``.
ENDPOINT_PREFIXES = ("endpoint:", "ep:")


def _endpoint_of(word: str) -> str | None:
    for prefix in ENDPOINT_PREFIXES:
        if word.startswith(prefix):
            return word[len(prefix):].strip() or None
    return word if word.startswith("ep_") else None


def _known_endpoints(services: Mapping[str, Any]) -> set[str]:
    """Endpoint suffixes in a ``service/list`` result (the last segment of each entry's url)."""
    found: set[str] = set()
    for group in ("common", "custom"):
        for entry in services.get(group) or []:
            url = str(entry.get("url") or "") if isinstance(entry, Mapping) else ""
            if url:
                found.add(url.split("?")[0].rstrip("/").rsplit("/", 1)[-1])
    return found


async def _acheck_resource(res: Any, endpoint: str | None) -> None:
    """Resolve ``res`` the way a call would (no inference is sent); an endpoint must be listed
    by the platform's ``service/list`` when that list can be read."""
    await res.aresolve()
    if endpoint is None:
        return
    endpoint = endpoint.partition("@")[0]  # NAME@best, NAME@step-8: a checkpoint of the service NAME
    cfg = res.client.config
    if not (cfg.access_key and cfg.secret_key):
        return  # no console keys: the service list cannot be read; the first call will tell
    try:
        services = await res.client.list_services()
        if endpoint not in _known_endpoints(services):  # deployed since the list was cached?
            services = await res.client.list_services(refresh=True)
    except Exception as exc:  # the list is a help, not a requirement
        log.warning("could not fetch the platform's service list to check %r: %s", endpoint, exc)
        return
    if endpoint not in _known_endpoints(services):
        raise EvalArgsError(f"no deployed service with endpoint {endpoint!r} (the platform lists "
                            f"{len(services.get('custom') or [])} custom service(s))")


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
        hint = "" if endpoint else " (a deployed service goes by its endpoint: ep_... or endpoint:NAME)"
        raise EvalArgsError(f"{option}: {reason(exc)}{hint}") from exc
    return (endpoint or word), res


def resolve_llms(words: Sequence[str], namespace: Mapping[str, Any]) -> dict[str, Any]:
    if not words:
        raise EvalArgsError("--models: give at least one model (a name, an ep_... endpoint or a variable)")
    dupes = sorted({w for w in words if words.count(w) > 1})
    if dupes:
        raise EvalArgsError(f"--models: {dupes} given more than once")
    return dict(resolve_llm(w, namespace) for w in words)


def default_chat_model() -> str:
    name = default_model("chat")
    if not name:
        raise EvalArgsError("--models: no default chat model is configured; name one (a model, ep_... or a variable)")
    return name
