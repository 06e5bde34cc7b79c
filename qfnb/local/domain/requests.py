"""Request bodies checked once, for the HTTP routes and the batch rows alike: the protocol's
rules, then the local platform's caps; a failure is a :class:`BodyError` naming the field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from qfnb.local.domain.values import BodyError
from qfnb.protocol.errors import ErrorCode
from qfnb.protocol.inference import ProtocolError
from qfnb.protocol.limits import check_local

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: dict[str, Any]) -> M:
    """Validate ``data`` as ``model`` (the protocol's rules, then the local platform's caps);
    a failure becomes a BodyError naming the field."""
    try:
        parsed = model.model_validate(data)
        check_local(data)
        return parsed
    except ProtocolError as exc:
        raise BodyError(exc.field, str(exc).split(": ", 1)[-1], exc.code) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        inner = (first.get("ctx") or {}).get("error")
        if isinstance(inner, ProtocolError):
            raise BodyError(inner.field, str(inner).split(": ", 1)[-1], inner.code) from exc
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        message = first.get("msg", "is invalid")
        code = ErrorCode.INVALID_MESSAGES if where.startswith("messages") else ErrorCode.INVALID_PARAM
        raise BodyError(where, message, code) from exc
