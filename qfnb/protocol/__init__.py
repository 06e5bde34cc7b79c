"""The Qianfan wire protocol as data: pydantic models, error codes, routes. No I/O.

Both the client (``qfnb._core``/``qfnb.resources``) and the embedded platform
(``qfnb.local``) import this package; they never import each other.
"""

from .errors import ErrorCode
from .inference import ProtocolError, parse_request, validate_messages

__all__ = ["ErrorCode", "ProtocolError", "parse_request", "validate_messages"]
