"""``openai`` and ``proxy``: local servers that front a Qianfan backend (the local platform or the cloud).

``qfnb openai`` answers the OpenAI protocol (``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``, ``/v1/models``) by calling Qianfan through qfnb's client, converting the
arguments as the official adapter does (temperature halved, presence penalty mapped onto
``penalty_score``, ``gpt-*`` names mapped onto ERNIE models). ``qfnb proxy`` forwards v1 inference
(base port) and console calls (console port), signed with the proxy's own credentials, so a
browser holds no key; ``qfnb proxy --direct`` instead passes each call through as the client sent
it (its own credentials: headers, ``?access_token=``), as the official ``--direct`` does. Both bind
127.0.0.1 by default; another address needs ``--api-key`` / ``--access-token`` (the official
default, 0.0.0.0 with no key, lends the user's credentials to anyone on the network), except a
direct proxy, which lends none.

Here: both commands' parsers, their launch helpers (detach, the server extra, the Host allow-list)
and the signing proxy; the OpenAI adapter is :mod:`.openai_adapter`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfnb.common.cli import adapter_guard
from qfnb.common.cli._shared import CliError
from qfnb.protocol.platform.netguard import is_loopback

if TYPE_CHECKING:  # pragma: no cover
    from starlette.responses import Response
    from starlette.types import ASGIApp


def add_parsers(sub: Any) -> None:
    openai = sub.add_parser("openai", help="an OpenAI-protocol server in front of Qianfan", add_help=False,
                            description="Serve the OpenAI API (chat, completions, embeddings) by calling Qianfan.")
    openai.add_argument("--help", action="help", help="show this help message and exit")
    openai.add_argument("--host", "-h", default=None,  # -h as officially (help is --help here)
                        help="address to bind (default 127.0.0.1; clients send the key whatever the address)")
    openai.add_argument("--port", "-p", type=int, default=None, help="port (default 8001)")
    openai.add_argument("--detach", "-d", action="store_true", default=None, help="run in the background")
    openai.add_argument("--ignore-system", action=argparse.BooleanOptionalAction, default=None,
                        help="drop system messages (default: drop, as the official adapter)")
    openai.add_argument("--log-file", help="append the server's log here (created 0600, tokens redacted)")
    openai.add_argument("--api-key-file", type=Path,
                        help="a 0600 file holding the key clients must send (Authorization: Bearer KEY); default "
                             "$QFNB_OPENAI_API_KEY, else one generated and kept in <data dir>/adapters/openai.key")
    openai.add_argument("--api-key", help=argparse.SUPPRESS)  # refused: argv shows in `ps`
    openai.add_argument("--allowed-host", action="append", default=[],
                        help="a Host/Origin name clients may use besides the loopback names (repeatable)")
    openai.add_argument("--config-file", type=Path, help="a YAML/JSON file with an `openai_adapter` section "
                                                         "(host, port, ignore_system, model_mapping, api_key)")
    proxy = sub.add_parser("proxy", help="a signing proxy for inference and console calls",
                           description="Forward v1 inference (base port) and console (console port) calls to "
                                       "Qianfan, signed with this process's credentials.")
    proxy.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1; clients send the token whatever the address)")
    proxy.add_argument("--base-port", "-b", type=int, default=8002, help="port of the inference proxy")
    proxy.add_argument("--console-port", "-c", type=int, default=8003, help="port of the console proxy")
    proxy.add_argument("--detach", "-d", action="store_true", help="run in the background")
    proxy.add_argument("--log-file", help="append the server's log here (created 0600, tokens redacted)")
    proxy.add_argument("--access-token-file", type=Path,
                       help="a 0600 file holding the token clients must send (?access_token=...); default "
                            "$QFNB_PROXY_ACCESS_TOKEN, else one generated and kept in <data dir>/adapters/proxy.key")
    proxy.add_argument("--access-token", default="", help=argparse.SUPPRESS)  # refused: argv shows in `ps`
    proxy.add_argument("--allowed-host", action="append", default=[],
                       help="a Host/Origin name clients may use besides the loopback names (repeatable)")
    proxy.add_argument("--direct", action="store_true",
                       help="pass calls through unsigned, with the client's own credentials (no token check: "
                            "the proxy lends no keys)")
    for name in ("keyfile", "certfile", "keyfile-password", "ca-certs"):
        proxy.add_argument(f"--ssl-{name}", default="", help=f"TLS: {name.replace('-', ' ')}")
    proxy.add_argument("--ssl-version", type=int, default=17, help=argparse.SUPPRESS)
    proxy.add_argument("--ssl-cert-reqs", type=int, default=0, help=argparse.SUPPRESS)
    proxy.add_argument("--ssl-ciphers", default="TLSv1", help=argparse.SUPPRESS)
    proxy.add_argument("--mock-port", "-m", type=int, default=-1, help=argparse.SUPPRESS)


def detach(argv: Sequence[str], log_file: str | None) -> int:
    """Run this command again in its own session, without ``-d``; print its pid."""
    args = [a for a in argv if a not in ("-d", "--detach")]
    out: int = adapter_guard.private_file(log_file) if log_file else subprocess.DEVNULL
    child = subprocess.Popen([sys.executable, "-m", "qfnb.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    print(f"started in the background (pid {child.pid})")
    return 0


def need_server() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise CliError("this command needs the server extra: pip install 'qfnb[server]'") from None


ARGV_SECRET = ("{option} is refused: argv shows in `ps` to every user of this machine. Put the key in "
               "${env} or in a 0600 file given as {option}-file (with neither, one is generated and printed once)")


def allowed_names(host: str, extra: Sequence[str]) -> list[str]:
    """The Host/Origin names a server bound to ``host`` answers: loopback ones, ``extra``, and a
    non-loopback bind address itself."""
    names = list(extra)
    if not is_loopback(host) and host not in ("0.0.0.0", "::"):
        names.append(host)
    return names



# ---- the signing proxy -------------------------------------------------------------------------------

#: headers that belong to one connection, not to the call a direct proxy passes on (RFC 9110 7.6.1), and
#: the body's length and encoding, which the forwarded call sets again
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "content-length", "content-encoding"})


def direct_app(upstream: str) -> ASGIApp:
    """The ``--direct`` proxy's ASGI app: each call goes to ``upstream`` as the client sent it (method, path,
    query, body, headers with ``Host``, so a signature the client made for this address still verifies),
    unsigned and unchecked, and the answer comes back as it came (streams stay streams)."""
    import httpx
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    http = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=30.0))

    async def forward(request: Request) -> Response:
        url = upstream.rstrip("/") + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP | {"x-forwarded-for"}]
        client = request.client.host if request.client else ""
        if not is_loopback(client):  # the platform checks replays of calls that crossed a network
            headers.append(("X-Forwarded-For", client or "unknown"))
        sent = http.build_request(request.method, url, headers=headers, content=await request.body())
        try:
            answer = await http.send(sent, stream=True)
        except httpx.HTTPError as exc:
            from starlette.responses import JSONResponse

            return JSONResponse({"error_code": 336100, "error_msg": f"upstream {upstream} unreachable: "
                                                                   f"{type(exc).__name__}"}, 502)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(answer.aiter_raw(), status_code=answer.status_code, headers=kept,
                                 background=BackgroundTask(answer.aclose))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await http.aclose()

    return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])],
                     lifespan=lifespan)


def proxy_app(kind: str, access_token: str) -> ASGIApp:
    """The inference (``kind="base"``) or console proxy's ASGI app."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from qfnb._core.errors import QfnbError  # deferred: `qfnb --help` does without it (1 module)
    from qfnb._core.http.client import get_client  # deferred: loads the HTTP client (`qfnb --help` does not)
    from qfnb._core.http.response import QfResponse  # deferred: `qfnb --help` does without it (3 modules)
    from qfnb.protocol.wires.qianfan.routes import (  # deferred: `qfnb --help` does without it (1 module)
        MODEL_API_PREFIX,
        Target,
    )

    async def forward(request: Request) -> Response:
        query = dict(request.query_params)
        if not adapter_guard.same_secret(query.pop("access_token", None), access_token):
            return JSONResponse({"error": {"message": "no or wrong access_token", "type": "invalid_request_error",
                                           "code": "invalid_ACCESS_TOKEN"}}, status_code=401)
        client = get_client()
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
            path = request.url.path
            if kind == "base":
                if not path.startswith(MODEL_API_PREFIX + "/"):
                    return JSONResponse({"error_code": 3, "error_msg": f"not an inference path: {path}"}, 404)
                result = await client.infer(Target("", path[len(MODEL_API_PREFIX):], verbatim=True), body,
                                            stream=bool(body.get("stream")))
                if not isinstance(result, QfResponse):
                    async def sse(chunks: AsyncIterator[QfResponse]) -> AsyncIterator[str]:
                        async for chunk in chunks:
                            yield "data: " + json.dumps(dict(chunk.body), ensure_ascii=False) + "\n\n"
                    return StreamingResponse(sse(result), media_type="text/event-stream")
            else:
                url = client.config.console_api_base_url.rstrip("/") + path
                result = await client.signed_request(request.method, url, params=query or None,
                                                     content=body if raw else None)
        except QfnbError as exc:
            return JSONResponse({"error_code": getattr(exc, "error_code", None) or 0, "error_msg": str(exc)},
                                getattr(exc, "status_code", None) or 400)
        except json.JSONDecodeError:
            return JSONResponse({"error_code": 3, "error_msg": "the body is not JSON"}, 400)
        return JSONResponse(dict(result.body))

    return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST", "PUT", "DELETE"])])


