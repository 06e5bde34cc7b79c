"""Token routes: the OAuth access token (v1 inference) and the IAM-signed v2 bearer token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qfnb.local.server.middleware.auth import authenticator
from qfnb.local.server.serving.wire import v2_error

#: a bearer token's validity when ``expireInSeconds`` is not given, and the longest one (30 days)
BEARER_DEFAULT_SECONDS = 43_200
BEARER_MAX_SECONDS = 2_592_000


# ---- OAuth ---------------------------------------------------------------------------------


async def oauth_token(request: Request) -> JSONResponse:
    q = request.query_params
    if q.get("grant_type") != "client_credentials":
        return JSONResponse({"error": "unsupported_grant_type",
                             "error_description": "grant_type must be client_credentials"}, status_code=400)
    status, body = authenticator(request).issue_token(q.get("client_id"), q.get("client_secret"))
    return JSONResponse(body, status_code=status)


async def bearer_token(request: Request) -> JSONResponse:
    """``GET /v1/BCE-BEARER/token``: IAM-signed, mints a v2 bearer token."""
    if (failure := authenticator(request).check_console(request)) is not None:
        return failure
    raw = request.query_params.get("expireInSeconds", str(BEARER_DEFAULT_SECONDS))
    seconds = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 10 else 0
    if not 1 <= seconds <= BEARER_MAX_SECONDS:
        return v2_error(400, "InvalidParameter", f"expireInSeconds: must be an integer from 1 to "
                        f"{BEARER_MAX_SECONDS} (seconds), got {raw!r:.40}")
    return JSONResponse(authenticator(request).issue_bearer(seconds))


def routes() -> list[Route]:
    return [
        Route("/oauth/2.0/token", oauth_token, methods=["POST", "GET"]),
        Route("/v1/BCE-BEARER/token", bearer_token, methods=["GET"]),
    ]
