"""The local platform's ASGI app: ``create_app(settings, registry)``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from qfnb.local.domain.batch import tasks as batch
from qfnb.local.domain.console import dataset_tasks, evaluation, model_versions
from qfnb.local.domain.platform import Platform
from qfnb.local.domain.records.meter import Meter
from qfnb.local.domain.state.datasets import AppendConflict
from qfnb.local.engines import EngineRegistry
from qfnb.local.engines.api import RegistryLike
from qfnb.local.server.middleware import idempotency, metrics
from qfnb.local.server.middleware.auth import Authenticator, authenticator
from qfnb.local.server.middleware.guard import BodyLimit
from qfnb.local.server.middleware.heartbeat import Heartbeat
from qfnb.local.server.middleware.idempotency import Calls, Idempotent
from qfnb.local.server.routes.calls import anthropic as routes_anthropic
from qfnb.local.server.routes.calls import chat_store as routes_chat_store
from qfnb.local.server.routes.calls import complete as routes_complete
from qfnb.local.server.routes.calls import inference as routes_inference
from qfnb.local.server.routes.calls import models as routes_models
from qfnb.local.server.routes.calls import openai as routes_openai
from qfnb.local.server.routes.calls import responses as routes_responses
from qfnb.local.server.routes.calls import tokens as routes_tokens
from qfnb.local.server.routes.platform import batch as routes_batch
from qfnb.local.server.routes.platform import bos as routes_bos
from qfnb.local.server.routes.platform import console as routes_console
from qfnb.local.server.routes.platform import fine_tuning as routes_fine_tuning
from qfnb.local.server.routes.platform import v2 as routes_v2
from qfnb.local.server.serving import failures
from qfnb.local.server.serving.wire import bce_error
from qfnb.local.settings import Settings
from qfnb.protocol.limits import MAX_UPLOAD_BYTES
from qfnb.protocol.schema import regex as schema_regex

log = logging.getLogger("qfnb.local")


async def bos_object(request: Request) -> Response:
    """Contract 6: signed ``PUT``/``GET``/``HEAD``/``DELETE /bos/{bucket}/{key}`` under
    ``<data_dir>/objects`` (a ``GET`` may carry its signature as ``?authorization=``: a shared link)."""
    platform: Platform = request.app.state.platform
    if (failure := authenticator(request).check_console(request)) is not None:
        return failure
    try:
        path = platform.objects.path(request.path_params["bucket"], request.path_params["key"])
    except ValueError as exc:
        return bce_error(400, "InvalidObjectName", str(exc))
    if request.method == "POST":
        return await _append(platform, request)
    if (other := await routes_bos.delete_or_copy(platform, request)) is not None:
        return other
    if request.method == "PUT":
        # streamed to disk; BodyLimit stops the stream at MAX_UPLOAD_BYTES (the partial file is removed)
        try:
            _, size = await platform.objects.put_stream(request.path_params["bucket"], request.path_params["key"],
                                                        request.stream())
        except (NotADirectoryError, IsADirectoryError, FileExistsError):
            return bce_error(409, "ObjectConflict", "the key conflicts with an existing object or folder "
                             "(an object cannot also be a folder)")
        except OSError as exc:
            if not failures.is_storage_full(exc):
                raise
            return failures.failure_response(request.url.path, exc, platform.settings.data_dir)
        return Response(status_code=200, headers={"ETag": str(size)})
    if not path.is_file():
        return bce_error(404, "NoSuchKey", "The specified key does not exist.")
    return FileResponse(path, media_type="application/octet-stream")


async def _append(platform: Platform, request: Request) -> Response:
    """BOS ``AppendObject`` (``POST /bos/{bucket}/{key}?append&offset=N``): a large upload sent in
    bounded pieces; the answer's ``x-bce-next-append-offset`` is the object's new length."""
    if "append" not in request.query_params:
        return bce_error(400, "InvalidArgument", "POST on an object needs ?append (AppendObject)")
    try:
        offset = int(request.query_params.get("offset") or 0)
    except ValueError:
        return bce_error(400, "InvalidArgument", "offset must be a whole number of bytes")
    try:
        size = await platform.objects.append_stream(request.path_params["bucket"], request.path_params["key"],
                                                    offset, request.stream(), MAX_UPLOAD_BYTES)
    except AppendConflict as exc:
        status = 400 if exc.code == "EntityTooLarge" else 409
        refused = bce_error(status, exc.code, str(exc))
        refused.headers["x-bce-next-append-offset"] = str(exc.length)
        return refused
    except (NotADirectoryError, IsADirectoryError):
        return bce_error(409, "ObjectConflict", "the key conflicts with an existing folder")
    return Response(status_code=200, headers={"x-bce-next-append-offset": str(size), "ETag": str(size)})


async def health(request: Request) -> JSONResponse:
    """Unauthenticated: says the server is up (``ok``, or ``degraded`` with its problems, such as a
    full disk), nothing more (``service/list`` names the models)."""
    return JSONResponse(failures.health(request.app.state.platform.settings.data_dir))


async def no_such_route(request: Request, exc: Exception) -> Response:
    """An unknown route (404) or method (405), answered as JSON in the shape of the API its path
    belongs to (:func:`failures.unknown_route`), never Starlette's plain text."""
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    return failures.unknown_route(request.method, request.url.path, 405 if status == 405 else 404)


