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
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ipaddress
import json
import logging
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfnb.common.cli._shared import CliError

if TYPE_CHECKING:  # pragma: no cover
    from starlette.responses import Response

logger = logging.getLogger("qfnb.cli")

#: the official adapter's model mapping (regex -> Qianfan model)
DEFAULT_MODEL_MAPPING = {r"gpt-3.5.*": "ERNIE-3.5-8K", r"gpt-4.*": "ERNIE-4.0-8K",
                         r"text-embedding.*": "Embedding-V1"}
EMBEDDING_BATCH = 16


def add_parsers(sub: Any) -> None:
    openai = sub.add_parser("openai", help="an OpenAI-protocol server in front of Qianfan", add_help=False,
                            description="Serve the OpenAI API (chat, completions, embeddings) by calling Qianfan.")
    openai.add_argument("--help", action="help", help="show this help message and exit")
    openai.add_argument("--host", "-h", default=None,  # -h as officially (help is --help here)
                        help="address to bind (default 127.0.0.1; another needs --api-key)")
    openai.add_argument("--port", "-p", type=int, default=None, help="port (default 8001)")
    openai.add_argument("--detach", "-d", action="store_true", default=None, help="run in the background")
    openai.add_argument("--ignore-system", action=argparse.BooleanOptionalAction, default=None,
                        help="drop system messages (default: drop, as the official adapter)")
    openai.add_argument("--log-file", help="append the server's log here")
    openai.add_argument("--api-key", help="the key clients must send (Authorization: Bearer KEY)")
    openai.add_argument("--config-file", type=Path, help="a YAML/JSON file with an `openai_adapter` section "
                                                         "(host, port, ignore_system, model_mapping, api_key)")
    proxy = sub.add_parser("proxy", help="a signing proxy for inference and console calls",
                           description="Forward v1 inference (base port) and console (console port) calls to "
                                       "Qianfan, signed with this process's credentials.")
    proxy.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1; another needs --access-token)")
    proxy.add_argument("--base-port", "-b", type=int, default=8002, help="port of the inference proxy")
    proxy.add_argument("--console-port", "-c", type=int, default=8003, help="port of the console proxy")
    proxy.add_argument("--detach", "-d", action="store_true", help="run in the background")
    proxy.add_argument("--log-file", help="append the server's log here")
    proxy.add_argument("--access-token", default="", help="the token clients must send (?access_token=...)")
    proxy.add_argument("--direct", action="store_true",
                       help="pass calls through unsigned, with the client's own credentials (no --access-token "
                            "check: the proxy lends no keys)")
    for name in ("keyfile", "certfile", "keyfile-password", "ca-certs"):
        proxy.add_argument(f"--ssl-{name}", default="", help=f"TLS: {name.replace('-', ' ')}")
    proxy.add_argument("--ssl-version", type=int, default=17, help=argparse.SUPPRESS)
    proxy.add_argument("--ssl-cert-reqs", type=int, default=0, help=argparse.SUPPRESS)
    proxy.add_argument("--ssl-ciphers", default="TLSv1", help=argparse.SUPPRESS)
    proxy.add_argument("--mock-port", "-m", type=int, default=-1, help=argparse.SUPPRESS)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def _detach(argv: Sequence[str], log_file: str | None) -> int:
    """Run this command again in its own session, without ``-d``; print its pid."""
    args = [a for a in argv if a not in ("-d", "--detach")]
    out = open(log_file, "a") if log_file else subprocess.DEVNULL  # noqa: SIM115 (the child keeps it)
    child = subprocess.Popen([sys.executable, "-m", "qfnb.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    print(f"started in the background (pid {child.pid})")
    return 0


def _log_to(log_file: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, format="%(asctime)s %(levelname)s %(message)s")


def _need_server() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise CliError("this command needs the server extra: pip install 'qfnb[server]'") from None


# ---- the OpenAI adapter ------------------------------------------------------------------------------

class OpenAIAdapter:
    """OpenAI requests in, Qianfan calls through qfnb, OpenAI responses out."""

    def __init__(self, *, ignore_system: bool = True, model_mapping: dict[str, str] | None = None) -> None:
        self.ignore_system = ignore_system
        self.model_mapping = DEFAULT_MODEL_MAPPING if model_mapping is None else model_mapping

    def model(self, name: str | None) -> str | None:
        if not name:
            return None
        for pattern, target in self.model_mapping.items():
            mapped, n = re.subn(pattern, target, name)
            if n:
                return mapped
        return name

    def base_request(self, request: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, target in (("max_tokens", "max_output_tokens"), ("max_completion_tokens", "max_output_tokens"),
                            ("top_p", "top_p"), ("user", "user_id"), ("seed", "seed")):
            if request.get(key) is not None:
                out[target] = request[key]
        if request.get("temperature") is not None:
            out["temperature"] = max(float(request["temperature"]) / 2, 1e-9)
        if request.get("presence_penalty") is not None:  # [-2, 2] -> [1, 2]
            out["penalty_score"] = float(request["presence_penalty"]) / 4 + 1.5
        stop = request.get("stop")
        if stop:
            out["stop"] = [stop] if isinstance(stop, str) else list(stop)
        fmt = request.get("response_format")
        if fmt:
            out["response_format"] = fmt if isinstance(fmt, str) else fmt.get("type")
        return out

    def chat_request(self, request: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        messages = copy.deepcopy(request.get("messages") or [])
        if not isinstance(messages, list) or not messages:
            raise ValueError("messages must be a non-empty list")
        kwargs = self.base_request(request)
        system = [m for m in messages if m.get("role") == "system"]
        messages = [m for m in messages if m.get("role") != "system"]
        if system and not self.ignore_system:
            kwargs["system"] = "\n".join(str(m.get("content") or "") for m in system)
        turns = [{"role": m.get("role"), "content": m.get("content") if isinstance(m.get("content"), str)
                  else "".join(p.get("text", "") for p in m.get("content") or [] if isinstance(p, dict))}
                 for m in messages]
        return turns, kwargs

    async def chat(self, request: dict[str, Any]) -> dict[str, Any] | AsyncIterator[dict[str, Any]]:
        from qfnb.resources import ChatCompletion

        messages, kwargs = self.chat_request(request)
        client = ChatCompletion(model=self.model(request.get("model")))
        # system_fingerprint: OpenAI's field, null here (no backend fingerprint to give), as OpenAI allows
        head = {"created": int(time.time()), "model": request.get("model") or "", "system_fingerprint": None}
        rid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if request.get("stream"):
            stream = await client.ado(messages=messages, stream=True, **kwargs)

            async def chunks() -> AsyncIterator[dict[str, Any]]:
                async for resp in stream:
                    done = bool(resp.get("is_end"))
                    yield {"id": rid, "object": "chat.completion.chunk", **head,
                           "choices": [{"index": 0, "delta": {"role": "assistant", "content": resp.get("result", "")},
                                        "finish_reason": "stop" if done else None}]}
            return chunks()
        resp = await client.ado(messages=messages, **kwargs)
        return {"id": rid, "object": "chat.completion", **head,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": resp.get("result", "")},
                             "finish_reason": resp.get("finish_reason") or "stop"}],
                "usage": _usage(resp)}

    async def completion(self, request: dict[str, Any]) -> dict[str, Any]:
        from qfnb.resources import Completion

        prompt = request.get("prompt")
        if isinstance(prompt, list):
            prompt = "".join(str(p) for p in prompt)
        if not isinstance(prompt, str):
            raise ValueError("prompt must be a string or a list of strings")
        resp = await Completion(model=self.model(request.get("model"))).ado(prompt=prompt,
                                                                             **self.base_request(request))
        return {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
                "model": request.get("model") or "", "system_fingerprint": None,
                "choices": [{"index": 0, "text": resp.get("result", ""), "finish_reason": "stop", "logprobs": None}],
                "usage": _usage(resp)}

    async def embedding(self, request: dict[str, Any]) -> dict[str, Any]:
        from qfnb.resources import Embedding

        texts = request.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("input must be a string or a non-empty list of strings")
        client, data, prompt_tokens = Embedding(model=self.model(request.get("model"))), [], 0
        for start in range(0, len(texts), EMBEDDING_BATCH):
            resp = await client.ado(texts=texts[start:start + EMBEDDING_BATCH])
            data += [{"object": "embedding", "index": start + i, "embedding": d["embedding"]}
                     for i, d in enumerate(resp["data"])]
            prompt_tokens += _usage(resp)["prompt_tokens"]
        return {"object": "list", "data": data, "model": request.get("model") or "",
                "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}


def _usage(resp: Any) -> dict[str, int]:
    usage = resp.get("usage") or {}
    return {k: int(usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def _openai_error(message: str, status: int, code: str) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                   "code": code}}, status_code=status)


def openai_app(adapter: OpenAIAdapter, api_key: str | None) -> Any:
    """The adapter's ASGI app (Starlette)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from qfnb._core.errors import QfnbError

    def handler(call: Callable[[dict[str, Any]], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            if api_key is not None and request.headers.get("authorization") != f"Bearer {api_key}":
                return _openai_error("Incorrect API key provided.", 401, "invalid_api_key")
            try:
                body = await request.json()
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                result = await call(body)
            except (ValueError, QfnbError) as exc:
                return _openai_error(str(exc), getattr(exc, "status_code", None) or 400, "invalid_request")
            if isinstance(result, dict):
                return JSONResponse(result)

            async def sse() -> AsyncIterator[str]:
                async for chunk in result:
                    yield "data: " + json.dumps(chunk, ensure_ascii=False) + "\n\n"
                yield "data: [DONE]\n\n"
            return StreamingResponse(sse(), media_type="text/event-stream")
        return endpoint

    async def models(request: Request) -> Response:
        import asyncio

        from qfnb.resources import ChatCompletion

        # an instance lists the platform's own models too (its service/list), off this loop
        names = sorted(await asyncio.to_thread(lambda: ChatCompletion().models()))
        return JSONResponse({"object": "list", "data": [{"id": n, "object": "model", "created": 0,
                                                         "owned_by": "qianfan"} for n in names]})

    return Starlette(routes=[Route("/v1/chat/completions", handler(adapter.chat), methods=["POST"]),
                             Route("/v1/completions", handler(adapter.completion), methods=["POST"]),
                             Route("/v1/embeddings", handler(adapter.embedding), methods=["POST"]),
                             Route("/v1/models", models, methods=["GET"])])


def _adapter_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    if not path.is_file():
        raise CliError(f"--config-file: no such file: {path}")
    text = path.read_text("utf-8")
    try:
        import yaml

        config = yaml.safe_load(text)
    except ImportError:
        config = json.loads(text)
    section = config.get("openai_adapter") if isinstance(config, dict) else None
    if not isinstance(section, dict):
        raise CliError("--config-file must have an `openai_adapter` section")
    return section


def openai(args: argparse.Namespace, argv: Sequence[str]) -> int:
    _need_server()
    merged = {"host": "127.0.0.1", "port": 8001, "ignore_system": True, "model_mapping": None, "api_key": None,
              "log_file": None, **_adapter_config(args.config_file)}
    for key in ("host", "port", "ignore_system", "api_key", "log_file"):
        if getattr(args, key) is not None:
            merged[key] = getattr(args, key)
    if not is_loopback(merged["host"]) and not merged["api_key"]:
        raise CliError(f"refusing to serve {merged['host']} without --api-key: anyone there would call Qianfan "
                       "with your credentials")
    if args.detach:
        return _detach(argv, merged["log_file"])
    import uvicorn

    _log_to(merged["log_file"])
    app = openai_app(OpenAIAdapter(ignore_system=bool(merged["ignore_system"]), model_mapping=merged["model_mapping"]),
                     merged["api_key"])
    print(f"OpenAI wrapper server is running at http://{merged['host']}:{merged['port']}\n"
          f"  export OPENAI_BASE_URL=http://{merged['host']}:{merged['port']}/v1 "
          f"OPENAI_API_KEY={'<your --api-key>' if merged['api_key'] else 'any-content-you-want'}", flush=True)
    uvicorn.run(app, host=merged["host"], port=int(merged["port"]), log_level="info")
    return 0


# ---- the signing proxy -------------------------------------------------------------------------------

#: headers that belong to one connection, not to the call a direct proxy passes on (RFC 9110 7.6.1), and
#: the body's length and encoding, which the forwarded call sets again
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "content-length", "content-encoding"})


def direct_app(upstream: str) -> Any:
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
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
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


def proxy_app(kind: str, access_token: str) -> Any:
    """The inference (``kind="base"``) or console proxy's ASGI app."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from qfnb._core.errors import QfnbError
    from qfnb._core.http.client import get_client
    from qfnb._core.http.response import QfResponse
    from qfnb.protocol.routes import MODEL_API_PREFIX, Target

    async def forward(request: Request) -> Response:
        query = dict(request.query_params)
        if access_token and query.pop("access_token", None) != access_token:
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


def proxy(args: argparse.Namespace, argv: Sequence[str]) -> int:
    _need_server()
    if not args.direct and not is_loopback(args.host) and not args.access_token:
        raise CliError(f"refusing to serve {args.host} without --access-token: anyone there would call Qianfan "
                       "with your credentials")
    if args.direct and args.access_token:
        raise CliError("--access-token guards the proxy's own credentials; a --direct proxy has none to guard "
                       "(each client sends its own)")
    if args.detach:
        return _detach(argv, args.log_file)
    import asyncio

    import uvicorn

    _log_to(args.log_file)
    ssl = {f"ssl_{k}": getattr(args, f"ssl_{k}") for k in ("keyfile", "certfile", "keyfile_password", "ca_certs")
           if getattr(args, f"ssl_{k}")}
    scheme = "https" if ssl else "http"
    print(f"Proxy server is running at\n- base: {scheme}://{args.host}:{args.base_port}\n"
          f"- console: {scheme}://{args.host}:{args.console_port}", flush=True)
    servers = [uvicorn.Server(uvicorn.Config(app, host=args.host, port=port, log_level="info", **ssl))
               for app, port in ((_proxy_app("base", args), args.base_port),
                                 (_proxy_app("console", args), args.console_port))]

    async def both() -> None:
        await asyncio.gather(*(s.serve() for s in servers))
    asyncio.run(both())
    return 0


def _proxy_app(kind: str, args: argparse.Namespace) -> Any:
    if not args.direct:
        return proxy_app(kind, args.access_token)
    from qfnb._core.http.client import get_client

    config = get_client().config  # the backend the signing proxy would call: configured, or the local platform
    return direct_app(config.base_url if kind == "base" else config.console_api_base_url)
