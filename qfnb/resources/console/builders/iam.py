"""``IAM``: mint v2 bearer tokens (``GET /v1/BCE-BEARER/token`` on the IAM endpoint, signed)."""

from __future__ import annotations

from typing import Any

from qfnb.protocol.wires.qianfan.routes import BEARER_TOKEN

from ..sending.sender import ConsoleRequest, invalid, surface

#: the platform's bounds for a bearer token's lifetime (seconds)
_MIN_EXPIRE, _MAX_EXPIRE = 1, 2_592_000


#: the classes the ``@surface`` builders below are exposed on (``../iam.py``, generated), with their docs
CLASSES = {
    "IAM": "Identity and access: ``create_bearer_token`` / ``acreate_bearer_token``.",
}


@surface("IAM.create_bearer_token")
def create_bearer_token(expire_in_seconds: int | None = None, **kwargs: Any) -> ConsoleRequest:
    """A bearer token for the v2 API: ``IAM.create_bearer_token(expire_in_seconds=3600)`` →
    ``resp["token"]``, ``resp["expireTime"]`` (signed with QIANFAN_ACCESS_KEY/QIANFAN_SECRET_KEY)."""
    params: dict[str, Any] = {}
    if expire_in_seconds is not None:
        if isinstance(expire_in_seconds, bool) or not isinstance(expire_in_seconds, int) or not (
                _MIN_EXPIRE <= expire_in_seconds <= _MAX_EXPIRE):
            raise invalid("expire_in_seconds", f"must be an integer in [{_MIN_EXPIRE}, {_MAX_EXPIRE}], "
                          f"got {expire_in_seconds!r}")
        params["expireInSeconds"] = str(expire_in_seconds)
    if kwargs:
        raise invalid(next(iter(kwargs)), "is not a parameter of create_bearer_token")
    return ConsoleRequest(BEARER_TOKEN, {}, params=params or None, method="GET", host="iam")



