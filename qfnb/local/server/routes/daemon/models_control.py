"""The daemon's model-store routes (``qfnb models …``, ``qfnb.local_models``), behind the control token.

``GET /qfnb/models``: the store's models, the running engines (true RSS), the store's size and which
local model answers each cloud model name (``mapping``);
``POST /qfnb/models``: add one (JSON: path or engine, name, roles, template, ctx, keep_alive);
``DELETE /qfnb/models/{name}``: remove one (409 while a service, a job or a request uses it);
``POST /qfnb/models/{name}/unload``: stop its engine now;
``POST /qfnb/models/{name}/export``: write a tuned model (a service, a published model or a finished
fine-tune task) as GGUF (JSON: gguf path, merge, overwrite).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qfnb.local.domain.platform import Platform
from qfnb.local.domain.state.seed_names import mapping
from qfnb.local.domain.training.jobs import ACTIVE
from qfnb.local.engines.adapters.export import check_target, export_gguf
from qfnb.local.engines.store.model_check import NotAModel
from qfnb.protocol.console.enums import ServiceStatus
from qfnb.protocol.platform.daemon import MODELS_ROUTE


def users(platform: Platform, name: str) -> list[str]:
    """What uses model ``name`` now: services built on it, fine-tunes of it, requests on its engine."""
    key = name.lower()
    found = []
    for svc in platform.store.all("services", lambda s: s.get("status") != ServiceStatus.FAILED.value):
        version = platform.store.get("versions", svc["modelVersionId"]) or {}
        if str(version.get("baseModel", "")).lower() == key:
            found.append(f"service {svc['name']}")
    for run in platform.store.all("runs", lambda r: r.get("status") in ACTIVE):
        if str(run.get("baseModel", "")).lower() == key:
            found.append(f"fine-tune {run['sid']}")
    for row in platform.registry.engine_states():
        if str(row["model"]).lower() == key and (row.get("busy") or row.get("queued")):
            found.append(f"{row['busy']} requests on its engine")
    return found


def listing(platform: Platform) -> dict[str, Any]:
    store = platform.registry.store
    mapped = [{"apiType": api, "cloud": cloud, "local": local} for api, cloud, local in mapping(platform.base_models())]
    return {"models": [] if store is None else [m.to_dict() for m in store.models()],
            "running": platform.registry.engine_states(), "store": {} if store is None else store.usage(),
            "mapping": mapped}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


Handler = Callable[[Request], Awaitable[JSONResponse]]


def guarded(allowed: Callable[[Request], bool], handler: Handler) -> Handler:
    """``handler``, answering only requests that ``allowed`` accepts (the control token)."""
    async def endpoint(request: Request) -> JSONResponse:
        if not allowed(request):
            return _error(403, "control token required")
        return await handler(request)
    return endpoint


def routes(allowed: Callable[[Request], bool]) -> list[Route]:
    """The routes, answering only requests that ``allowed`` accepts (the control token)."""
    return [Route(MODELS_ROUTE, guarded(allowed, _list_models), methods=["GET"]),
            Route(MODELS_ROUTE, guarded(allowed, _add_model), methods=["POST"]),
            Route(MODELS_ROUTE + "/{name}", guarded(allowed, _remove_model), methods=["DELETE"]),
            Route(MODELS_ROUTE + "/{name}/unload", guarded(allowed, _unload_model), methods=["POST"]),
            Route(MODELS_ROUTE + "/{name}/export", guarded(allowed, _export_model), methods=["POST"])]


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """``raw`` as a JSON object, or None when it is not one."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def _list_models(request: Request) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(listing, request.app.state.platform))


async def _add_model(request: Request) -> JSONResponse:
    platform: Platform = request.app.state.platform
    body = _json_object(await request.body())
    if body is None:
        return _error(400, "the body must be a JSON object")

    store = platform.registry.store
    if store is None:
        return _error(501, "this platform's engines have no model store")
    name, path = body.get("name"), body.get("path")
    if not isinstance(name, str) or (path is not None and not isinstance(path, str)):
        return _error(400, "name must be a string, and path a string (a model file or dir) when given.")
    taken = await run_in_threadpool(served_elsewhere, platform, store, name)
    if taken:
        return _error(400, taken)
    try:
        entry = await run_in_threadpool(store.add, path, name, **_add_options(body))
    except (NotAModel, ValueError) as exc:
        return _error(400, str(exc))
    await run_in_threadpool(platform.registry.reload_store)
    return JSONResponse(entry.to_dict())


def served_elsewhere(platform: Platform, store: Any, name: str) -> str | None:
    """Why ``name`` cannot name a stored model: it is served already, not from the store (an
    ``--engine`` / ``QFNB_ENGINES`` engine, a bundled model, a service, an alias); else None."""
    key = name.strip().lower()
    if not key or store.get(name) is not None:
        return None  # the store's own checks answer these
    if key in {a.lower() for a in platform.settings.aliases}:
        return f"name {name!r} is an alias (QFNB_MODEL_ALIASES) of a served model; choose another name."
    for model in platform.served():
        if key in (str(model.name).lower(), str(model.endpoint).lower()):
            return (f"name {name!r} is already served here (by {model.name}, an engine given with --engine or "
                    "QFNB_ENGINES, a bundled model or a service); choose another name.")
    return None


