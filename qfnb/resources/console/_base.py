"""The one place console calls are sent from.

Each console method is written once as a *builder*: a pure function that checks its
arguments and returns a :class:`ConsoleRequest` (path, body, v2 action). :func:`console_api`
turns a builder into the public pair ``Name.method`` (sync) / ``Name.amethod`` (async);
the sync one is a thin shell over the async one through ``qfnb._core.runtime.sync``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec

from qfnb.protocol import ProtocolError

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config
    from qfnb.resources import QfResponse

P = ParamSpec("P")

#: Keyword arguments every console method accepts that configure the call, not the body.
_CALL_KEYS = frozenset({"config", "retry"})
#: Config overrides accepted as keyword arguments (official SDK style: ``ak=..., sk=...``).
_CONFIG_KEYS = frozenset({
    "ak", "sk", "access_key", "secret_key", "console_api_base_url", "base_url", "access_token",
})


@dataclass(frozen=True)
class ConsoleRequest:
    """A console call as data: v1 ``POST path`` or v2 ``POST route?Action=action``; with
    ``host="iam"``, a signed ``method`` call to the IAM endpoint (bearer tokens)."""

    path: str
    body: dict[str, Any] = field(default_factory=dict)
    action: str | None = None
    params: dict[str, Any] | None = None
    method: str = "POST"
    host: str = "console"
    headers: dict[str, str] | None = None  # extra request headers (e.g. ``Referer: infer``)


def invalid(field_name: str, message: str) -> ProtocolError:
    """The error for a bad argument, raised before anything is sent."""
    from qfnb._core.errors import ValidationError

    return ValidationError(field_name, message)


def require(value: Any, field_name: str, kind: type | tuple[type, ...] = str) -> Any:
    """Check that ``value`` is present, of ``kind``, and not blank; return it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise invalid(field_name, "is required")
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise invalid(field_name, f"must be {_kind_name(kind)}, got bool")
    if not isinstance(value, kind):
        raise invalid(field_name, f"must be {_kind_name(kind)}, got {type(value).__name__}")
    return value


def require_id(value: Any, field_name: str) -> int | str:
    """An id: a positive int or a non-blank string."""
    require(value, field_name, (int, str))
    if isinstance(value, int) and value < 0:
        raise invalid(field_name, "must not be negative")
    return value  # type: ignore[no-any-return]


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def compact(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` without ``None`` values (optional fields are omitted, not sent as null)."""
    return {k: v for k, v in body.items() if v is not None}


async def send(request: ConsoleRequest, *, config: Config | None = None, retry: Any = None,
               overrides: Mapping[str, Any] | None = None) -> QfResponse:
    """Send ``request`` through the client for ``config`` (bce-auth-v1 signed)."""
    from qfnb._core.config import resolve_config
    from qfnb._core.http.client import get_client

    cfg = resolve_config(config, **dict(overrides or {}))
    client = get_client(cfg)
    if request.host == "iam":
        return await client.signed_request(request.method, cfg.iam_base_url.rstrip("/") + request.path,
                                           params=request.params, content=request.body, retry=retry)
    if request.action is not None:
        return await client.console_v2(request.path, request.action, request.body, retry=retry,
                                       headers=request.headers)
    return await client.console(request.path, request.body, params=request.params, retry=retry)


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    call = {k: kwargs.pop(k) for k in list(kwargs) if k in _CALL_KEYS}
    overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in _CONFIG_KEYS}
    return call, overrides, kwargs


def console_api(builder: Callable[P, ConsoleRequest]) -> tuple[Any, Any]:
    """Make ``(sync_classmethod, async_classmethod)`` from a request builder.

    Keyword arguments ``config=``/``retry=`` and config overrides (``ak``, ``sk``, ...) are
    taken out; everything else goes to the builder, which validates before any I/O.
    """

    async def amethod(cls: type, *args: Any, **kwargs: Any) -> QfResponse:
        call, overrides, rest = _split(dict(kwargs))
        request = builder(*args, **rest)
        return await send(request, config=call.get("config"), retry=call.get("retry"),
                          overrides=overrides)

    def method(cls: type, *args: Any, **kwargs: Any) -> QfResponse:
        from qfnb._core.runtime import sync

        # Build (and so validate) here, in the caller's thread, so a bad argument raises
        # before the coroutine is even scheduled.
        call, overrides, rest = _split(dict(kwargs))
        request = builder(*args, **rest)
        return sync.run(send(request, config=call.get("config"), retry=call.get("retry"),
                             overrides=overrides))

    functools.update_wrapper(amethod, builder)
    functools.update_wrapper(method, builder)
    name = builder.__name__.lstrip("_").removeprefix("v2_")
    method.__name__, amethod.__name__ = name, "a" + name
    method.__qualname__, amethod.__qualname__ = name, "a" + name
    method.__signature__ = amethod.__signature__ = _public_signature(builder)  # type: ignore[attr-defined]
    return classmethod(method), classmethod(amethod)


def _public_signature(builder: Callable[..., ConsoleRequest]) -> inspect.Signature:
    """What ``inspect.signature`` shows for ``Name.method``: ``cls``, the builder's parameters,
    ``config=``/``retry=``, returning a ``QfResponse`` (not the builder's ``ConsoleRequest``)."""
    from qfnb._core.http.response import QfResponse

    params = list(inspect.signature(builder).parameters.values())
    var_kw = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
    params = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    names = {p.name for p in params}
    extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None)
             for n in ("config", "retry") if n not in names]
    cls = inspect.Parameter("cls", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return inspect.Signature([cls, *params, *extra, *var_kw], return_annotation=QfResponse)