def _qianfan_refusal(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error_code": status, "error_msg": message, "error_type": code}


def proxy(args: argparse.Namespace, argv: Sequence[str]) -> int:
    need_server()
    if args.access_token:
        raise CliError(ARGV_SECRET.format(option="--access-token", env="QFNB_PROXY_ACCESS_TOKEN"))
    if args.direct and args.access_token_file:
        raise CliError("--access-token-file guards the proxy's own credentials; a --direct proxy has none to guard "
                       "(each client sends its own)")
    token, created = ("", None) if args.direct else \
        adapter_guard.adapter_secret("proxy", "QFNB_PROXY_ACCESS_TOKEN", args.access_token_file)
    if args.detach:
        return detach(argv, args.log_file)
    import asyncio

    import uvicorn

    adapter_guard.log_to(args.log_file, [token])
    ssl = {f"ssl_{k}": getattr(args, f"ssl_{k}") for k in ("keyfile", "certfile", "keyfile_password", "ca_certs")
           if getattr(args, f"ssl_{k}")}
    scheme = "https" if ssl else "http"
    print(f"Proxy server is running at\n- base: {scheme}://{args.host}:{args.base_port}\n"
          f"- console: {scheme}://{args.host}:{args.console_port}", flush=True)
    if created:
        print(f"  clients send ?access_token={token}\n  (a new token, kept in {created} (mode 0600); this is the "
              "only time it is printed)", flush=True)
    allowed = allowed_names(args.host, args.allowed_host)
    servers = [uvicorn.Server(uvicorn.Config(
        adapter_guard.RequestGuard(app, refusal=_qianfan_refusal, key_ok=None, allowed_hosts=allowed),
        host=args.host, port=port, log_level="info", log_config=None, **ssl))
        for app, port in ((_proxy_app("base", args, token), args.base_port),
                          (_proxy_app("console", args, token), args.console_port))]

    async def both() -> None:
        await asyncio.gather(*(s.serve() for s in servers))
    asyncio.run(both())
    return 0


def _proxy_app(kind: str, args: argparse.Namespace, token: str) -> ASGIApp:
    if not args.direct:
        return proxy_app(kind, token)
    from qfnb._core.http.client import get_client  # deferred: loads the HTTP client (`qfnb --help` does not)

    config = get_client().config  # the backend the signing proxy would call: configured, or the local platform
    return direct_app(config.base_url if kind == "base" else config.console_api_base_url)
