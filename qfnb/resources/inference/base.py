"""The shared machinery of the inference resources: config, model → endpoint, the
request body, and the do/ado/stream/batch shells (sync is a thin shell over async).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sized
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic

from typing_extensions import TypeVar

from qfnb._core.config import Config, resolve_config
from qfnb._core.errors import ValidationError
from qfnb._core.http.client import AsyncQianfanClient, get_client
from qfnb._core.http.ratelimit import estimate_body_tokens
from qfnb._core.http.response import QfResponse
from qfnb._core.http.retry import RetryPolicy, batch_verdict, inference_policy
from qfnb._core.record.ledger import current_job, job
from qfnb._core.runtime import sync
from qfnb._core.runtime.progress import ProgressArg, make_progress
from qfnb.protocol.console.model_names import LOCAL_DEFAULT_MODELS, V2_DEFAULT_MODELS
from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.version import REQUEST_SOURCE
from qfnb.protocol.wires.qianfan import routes

from ..batch_job import BatchJob, check_durable_options
from ..targets import JobTarget, check_platform, parse_target
from .batching import engine, runs
from .batching.packing import Pack
from .params import LOCAL_KWARGS, RETRY_KWARGS, InferenceCall
from .shapes.v2 import V2_ROUTES, chat_row
from .targets import QfLLMInfo, Target, class_or_instance_method, model_info, resolve_target, service_names, v2_model_id

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.protocol.wires.qianfan.answer import AnswerModel
    from qfnb.protocol.wires.qianfan.inference import RequestModel

__all__ = ["BaseInference", "QfLLMInfo", "Target", "resolve_target"]

logger = logging.getLogger("qfnb.resources")

#: the resource's typed call (:mod:`.params`)
C = TypeVar("C", bound=InferenceCall)
#: the answer model of a response and of a stream chunk (:mod:`qfnb.protocol.wires.qianfan.answers`)
A = TypeVar("A", bound="AnswerModel", default="AnswerModel")
K = TypeVar("K", bound="AnswerModel", default="AnswerModel")
#: a batch call's input and answer
In = TypeVar("In")
R = TypeVar("R")


class BaseInference(Generic[C, A, K]):
    """Common shell. Subclasses set ``api_types`` and implement :meth:`_body`; their ``ado``
    and ``do`` (generated, see ``tools/generate.py``) build a typed call ``C`` and run
    :meth:`_acall` / :meth:`_call`, which answer ``QfResponse[A]`` (a stream: chunks
    ``QfResponse[K]``)."""

    api_types: ClassVar[tuple[str, ...]] = ("chat",)
    #: name of the per-item field in ``batch_do``'s first argument
    batch_field: ClassVar[str] = "messages"
    #: the official keywords of ``batch_do``'s first argument, tried in order (None: ``<batch_field>_list``)
    batch_keywords: ClassVar[tuple[str, ...] | None] = None
    default_retry: ClassVar[dict[str, Any]] = {}
    #: ``ado``'s parameters without a default (set by the generated calls)
    required: ClassVar[tuple[str, ...]] = ()
    #: the names, in :mod:`qfnb.protocol.wires.qianfan.answers`, of ``A`` and ``K`` (set by the generated calls)
    answer_model: ClassVar[str] = "AnswerModel"
    chunk_model: ClassVar[str] = "AnswerModel"

    def __init__(self, model: str | None = None, endpoint: str | None = None, *, version: int | str | None = None,
                 config: Config | None = None, **config_kwargs: Any) -> None:
        self._model = model
        self._endpoint = endpoint
        if version is not None and str(version) not in ("1", "2"):
            raise ValueError(f"version must be 1 or 2, got {version!r}")
        if version is not None and int(version) == 2 and self.api_types[0] not in V2_ROUTES:
            raise ValueError(f"{type(self).__name__} has no v2 route; leave version unset")
        self._version = int(version) if version is not None else None
        try:
            self._base_config = (config.with_overrides(**config_kwargs) if config is not None
                                 else Config.from_env(**config_kwargs))
        except TypeError as exc:
            raise TypeError(f"{type(self).__name__}(): {exc}") from None
        self._targets: dict[tuple[str | None, str | None], Target] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self._model!r}, endpoint={self._endpoint!r})"

    @property
    def model(self) -> str | None:
        """``model=`` as given (None: the endpoint's, else the default model)."""
        return self._model

    @property
    def endpoint(self) -> str | None:
        """``endpoint=`` as given."""
        return self._endpoint

    @property
    def given_config(self) -> Config:
        """The config as given (its keyword overrides applied), before :attr:`config` finds a platform
        for it (a job on a cluster needs none)."""
        return self._base_config

    @property
    def version(self) -> int:
        """The API family this resource's calls use: ``version=`` as given, else the account's
        (:attr:`~qfnb._core.config.Config.api_version`: 2 with a v2 API key); 1 for a resource
        with no v2 route."""
        if self.api_types[0] not in V2_ROUTES:
            return 1
        return self._version if self._version is not None else self.config.api_version

    @class_or_instance_method
    def models(self_or_cls: Any) -> set[str]:
        """Model names for this resource: on the class, the built-in catalog's; on an instance
        with console keys, also those the platform's ``service/list`` serves (as the official
        SDK's instance method)."""
        names: set[str] = set()
        for api in self_or_cls.api_types:
            names.update(routes.model_catalog().get(api, {}).get("models", {}))
        if isinstance(self_or_cls, BaseInference):
            names.update(self_or_cls._platform_models())
        return names

    def _platform_models(self) -> set[str]:
        client = self.client
        if not (client.config.access_key and client.config.secret_key):
            return set()
        try:
            services = sync.run(client.list_services())
        except Exception as exc:  # the dynamic list is a help, not a requirement
            logger.warning("could not fetch the platform's model list: %s", exc)
            return set()
        return service_names(services, self.api_types)

    def get_model_info(self, model: str) -> QfLLMInfo:
        """Where ``model`` is served (``.endpoint`` below the API prefix, e.g. ``/chat/completions``);
        an unknown model raises ``ValidationError`` (an ``InvalidArgumentError``)."""
        return model_info(self.resolve(model))

    def access_token(self) -> str:
        """The OAuth access token this resource's v1 calls carry (minted from AK/SK if needed)."""
        return sync.run(self.client.access_token())

    # ------------------------------------------------------------------ plumbing
    @cached_property
    def config(self) -> Config:
        return resolve_config(self._base_config)

    @cached_property
    def client(self) -> AsyncQianfanClient:
        return get_client(self.config)

    def _default_model(self) -> str | None:
        cfg = self.config
        if self.version == 2 and not cfg.embedded:
            return V2_DEFAULT_MODELS[self.api_types[0]]
        for api in self.api_types:
            name = cfg.default_models.get(api)
            if name:
                return name
        return routes.default_model(self.api_types[0])

    async def _target(self, model: str | None, endpoint: str | None) -> Target:
        if model is None and endpoint is None:  # as the official SDK: the call's pair, else the constructor's
            model, endpoint = self._model, self._endpoint
        if self.version == 2:
            return self._v2_target(model, endpoint)
        key = (model, endpoint)
        found = self._targets.get(key)
        if found is not None:
            return found
        client = self.client
        default, verbatim = self._default_model(), client.config.use_custom_endpoint
        target = resolve_target(self.api_types, model, endpoint, default_model=default,
                                services=client.cached_services(), verbatim=verbatim)
        listing_error: Exception | None = None
        if target is None and client.config.access_key and client.config.secret_key:
            try:
                # a miss against a cached list refreshes it once: a service may have been deployed since
                services = await client.list_services(refresh=client.cached_services() is not None)
            except Exception as exc:  # the dynamic list is a help, not a requirement
                logger.warning("could not fetch the platform's model list: %s", exc)
                services, listing_error = None, exc
            target = resolve_target(self.api_types, model, endpoint, default_model=default, services=services,
                                    verbatim=verbatim)
        if target is None:
            name = model or default
            where = (f"not in the built-in catalog, and the platform's service list could not be fetched "
                     f"({type(listing_error).__name__}: {listing_error})" if listing_error is not None
                     else "not in the built-in catalog nor the platform's service list")
            raise ValidationError("model", f"unknown model {name!r} for {'/'.join(self.api_types)}: {where}; "
                                           "pass endpoint=... for a custom service") from listing_error
        self._targets[key] = target
        return target

    def _v2_target(self, model: str | None, endpoint: str | None) -> Target:
        """The v2 route and model id: a name the cloud renamed goes as its successor (said once), a
        service's endpoint as its model id, any other name as given (the platform says if it is unknown)."""
        cfg = self.config
        name = model or endpoint or self._default_model() or V2_DEFAULT_MODELS[self.api_types[0]]
        if not cfg.embedded:
            name = v2_model_id(name)
        return Target("v2", V2_ROUTES[self.api_types[0]].removeprefix("/v2/"), name)

    async def aresolve(self, model: str | None = None, endpoint: str | None = None) -> Target:
        """Where a call would go, without sending it: an unknown model raises ``ValidationError``
        (after the platform's ``service/list`` is consulted, as a call would)."""
        return await self._target(model, endpoint)

    def resolve(self, model: str | None = None, endpoint: str | None = None) -> Target:
        """Blocking :meth:`aresolve`."""
        return sync.run(self.aresolve(model, endpoint))

    def _retry(self, call: InferenceCall) -> RetryPolicy | None:
        opts = dict(self.default_retry)
        for name, value in (("retry_count", call.retry_count), ("request_timeout", call.request_timeout),
                            ("backoff_factor", call.backoff_factor), *((k, call.extra.get(k)) for k in RETRY_KWARGS)):
            if value is not None:
                opts[name] = value
        return inference_policy(self.config, opts) if opts else None

    def _body(self, target: Target, call: C) -> tuple[Target, dict[str, Any]]:
        """Validate and build the wire body (raise ProtocolError on bad input)."""
        raise NotImplementedError

    def _postprocess(self, resp: QfResponse, call: C, target: Target) -> QfResponse:
        return resp

    def _answer(self, resp: QfResponse, call: C, target: Target) -> QfResponse[A]:
        """``resp`` post-processed, its ``parsed`` read as ``A``."""
        if target.api_type == "v2":
            resp.body = self._v1_keys(resp.body, chunk=False)
        return self._postprocess(resp, call, target).with_answer_named(self.answer_model)

    def _v1_keys(self, body: dict[str, Any], *, chunk: bool) -> dict[str, Any]:
        """A v2 answer (or stream ``chunk``) with the keys the seeds read added beside its own."""
        return body

    @staticmethod
    def _given(call: InferenceCall) -> dict[str, Any]:
        """The call's body fields and its ``**kwargs``, those not None (what the caller gave)."""
        return {k: v for k, v in {**call.fields(), **call.extra}.items() if v is not None}

    @staticmethod
    def _wire_body(fields: Mapping[str, Any], stream: bool, request: RequestModel | None = None) -> dict[str, Any]:
        """The body sent: ``fields`` less the SDK's own options, with ``stream`` and the request source;
        with ``request`` (a request model of :mod:`qfnb.protocol.wires.qianfan.inference`), refused unless it
        reads as one."""
        body = {k: v for k, v in fields.items() if k not in LOCAL_KWARGS and v is not None}
        body["stream"] = stream
        extra = body.get("extra_parameters")
        body["extra_parameters"] = {**extra, "request_source": REQUEST_SOURCE} if isinstance(extra, dict) else {
            "request_source": REQUEST_SOURCE}
        if request is not None:
            from qfnb.protocol.wires.qianfan import (  # deferred: loads pydantic (`qfnb.ChatCompletion` does not)
                inference,
            )
            inference.parse_request(getattr(inference, request), body)
        return body

    # ------------------------------------------------------------------ async API
    async def ado(self, *args: Any, **kwargs: Any) -> Any:
        """Call the model (each resource declares its own parameters)."""
        raise NotImplementedError

    async def _acall(self, call: C) -> QfResponse[A] | AsyncIterator[QfResponse[K]]:
        """The one implementation of a call: a :class:`QfResponse`, or (``call.stream``) an
        async iterator of chunks."""
        target, body = await self._prepare(call)
        result = await self._send(target, body, call)
        if isinstance(result, QfResponse):
            return self._answer(result, call, target)
        return self._stream_post(result, call, target)

    async def _prepare(self, call: C) -> tuple[Target, dict[str, Any]]:
        """Where ``call`` goes and the body it sends, checked (a bad input raises ``ValidationError``)."""
        if not isinstance(call.stream, bool):
            raise ValidationError("stream", f"must be a bool, got {type(call.stream).__name__}")
        if call.idempotency_key is not None and (problem := routes.idempotency_key_problem(call.idempotency_key)):
            raise ValidationError("idempotency_key", problem)
        target = await self._target(call.model, call.endpoint)
        try:
            return self._body(target, call)
        except ValidationError:
            raise
        except ProtocolError as exc:
            raise ValidationError(exc.field, str(exc).split(": ", 1)[-1], exc.code) from None

    async def _replays(self, call: C, repeat: int = 0) -> bool:
        """Whether the response cache would answer ``call`` now (its target and body made as a call
        makes them; nothing is sent): a forecast counts such an answer as no call."""
        target, body = await self._prepare(call)
        if target.api_type == "v2":
            return "/v2/" + target.endpoint == V2_ROUTES["chat"] and await self.client.replays(
                None, body, stream=call.stream, repeat=repeat)
        return await self.client.replays(target, body, stream=call.stream, repeat=repeat)

    async def _acall_one(self, call: C) -> QfResponse[A]:
        """:meth:`_acall` for a resource that never streams."""
        resp = await self._acall(call)
        assert isinstance(resp, QfResponse)  # _body refuses stream=True
        return resp

    async def _send(self, target: Target, body: dict[str, Any], call: C) -> QfResponse | AsyncIterator[QfResponse]:
        client = self.client
        if target.api_type == "v2":
            route = "/v2/" + target.endpoint
            if route == V2_ROUTES["chat"]:
                return await client.chat_v2(body, stream=call.stream, retry=self._retry(call),
                                            request_id=call.request_id, idempotency_key=call.idempotency_key)
            return await client.infer_v2(route, body, retry=self._retry(call), idempotency_key=call.idempotency_key)
        tokens = estimate_body_tokens(body) if client.needs_token_estimates() else 0
        return await client.infer(target, body, stream=call.stream, retry=self._retry(call),
                                  request_id=call.request_id, tokens=tokens, idempotency_key=call.idempotency_key)

    async def _stream_post(self, chunks: AsyncIterator[QfResponse], call: C,
                           target: Target) -> AsyncIterator[QfResponse[K]]:
        try:
            async for chunk in chunks:
                if target.api_type == "v2":
                    chunk.body = self._v1_keys(chunk.body, chunk=True)
                yield self._postprocess(chunk, call, target).with_answer_named(self.chunk_model)
        finally:  # closed early: close the source now, so what arrived is counted at once
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    # ------------------------------------------------------------------ sync API
    def do(self, *args: Any, **kwargs: Any) -> Any:
        """Blocking :meth:`ado` (each resource declares its own parameters)."""
        raise NotImplementedError

    def _call(self, call: C) -> QfResponse[A] | Iterator[QfResponse[K]]:
        """Blocking :meth:`_acall`: runs on qfnb's background loop (safe inside Jupyter); a
        stream becomes a sync iterator."""
        return self._blocking(self._acall(call))

    def _call_one(self, call: C) -> QfResponse[A]:
        """Blocking :meth:`_acall_one`."""
        return sync.run(self._acall_one(call))

    @staticmethod
    def _blocking(call: Coroutine[Any, Any, QfResponse[A] | AsyncIterator[QfResponse[K]]]
                  ) -> QfResponse[A] | Iterator[QfResponse[K]]:
        result = sync.run(call)
        return result if isinstance(result, QfResponse) else sync.iterate(result)

    # ------------------------------------------------------------------ batch
    def _named_inputs(self, inputs: Iterable[Any] | None, common: dict[str, Any]) -> Iterable[Any] | None:
        """Accept the official keyword spelling (``messages_list=``, ``prompt_list=``, ``texts_list=``)."""
        for keyword in self.batch_keywords or (f"{self.batch_field}_list",):
            named = common.pop(keyword, None)
            if named is not None:
                if inputs is not None:
                    raise ValidationError(keyword, "given both positionally and by name")
                return named  # type: ignore[no-any-return]
        return inputs

    def _batch_items(self, inputs: Iterable[Any] | None, body_list: Iterable[dict[str, Any]] | None,
                     common: dict[str, Any]) -> Iterable[dict[str, Any]]:
        engine.check_batch_kwargs(common)
        if (inputs is None) == (body_list is None):
            raise ValidationError(f"{self.batch_field}_list", f"pass either {self.batch_field}_list or body_list")
        if body_list is not None:
            return ({**common, **item} for item in body_list)
        return ({**common, **self._batch_item(item)} for item in inputs or ())

    def _batch_target(self, target: str | None) -> JobTarget | None:
        """``target`` (else ``QFNB_TARGET``) parsed; ``local``/``qianfan`` checked against this client's config."""
        where = parse_target(target)
        if where is not None and where.cluster is None:
            check_platform(where, self.config)
        return where

    async def _durable(self, items: Iterable[dict[str, Any]], where: JobTarget | None) -> BatchJob:
        """``batch_do(..., durable=True)`` (or a cluster ``target``): the chat requests ``items`` as a
        platform job on this resource's model or endpoint (Files + Batch with the v2 API; a cluster's job);
        without either, the model ``do()`` would use (on a cluster, the local platform's default chat model,
        which the workers' engines serve)."""
        if self.batch_field != "messages":
            raise ValidationError("durable", f"durable batches run chat requests; {type(self).__name__} is not chat")
        model, endpoint = self._model, self._endpoint
        on_cluster = where is not None and bool(where.cluster)
        if not (model or endpoint):  # the model do() would use (a cluster's workers serve the local default)
            model = LOCAL_DEFAULT_MODELS["chat"] if on_cluster else self._default_model()
        if not (model or endpoint):
            raise ValidationError("model", "the platform has no default chat model: give the ChatCompletion model=")
        config = self._base_config if on_cluster else self.config
        return await BatchJob.asubmit(items, model=model, endpoint=endpoint, config=config, target=where)

    def _batch_item(self, item: Any) -> dict[str, Any]:
        """The call kwargs of one ``batch_do`` input."""
        return {self.batch_field: item}

    async def abatch_do(self, inputs: Iterable[Any] | None = None, *, body_list: Iterable[dict[str, Any]] | None = None,
                        worker_num: int | None = None, output_file: str | Path | None = None,
                        progress: ProgressArg = None, retry_budget: float = engine.DEFAULT_RETRY_BUDGET,
                        durable: bool = False, target: str | None = None, **common: Any) -> Any:
        """Run many calls, ``worker_num`` at a time (default: 64 on the embedded platform, whose engines
        have a few slots; 1000 elsewhere, where calls wait on the network). Returns results in input order
        (exceptions as values). With ``output_file=`` results are streamed to a JSONL file
        (bounded memory, resumable) and read back from it one at a time. Against the embedded
        platform, ``Embedding`` packs consecutive inputs into fewer, larger calls (each input still
        gets its own answer; ``worker_num`` then counts the packed calls).

        Transient failures (429, 5xx, retryable codes, connection errors) are queued again
        for up to ``retry_budget`` seconds per input, and throttling lowers the concurrency
        until calls succeed again; nothing is lost to a passing fault or a quota. ``durable=True``:
        a platform batch-inference task instead, returned as its ``BatchJob`` (outlives this process).
        ``target``: ``"local"``, ``"qianfan"`` or ``"ray://HOST:DASHBOARD_PORT"`` (default ``QFNB_TARGET``);
        a cluster target runs the batch as a durable job on that cluster."""
        where = self._batch_target(target)
        inputs = self._named_inputs(inputs, common)
        items = self._batch_items(inputs, body_list, common)
        if durable or (where is not None and where.cluster):  # rows in the OpenAI chat shape a batch job reads
            check_durable_options(_live_options(worker_num, output_file, progress, retry_budget))
            return await self._durable((chat_row(i) for i in items), where)
        return await self._run_batch(runs.acollect, items, inputs if inputs is not None else body_list, common,
                                     worker_num=worker_num, output_file=output_file, progress=progress,
                                     retry_budget=retry_budget)

    def _run_batch(self, run: Callable[..., R], items: Iterable[dict[str, Any]], given: Iterable[Any] | None,
                   common: dict[str, Any], *, worker_num: int | None, output_file: str | Path | None,
                   progress: ProgressArg, retry_budget: float) -> R:
        """``run`` (:func:`runs.acollect` or :func:`runs.submit`) over ``items`` (as many as
        ``given`` holds, when it has a length), with this resource's calls (packed where it packs), retry
        verdicts, progress bar and answer model."""
        one, pack = self._batch_calls()
        total = len(given) if isinstance(given, Sized) else None
        return run(one, items, total, worker_num=worker_num or engine.default_workers(self.config.embedded, total),
                   output_file=output_file, progress=make_progress(progress, desc=type(self).__name__),
                   classify=self._batch_classifier(common), retry_budget=retry_budget, answer=self.answer_model,
                   pack=pack)

    async def _one(self, kwargs: dict[str, Any]) -> Any:
        return await self.ado(**self._one_kwargs(kwargs))

    def _one_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """What a batch item's call is made of: one try per call (the batch itself retries transient
        failures, re-queued and paced); an item without a required field sends it as None (``_body``
        refuses it, naming the field)."""
        return {**dict.fromkeys(self.required), "retry_count": 1, **kwargs}

    def _batch_calls(self) -> tuple[runs.One, Pack | None]:
        """A batch's call of one item and, where this resource packs items, its packed call (which
        may fall back to the former), tagged as one job in the usage ledger."""
        pack = self._pack()
        if pack is None:
            return _in_job(self._one), None
        return self._one, replace(pack, call=_in_job(pack.call))

    def _pack(self) -> Pack | None:
        """How a batch's items may travel packed, several in one call (:mod:`.batching.packing`); None: one
        call an item (every resource on the cloud)."""
        return None

    def _batch_classifier(self, common: dict[str, Any]) -> engine.Classify:
        call = InferenceCall(retry_count=common.get("retry_count"), request_timeout=common.get("request_timeout"),
                             backoff_factor=common.get("backoff_factor"), extra=common)
        policy = self._retry(call) or inference_policy(self.config, {})
        return lambda exc, attempt, health: batch_verdict(exc, policy, attempt, health)

    def batch_do(self, inputs: Iterable[Any] | None = None, *, body_list: Iterable[dict[str, Any]] | None = None,
                 worker_num: int | None = None, output_file: str | Path | None = None,
                 progress: ProgressArg = None, retry_budget: float = engine.DEFAULT_RETRY_BUDGET,
                 durable: bool = False, target: str | None = None, **common: Any) -> Any:
        """Start a batch in the background and return a :class:`BatchFuture` at once (retries
        as :meth:`abatch_do`; ``future.stats`` tells how many calls were re-queued).
        ``durable=True``: a platform batch-inference task, returned as its ``BatchJob``; a Ray
        ``target`` (``"ray://HOST:DASHBOARD_PORT"``, or ``QFNB_TARGET``): a Ray job's ``BatchJob``."""
        where = self._batch_target(target)
        inputs = self._named_inputs(inputs, common)
        given_format = common.get("response_format")  # as given: a pydantic class answers instances
        items = self._batch_items(inputs, body_list, common)
        if durable or (where is not None and where.cluster):  # rows in the OpenAI chat shape a batch job reads
            check_durable_options(_live_options(worker_num, output_file, progress, retry_budget))
            return sync.run(self._durable((chat_row(i) for i in items), where))
        future = self._run_batch(runs.submit, items, inputs if inputs is not None else body_list, common,
                                 worker_num=worker_num, output_file=output_file, progress=progress,
                                 retry_budget=retry_budget)
        future.response_format = given_format
        return future


def _live_options(worker_num: int | None, output_file: str | Path | None, progress: ProgressArg,
                  retry_budget: float) -> dict[str, Any]:
    """The live-batch options a caller set (None where left at the default)."""
    return {"worker_num": worker_num, "output_file": output_file, "progress": progress or None,
            "retry_budget": None if retry_budget == engine.DEFAULT_RETRY_BUDGET else retry_budget}


def _in_job(call: Callable[[In], Awaitable[R]]) -> Callable[[In], Awaitable[R]]:
    """``call`` with its calls tagged as one batch job in the usage ledger (``%qfusage --by job``);
    a batch run as part of a job (an evaluation) stays in that job."""
    if current_job() is not None:
        return call
    name = f"batch {uuid.uuid4().hex[:8]}"

    async def tagged(item: In) -> R:
        with job(name):
            return await call(item)

    return tagged
