"""The Qianfan wire protocol as data: pydantic models, error codes, routes. No I/O.

Both the client (``qfnb._core``/``qfnb.resources``) and the embedded platform
(``qfnb.local``) import this package; they never import each other.
"""

from typing import TYPE_CHECKING, Any

from qfnb.protocol.errors import ErrorCode, ProtocolError

__all__ = ["ErrorCode", "ProtocolError", "parse_request", "validate_messages"]

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.protocol.wires.qianfan.inference import parse_request, validate_messages


def __getattr__(name: str) -> Any:
    """The pydantic-backed helpers load on first use (``import qfnb`` stays fast)."""
    if name in ("parse_request", "validate_messages"):
        from qfnb.protocol.wires.qianfan import inference  # deferred: loads pydantic (`import qfnb` does not)

        return getattr(inference, name)
    raise AttributeError(f"module 'qfnb.protocol' has no attribute {name!r}")
