"""The shared machinery of the inference resources: config, model → endpoint, the
request body, and the do/ado/stream/batch shells (sync is a thin shell over async).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from qfnb._core.config import Config, resolve_config
from qfnb._core.errors import ValidationError
from qfnb._core.http.client import AsyncQianfanClient, get_client
from qfnb._core.http.response import QfResponse
from qfnb._core.http.retry import RetryPolicy, batch_verdict
from qfnb._core.runtime import sync
from qfnb._core.runtime.progress import ProgressArg, ProgressCallback, make_progress
from qfnb.protocol import routes
from qfnb.protocol.errors import ProtocolError

from ..batch_job import submit_durable
from . import batch as _batch
from ._call import blocking_doc, call_params

__all__ = ["BaseInference", "Target", "blocking_doc", "call_params", "resolve_target"]

logger = logging.getLogger("qfnb.resources")

REQUEST_SOURCE = "qfnb_py_sdk_v0.1.0"
#: call kwargs that configure the SDK and are never sent in the body
_RETRY_KWARGS = ("retry_count", "request_timeout", "backoff_factor", "retry_jitter", "retry_max_wait_interval",
                 "retry_err_codes")
_LOCAL_KWARGS = frozenset({"model", "endpoint", "stream", "request_id", "show_total_latency", "with_decode",
                           "truncate_overlong_msgs", "auto_concat_truncate", "truncated_continue_prompt",
                           "adapt_openai_message_format",
                           "retry_err_handler", *_RETRY_KWARGS})


@dataclass(frozen=True)
class Target:
    """Where a call goes: ``api_type`` and endpoint suffix (``chat``, ``ernie-lite-8k``)."""

    api_type: str
    endpoint: str
    model: str | None = None


def _services_index(services: dict[str, Any] | None) -> dict[str, tuple[str, str]]:
    """``{lower(name): (api_type, endpoint)}`` from a ``service/list`` result."""
    index: dict[str, tuple[str, str]] = {}
    for group in ("common", "custom"):
        for entry in (services or {}).get(group) or []:
            if not isinstance(entry, dict):
                continue
            name, url = entry.get("name") or entry.get("serviceName"), entry.get("url") or ""
            parts = [p for p in str(url).split("?")[0].split("/") if p]
            if name and len(parts) >= 2 and parts[-2] in routes.API_TYPES:
                api = entry.get("apiType") or parts[-2]
                index.setdefault(str(name).lower(), (str(api), parts[-1]))
    return index


def resolve_target(api_types: tuple[str, ...], model: str | None, endpoint: str | None, *,
                   default_model: str | None, services: dict[str, Any] | None) -> Target | None:
    """Pure: the target for ``model``/``endpoint``. None means "not known without the dynamic list".

    ``endpoint`` wins (a custom service under the first api type). A model name is looked up
    case-insensitively in the dynamic list first, then in the built-in catalog.
    """
    if endpoint:
        return Target(api_types[0], endpoint.strip("/"))
    name = model or default_model
    if not name:
        raise ValidationError("model", f"no model given and no default for {api_types[0]}")
    found = _services_index(services).get(name.lower())
    if found is not None and found[0] in api_types:
        return Target(found[0], found[1], name)
    for api in api_types:
        ep = routes.builtin_endpoint(api, name)
        if ep is not None:
            return Target(api, ep, name)
    return None


class BaseInference:
    """Common shell. Subclasses set ``api_types`` and implement :meth:`_body`."""

    api_types: ClassVar[tuple[str, ...]] = ("chat",)
    #: name of the per-item field in ``batch_do``'s first argument
    batch_field: ClassVar[str] = "messages"
    default_retry: ClassVar[dict[str, Any]] = {}

    def __init__(self, model: str | None = None, endpoint: str | None = None, *, config: Config | None = None,
                 **config_kwargs: Any) -> None:
        self._model = model
        self._endpoint = endpoint
        try:
            self._base_config = (config.with_overrides(**config_kwargs) if config is not None
                                 else Config.from_env(**config_kwargs))
        except TypeError as exc:
            raise TypeError(f"{type(self).__name__}(): {exc}") from None
        self._config: Config | None = None
        self._client: AsyncQianfanClient | None = None
        self._targets: dict[tuple[str | None, str | None], Target] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self._model!r}, endpoint={self._endpoint!r})"

    @classmethod
    def models(cls) -> set[str]:
        """Built-in model names for this resource (the platform may serve more: pass any name
        its ``service/list`` knows, or ``endpoint=``)."""
        names: set[str] = set()
        for api in cls.api_types:
            names.update(routes.model_catalog().get(api, {}).get("models", {}))
        return names

    # ------------------------------------------------------------------ plumbing
    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = resolve_config(self._base_config)
        return self._config

    @property
    def client(self) -> AsyncQianfanClient:
        client = self._client
        if client is None:
            client = self._client = get_client(self.config)
        return client

    def _default_model(self) -> str | None:
        cfg = self.config
        for api in self.api_types:
            name = cfg.default_models.get(api)
            if name:
                return name
        return routes.default_model(self.api_types[0])

    async def _target(self, model: str | None, endpoint: str | None) -> Target:
        model = model or self._model
        endpoint = endpoint or (None if model else self._endpoint)
        key = (model, endpoint)
        found = self._targets.get(key)
        if found is not None:
            return found
        client = self.client
        kwargs = {"default_model": self._default_model()}
        target = resolve_target(self.api_types, model, endpoint, services=client.cached_services(), **kwargs)
        listing_error: Exception | None = None
        if target is None and client.config.access_key and client.config.secret_key:
            try:
                # a miss against a cached list refreshes it once: a service may have been deployed since
                services = await client.list_services(refresh=client.cached_services() is not None)
            except Exception as exc:  # the dynamic list is a help, not a requirement
                logger.warning("could not fetch the platform's model list: %s", exc)
                services, listing_error = None, exc
            target = resolve_target(self.api_types, model, endpoint, services=services, **kwargs)
        if target is None:
            name = model or kwargs["default_model"]
            where = (f"not in the built-in catalog, and the platform's service list could not be fetched "
                     f"({type(listing_error).__name__}: {listing_error})" if listing_error is not None
                     else "not in the built-in catalog nor the platform's service list")
            raise ValidationError("model", f"unknown model {name!r} for {'/'.join(self.api_types)}: {where}; "
                                           "pass endpoint=... for a custom service") from listing_error
        self._targets[key] = target
        return target

    async def aresolve(self, model: str | None = None, endpoint: str | None = None) -> Target:
        """Where a call would go, without sending it: an unknown model raises ``ValidationError``
        (after the platform's ``service/list`` is consulted, as a call would)."""
        return await self._target(model, endpoint)

    def resolve(self, model: str | None = None, endpoint: str | None = None) -> Target:
        """Blocking :meth:`aresolve`."""
        return sync.run(self.aresolve(model, endpoint))

    def _retry(self, kwargs: dict[str, Any]) -> RetryPolicy | None:
        opts = {k: kwargs[k] for k in _RETRY_KWARGS if kwargs.get(k) is not None}
        if not opts and not self.default_retry:
            return None
        base = RetryPolicy.inference(self.config)
        return base.with_options(**{**self.default_retry, **opts})

    def _body(self, target: Target, kwargs: dict[str, Any]) -> tuple[Target, dict[str, Any]]:
        """Validate and build the wire body (raise ProtocolError on bad input)."""
        raise NotImplementedError

    def _postprocess(self, resp: QfResponse, kwargs: dict[str, Any], target: Target) -> QfResponse:
        return resp

    @staticmethod
    def _wire_body(kwargs: dict[str, Any], stream: bool) -> dict[str, Any]:
        body = {k: v for k, v in kwargs.items() if k not in _LOCAL_KWARGS and v is not None}
        body["stream"] = stream
        extra = body.get("extra_parameters")
        body["extra_parameters"] = {**extra, "request_source": REQUEST_SOURCE} if isinstance(extra, dict) else {
            "request_source": REQUEST_SOURCE}
        return body

    # ------------------------------------------------------------------ async API
    async def ado(self, *args: Any, **kwargs: Any) -> Any:
        """Call the model (each resource declares its own parameters)."""
        raise NotImplementedError

    async def _acall(self, params: dict[str, Any]) -> QfResponse | AsyncIterator[QfResponse]:
        """The one implementation of a call: ``params`` as :func:`call_params` gives them;
        a :class:`QfResponse`, or (``stream=True``) an async iterator of chunks."""
        stream = params.get("stream", False)
        if not isinstance(stream, bool):
            raise ValidationError("stream", f"must be a bool, got {type(stream).__name__}")
        target = await self._target(params.get("model"), params.get("endpoint"))
        try:
            target, body = self._body(target, params)
        except ValidationError:
            raise
        except ProtocolError as exc:
            raise ValidationError(exc.field, str(exc).split(": ", 1)[-1], exc.code) from None
        result = await self._send(target, body, stream, params)
        if stream:
            return self._stream_post(result, params, target)
        return self._postprocess(result, params, target)

    async def _acall_one(self, params: dict[str, Any]) -> QfResponse:
        """:meth:`_acall` for a resource that never streams."""
        resp = await self._acall(params)
        assert isinstance(resp, QfResponse)  # _body refuses stream=True
        return resp

    async def _send(self, target: Target, body: dict[str, Any], stream: bool, kwargs: dict[str, Any]) -> Any:
        client = self.client
        tokens = _estimate_body_tokens(body) if client.needs_token_estimates() else 0
        verbatim = client.config.use_custom_endpoint and target.model is None  # endpoint= used as the full path
        endpoint = target.endpoint if verbatim else target.endpoint.removeprefix(f"{target.api_type}/")
        return await client.infer("" if verbatim else target.api_type, endpoint, body, stream=stream,
                                  retry=self._retry(kwargs), request_id=kwargs.get("request_id"), tokens=tokens)

    async def _stream_post(self, chunks: AsyncIterator[QfResponse], kwargs: dict[str, Any],
                           target: Target) -> AsyncIterator[QfResponse]:
        async for chunk in chunks:
            yield self._postprocess(chunk, kwargs, target)

    # ------------------------------------------------------------------ sync API
    def do(self, *args: Any, **kwargs: Any) -> Any:
        """Blocking :meth:`ado` (each resource declares its own parameters)."""
        raise NotImplementedError

    @staticmethod
    def _blocking(call: Coroutine[Any, Any, QfResponse | AsyncIterator[QfResponse]]
                  ) -> QfResponse | Iterator[QfResponse]:
        """Run an ``ado`` call on qfnb's background loop (safe inside Jupyter); a stream
        becomes a sync iterator."""
        result = sync.run(call)
        return result if isinstance(result, QfResponse) else sync.iterate(result)

    # ------------------------------------------------------------------ batch
    def _named_inputs(self, inputs: Iterable[Any] | None, common: dict[str, Any]) -> Iterable[Any] | None:
        """Accept the official keyword spelling (``messages_list=``, ``prompt_list=``, ``texts_list=``)."""
        named = common.pop(f"{self.batch_field}_list", None)
        if named is not None:
            if inputs is not None:
                raise ValidationError(f"{self.batch_field}_list", "given both positionally and by name")
            return named  # type: ignore[no-any-return]
        return inputs

    def _batch_items(self, inputs: Iterable[Any] | None, body_list: Iterable[dict[str, Any]] | None,
                     common: dict[str, Any]) -> Iterable[dict[str, Any]]:
        _batch.check_batch_kwargs(common)
        if (inputs is None) == (body_list is None):
            raise ValidationError(f"{self.batch_field}_list", f"pass either {self.batch_field}_list or body_list")
        if body_list is not None:
            return ({**common, **item} for item in body_list)
        field = self.batch_field
        return ({**common, field: item} for item in inputs or ())

    async def abatch_do(self, inputs: Iterable[Any] | None = None, *, body_list: Iterable[dict[str, Any]] | None = None,
                        worker_num: int | None = None, output_file: str | Path | None = None,
                        progress: ProgressArg = None, retry_budget: float = _batch.DEFAULT_RETRY_BUDGET,
                        durable: bool = False, **common: Any) -> Any:
        """Run many calls, ``worker_num`` at a time. Returns results in input order
        (exceptions as values). With ``output_file=`` results are streamed to a JSONL file
        (bounded memory, resumable) and read back from it one at a time.

        Transient failures (429, 5xx, retryable codes, connection errors) are queued again
        for up to ``retry_budget`` seconds per input, and throttling lowers the concurrency
        until calls succeed again; nothing is lost to a passing fault or a quota. ``durable=True``:
        a platform batch-inference task instead, returned as its ``BatchJob`` (outlives this process)."""
        inputs = self._named_inputs(inputs, common)
        items = self._batch_items(inputs, body_list, common)
        if durable:
            return await submit_durable(self, items, common)
        total = _length(inputs if inputs is not None else body_list)
        reporter = _progress(progress, type(self).__name__)
        sink: Any
        if output_file is not None:
            sink = _batch.FileSink(output_file)
        else:
            if total is None:
                items = list(items)
                total = len(items)
            sink = _batch.ListSink(total)
        try:
            if reporter is not None:
                reporter.on_start(total)
            await _batch.run_batch(self._one, items, sink, worker_num=worker_num,
                                   skip=getattr(sink, "done", None), progress=reporter,
                                   classify=self._batch_classifier(common), retry_budget=retry_budget)
        finally:
            if isinstance(sink, _batch.FileSink):
                sink.close()
            if reporter is not None:
                reporter.on_close()
        if isinstance(sink, _batch.ListSink):
            return sink.results
        return _batch.FileResults(sink.path, total if total is not None else sink.count)

    async def _one(self, kwargs: dict[str, Any]) -> Any:
        # one try per call: the batch itself retries transient failures (re-queued, paced)
        return await self._acall({"retry_count": 1, **kwargs})

    def _batch_classifier(self, common: dict[str, Any]) -> _batch.Classify:
        policy = self._retry(dict(common)) or RetryPolicy.inference(self.config)
        return lambda exc, attempt, health: batch_verdict(exc, policy, attempt, health)

    def batch_do(self, inputs: Iterable[Any] | None = None, *, body_list: Iterable[dict[str, Any]] | None = None,
                 worker_num: int | None = None, output_file: str | Path | None = None,
                 progress: ProgressArg = None, retry_budget: float = _batch.DEFAULT_RETRY_BUDGET,
                 durable: bool = False, **common: Any) -> Any:
        """Start a batch in the background and return a :class:`BatchFuture` at once (retries
        as :meth:`abatch_do`; ``future.stats`` tells how many calls were re-queued).
        ``durable=True``: a platform batch-inference task, returned as its ``BatchJob``."""
        inputs = self._named_inputs(inputs, common)
        items = self._batch_items(inputs, body_list, common)
        if durable:
            return sync.run(submit_durable(self, items, common))
        total = _length(inputs if inputs is not None else body_list)
        if total is None and output_file is None:  # futures need a count; a file does not
            items = list(items)
            total = len(items)
        counter = [0]
        stats = _batch.BatchStats()
        classify = self._batch_classifier(common)
        reporter = _progress(progress, type(self).__name__)
        futures: list[Any] | None = None
        sink: Any
        skipped = 0
        if output_file is not None:
            sink = _batch.FileSink(output_file)
            skipped = sum(1 for i in sink.done if total is None or i < total)
        else:
            assert total is not None
            sink = _batch.FuturesSink(total)
            futures = sink.futures

        async def _run() -> None:
            try:
                if reporter is not None:
                    reporter.on_start(total)
                await _batch.run_batch(self._one, items, sink, worker_num=worker_num,
                                       skip=getattr(sink, "done", None), progress=reporter, counter=counter,
                                       classify=classify, retry_budget=retry_budget, stats=stats)
            finally:
                if isinstance(sink, _batch.FileSink):
                    sink.close()
                if reporter is not None:
                    reporter.on_close()

        done = sync.submit(_run())
        return _batch.BatchFuture(total, done, counter, futures,
                                  Path(output_file) if output_file is not None else None, skipped, stats)


def _estimate_body_tokens(body: dict[str, Any]) -> int:
    """Local token estimate of a request (for the client-side TPM limit)."""
    from qfnb._core.http.ratelimit import estimate_tokens

    texts = [str(m.get("content") or "") for m in body.get("messages") or [] if isinstance(m, dict)]
    for key in ("prompt", "query", "system"):
        if isinstance(body.get(key), str):
            texts.append(body[key])
    texts.extend(t for t in body.get("input") or [] if isinstance(t, str))
    return max(1, sum(estimate_tokens(t) for t in texts))


def _length(obj: Any) -> int | None:
    try:
        return len(obj)
    except TypeError:
        return None


def _progress(progress: ProgressArg, desc: str) -> ProgressCallback | None:
    return make_progress(progress, desc=desc)  # the default shows a bar only inside a notebook kernel