def _add_options(body: dict[str, Any]) -> dict[str, Any]:
    """The store's options from an add request; ValueError (a sentence naming the field) for a
    value of the wrong kind."""
    roles = body.get("roles") or ()
    if isinstance(roles, str):
        roles = (roles,)
    if not isinstance(roles, list | tuple) or not all(isinstance(r, str) for r in roles):
        raise ValueError(f"roles must be a list of role names, got {roles!r:.80}.")
    ctx, keep, template, engine = body.get("ctx"), body.get("keep_alive"), body.get("template"), body.get("engine")
    if ctx is not None and (isinstance(ctx, bool) or not isinstance(ctx, int)):
        raise ValueError(f"ctx must be a whole number of tokens, got {ctx!r:.40}.")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int | float)):
        raise ValueError(f"keep_alive must be a number of seconds, got {keep!r:.40}.")
    if template is not None and not isinstance(template, str):
        raise ValueError("template must be the text of a chat template.")
    if engine is not None and not isinstance(engine, str):
        raise ValueError(f"engine must be a URL, got {engine!r:.80}.")
    return {"roles": tuple(roles), "template": template, "ctx": ctx,
            "keep_alive": float(keep) if keep is not None else None, "engine_url": engine}


async def _remove_model(request: Request) -> JSONResponse:
    platform: Platform = request.app.state.platform
    name = request.path_params["name"]
    store = platform.registry.store
    if store is None or store.get(name) is None:
        return _error(404, f"no model named {name!r} in the store")
    using = users(platform, name)
    if using:
        return _error(409, f"{name} is in use ({', '.join(using)}); stop that first")
    freed = await run_in_threadpool(store.remove, name)
    await run_in_threadpool(platform.registry.reload_store)
    return JSONResponse({"removed": name, "freedBytes": freed})


async def _unload_model(request: Request) -> JSONResponse:
    registry = request.app.state.platform.registry
    name = request.path_params["name"]
    stopped = bool(await run_in_threadpool(registry.unload, name))
    return JSONResponse({"model": name, "unloaded": stopped})


def tuned(platform: Platform, name: str) -> tuple[str, str] | str:
    """``(adapter dir, base model)`` of the tuned model ``name``: a service (name or endpoint), a
    published model (its newest version) or a finished fine-tune task id; else why not (a sentence)."""
    key = name.lower()
    store = platform.store
    versions: list[dict[str, Any]] = []
    for svc in store.all("services", lambda s: key in (str(s["name"]).lower(), str(s["uri"]).lower())):
        versions += [v for v in [store.get("versions", svc["modelVersionId"])] if v is not None]
    model_ids = {m["id"] for m in store.all("models", lambda m: str(m.get("modelName", "")).lower() == key)}
    versions += sorted(store.all("versions", lambda v: v.get("modelId") in model_ids),
                       key=lambda v: int(v["id"]), reverse=True)
    runs = store.all("runs", lambda r: str(r.get("sid", "")).lower() == key)
    found = [(str(v["adapterDir"]), str(v["baseModel"])) for v in versions if v.get("adapterDir")]
    found += [(str(r["adapter_dir"]), str(r["baseModel"])) for r in runs if r.get("adapter_dir")]
    if found:
        return found[0]
    if versions:
        return f"{name} is a base model, not a tuned one; export the service or model a fine-tune produced."
    if runs:
        return f"fine-tune task {name} has no adapter yet (it is {runs[0].get('status')}); export it once it is Done."
    return (f"no tuned model named {name!r}: give a service's name or endpoint, a published model's name "
            "or a finished fine-tune task id.")


def export(platform: Platform, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Write tuned model ``name`` to ``body["gguf"]``; ValueError (one sentence) when it cannot be."""
    out = body.get("gguf")
    if not isinstance(out, str) or not out:
        raise ValueError("give the path to write, e.g. --gguf /tmp/my-model.gguf.")
    merge, overwrite = bool(body.get("merge")), bool(body.get("overwrite"))
    check_target(out, overwrite=overwrite)
    found = tuned(platform, name)
    if isinstance(found, str):
        raise ValueError(found)
    adapter_dir, base = found
    try:
        base_gguf = platform.registry.base_gguf(base)
    except LookupError:
        raise ValueError(f"{name}'s base model {base} is no longer served here; add it again to export.") from None
    if base_gguf is None:
        raise ValueError(f"{name}'s base {base} is not a GGUF model served by llama.cpp, so it has no GGUF form "
                         "to export.")
    path = export_gguf(Path(adapter_dir), base_gguf, out, merge=merge, overwrite=overwrite)
    return {"model": name, "gguf": str(path), "merged": merge, "base": base, "baseGguf": str(base_gguf),
            "bytes": path.stat().st_size}


async def _export_model(request: Request) -> JSONResponse:
    body = _json_object(await request.body() or b"{}")
    if body is None:
        return _error(400, "the body must be a JSON object")
    try:
        result = await run_in_threadpool(export, request.app.state.platform, request.path_params["name"], body)
    except ValueError as exc:  # ExportError is one
        return _error(400, str(exc))
    return JSONResponse(result)
