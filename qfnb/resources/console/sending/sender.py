"""The one place console calls are sent from.

Each console method is written once as a *builder* (``builders/``): a pure function that
checks its arguments and returns a :class:`ConsoleRequest` (path, body, v2 action), marked
``@surface("FineTune.V2.create_task")``. The public pair ``Name.method`` (blocking) /
``Name.amethod`` (async) is generated from it (``tools/generate.py``): both build the
request in the caller's thread, then :func:`asend` it (the blocking one through
:func:`send`, a thin shell over qfnb's background loop).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from qfnb._core.config import resolve_config
from qfnb._core.errors import ValidationError
from qfnb._core.runtime import sync
from qfnb.protocol import ProtocolError

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config
    from qfnb._core.http.response import QfResponse
    from qfnb._core.http.retry import RetryPolicy

B = TypeVar("B", bound=Callable[..., "ConsoleRequest"])

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


def member(value: Any, enum: Any, field_name: str) -> Any:
    """``enum(value)``: ``value`` as a member of the enum class ``enum``, or the error naming its values."""
    try:
        return enum(value)
    except ValueError:
        raise invalid(field_name, f"must be one of {[m.value for m in enum]}, got {value!r}") from None


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def compact(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` without ``None`` values (optional fields are omitted, not sent as null)."""
    return {k: v for k, v in body.items() if v is not None}


def paged(page_no: int, page_size: int, **fields: Any) -> dict[str, Any]:
    """A v1 list body: ``pageNo``/``pageSize`` checked, the other fields sent when set."""
    return compact({"pageNo": require(page_no, "page_no", int), "pageSize": require(page_size, "page_size", int),
                    **{k: (v or None) for k, v in fields.items()}})


def surface(name: str, answer: str | None = None) -> Callable[[B], B]:
    """Mark a builder as the public console call ``name`` (``"FineTune.V2.create_task"``) whose
    answer ``resp.parsed`` reads as ``answer`` (a model of :mod:`qfnb.protocol.wires.qianfan.answers`);
    ``tools/generate.py`` reads the mark. At runtime the builder is returned as it is."""
    del name, answer
    return _same


def _same(builder: B) -> B:
    return builder


def body_fields(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A call's ``**kwargs`` less the config overrides (``ak=``, ``sk=``, ..., official SDK style)."""
    return {k: v for k, v in kwargs.items() if k not in _CONFIG_KEYS}


async def asend(request: ConsoleRequest, *, config: Config | None = None, retry: RetryPolicy | None = None,
                overrides: Mapping[str, Any] | None = None) -> QfResponse:
    """Send ``request`` through the client for ``config`` (bce-auth-v1 signed), with the config
    overrides among a call's ``**kwargs`` (``overrides``; its body fields are left out)."""
    from qfnb._core.http.client import get_client  # deferred: loads the HTTP client (`%load_ext qfnb` does not)

    cfg = resolve_config(config, **{k: v for k, v in (overrides or {}).items() if k in _CONFIG_KEYS})
    client = get_client(cfg)
    if request.host == "iam":
        return await client.signed_request(request.method, cfg.iam_base_url.rstrip("/") + request.path,
                                           params=request.params, content=request.body, retry=retry)
    if request.action is not None:
        return await client.console_v2(request.path, request.action, request.body, retry=retry,
                                       headers=request.headers)
    return await client.console(request.path, request.body, params=request.params, retry=retry)


def send(request: ConsoleRequest, *, config: Config | None = None, retry: RetryPolicy | None = None,
         overrides: Mapping[str, Any] | None = None) -> QfResponse:
    """Blocking :func:`asend`: runs on qfnb's background loop (safe inside Jupyter)."""
    return sync.run(asend(request, config=config, retry=retry, overrides=overrides))
