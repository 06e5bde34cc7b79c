"""Request bodies checked once, for the HTTP routes and the batch rows alike: the protocol's
rules, then the local platform's caps; a failure is a :class:`BodyError` naming the field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from qfnb.local.domain.state.values import BodyError
from qfnb.protocol.limits import check_local
from qfnb.protocol.wires.qianfan.inference import ProtocolError, parse_request

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: dict[str, Any]) -> M:
    """Validate ``data`` as ``model`` (the protocol's rules, then the local platform's caps);
    a failure becomes a BodyError naming the field."""
    try:
        parsed = parse_request(model, data)
        check_local(data)
        return parsed
    except ProtocolError as exc:
        raise BodyError(exc.field, str(exc).split(": ", 1)[-1], exc.code) from exc