class CatchAll:
    """ASGI middleware, the request shell: an unhandled error becomes a 500 in the route's own error
    format, with no internals in it (they go to the log), and the connection stays usable; with a
    ``meter`` (observing), each request is followed for ``/metrics`` and the trace table
    (:class:`~qfnb.local.server.middleware.metrics.Observation`, its 500 included): its status noted as it
    starts, its call recorded just before its last byte."""

    def __init__(self, app: Any, meter: Meter | None = None) -> None:
        self.app, self.meter = app, meter

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watch = metrics.Observation(scope, self.meter) if self.meter is not None else None
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if watch is not None:
                    watch.status = message["status"]
            elif not message.get("more_body", False) and watch is not None and message["type"] == "http.response.body":
                watch.record()  # before the last byte: a client that read its answer sees it counted
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.exception("unhandled error on %s %r", scope.get("method"), scope.get("path"))
            if started:
                raise
            app = scope.get("app")
            data_dir = app.state.platform.settings.data_dir if app is not None else None
            await failures.failure_response(str(scope.get("path", "")), exc, data_dir)(scope, receive, tracking_send)
        finally:
            if watch is not None:
                watch.close()


def create_app(settings: Settings | None = None, registry: RegistryLike | None = None, *,
               platform: Platform | None = None, extra_routes: list[Any] | None = None,
               observe: bool | None = None) -> Starlette:
    """The app. ``settings`` default to the environment's; ``registry`` to the real engines;
    ``extra_routes`` are added as they are (the daemon's control routes); ``observe=False`` leaves
    the calls uncounted and untraced (the benches' baseline; default: the settings' ``observe``)."""
    if platform is None:
        settings = settings or Settings.from_env()
        # the real engines (qfnb.local.engines, the local extra) unless a registry is given
        platform = Platform(settings, registry if registry is not None else EngineRegistry(
            settings.data_dir, options=settings.engine_options))

    if observe is None:
        observe = platform.settings.observe

    calls = Calls(grace=platform.settings.retry_grace)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        platform.startup()
        # the schema checks' imports, before serving and off the event loop: the first schema call would do them
        # on it (or wait on the import lock for a thread doing them), /healthz and every other call stalled
        await asyncio.to_thread(schema_regex.warm)
        model_versions.ensure_presets(platform)
        dataset_tasks.recover_imports(platform)
        evaluation.recover(platform)
        batch.recover(platform)
        log.info("local platform ready: data in %s", platform.settings.data_dir)
        try:
            yield
        finally:
            calls.close()
            await asyncio.to_thread(batch.drain, platform)  # before the engines stop: what they answer is written
            platform.shutdown()

    routes: list[Any] = [
        *routes_tokens.routes(), *routes_inference.routes(), *routes_openai.routes(), *routes_chat_store.routes(),
        *routes_responses.routes(),
        *routes_anthropic.routes(), *routes_console.routes(), *routes_v2.routes(),
        *routes_models.routes(), *routes_complete.routes(platform),
        *routes_fine_tuning.routes(), *routes_batch.routes(), *routes_bos.routes(),
        Route("/bos/{bucket}/{key:path}", bos_object, methods=["PUT", "GET", "POST", "DELETE"]),
        Route("/healthz", health, methods=["GET"]),
        *metrics.routes(platform), *idempotency.routes(calls),
        *(extra_routes or []),
    ]
    # keyed model calls outermost: a retry served from its first attempt is not counted again
    middleware = [Middleware(Idempotent, calls=calls),
                  Middleware(CatchAll, meter=platform.meter if observe else None), Middleware(BodyLimit),
                  Middleware(Heartbeat, every=platform.settings.heartbeat)]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                    exception_handlers={404: no_such_route, 405: no_such_route})
    app.state.platform = platform
    app.state.auth = Authenticator(platform.store, platform.settings.credentials, platform.settings.token_ttl)
    return app
