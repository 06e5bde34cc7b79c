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
import json
import logging
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfnb.common.cli import adapter_guard
from qfnb.common.cli._shared import CliError
from qfnb.protocol.netguard import is_loopback

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


def _detach(argv: Sequence[str], log_file: str | None) -> int:
    """Run this command again in its own session, without ``-d``; print its pid."""
    args = [a for a in argv if a not in ("-d", "--detach")]
    out: int = adapter_guard.private_file(log_file) if log_file else subprocess.DEVNULL
    child = subprocess.Popen([sys.executable, "-m", "qfnb.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    print(f"started in the background (pid {child.pid})")
    return 0


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
        """The v1 turns and arguments of an OpenAI chat body, checked as the platform checks it
        (a wrong field or type is a ValueError naming it); ``tools`` become v1 ``functions``."""
        from qfnb.protocol import tools as tool_checks  # deferred: `qfnb --help` does without it
        from qfnb.protocol.inference import OpenAIChatRequest  # deferred: loads pydantic

        OpenAIChatRequest.model_validate({**request, "model": request.get("model") or "default"})
        messages = copy.deepcopy(request["messages"])
        kwargs = self.base_request(request)
        system = [m for m in messages if m.get("role") in ("system", "developer")]
        messages = [m for m in messages if m.get("role") not in ("system", "developer")]
        if system and not self.ignore_system:
            kwargs["system"] = "\n".join(_text(m.get("content")) for m in system)
        if request.get("tools"):
            kept = ("name", "description", "parameters")
            kwargs["functions"] = [{k: v for k, v in t["function"].items() if k in kept} for t in request["tools"]]
            choice = request.get("tool_choice")
            if isinstance(choice, dict) or choice in ("none", "required"):
                kwargs["tool_choice"] = choice
        turns = [{**m, "content": _text(m.get("content"))} for m in tool_checks.openai_history_as_v1(messages)]
        return turns, kwargs

    async def chat(self, request: dict[str, Any]) -> dict[str, Any] | AsyncIterator[dict[str, Any]]:
        import asyncio  # deferred: with the client below

        from qfnb.resources import ChatCompletion  # deferred: loads the HTTP client (`qfnb --help` does not)

        messages, kwargs = self.chat_request(request)
        n = int(request.get("n") or 1)
        if n > 1 and request.get("stream"):
            raise ValueError("n: this adapter streams one choice; send n > 1 without stream")
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
        answers = await asyncio.gather(*(client.ado(messages=messages, **kwargs) for _ in range(n)))
        usage = [_usage(a) for a in answers]
        return {"id": rid, "object": "chat.completion", **head,
                "choices": [_choice(i, a) for i, a in enumerate(answers)],
                "usage": {k: sum(u[k] for u in usage) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}}

    async def completion(self, request: dict[str, Any]) -> dict[str, Any]:
        from qfnb.resources import Completion  # deferred: loads the HTTP client (`qfnb --help` does not)

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
        from qfnb.resources import Embedding  # deferred: loads the HTTP client (`qfnb --help` does not)

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


def _text(content: Any) -> str:
    """A turn's content as text (OpenAI's content parts joined)."""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _choice(index: int, resp: Any) -> dict[str, Any]:
    """One v1 answer as an OpenAI choice (a ``function_call`` as ``tool_calls``)."""
    message: dict[str, Any] = {"role": "assistant", "content": resp.get("result", "")}
    call = resp.get("function_call")
    if call:
        message["tool_calls"] = [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                                  "function": {"name": call.get("name", ""), "arguments": call.get("arguments", "{}")}}]
    finish = "tool_calls" if call else resp.get("finish_reason") or "stop"
    return {"index": index, "message": message, "finish_reason": "stop" if finish == "normal" else finish}


def _usage(resp: Any) -> dict[str, int]:
    usage = resp.get("usage") or {}
    return {k: int(usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def _openai_error(message: str, status: int, code: str) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                   "code": code}}, status_code=status)


def _openai_refusal(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def _first_problem(exc: ValueError) -> str:
    """A body's first problem, naming its field (pydantic's errors carry the field as a location)."""
    from pydantic import ValidationError  # deferred: only a refused body needs it

    from qfnb.protocol.errors import ProtocolError  # deferred: `qfnb --help` does without it

    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        inner = (first.get("ctx") or {}).get("error")
        if isinstance(inner, ProtocolError):
            return str(inner)
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        return f"{where}: {first.get('msg', 'is invalid')}"
    return str(exc)


def openai_app(adapter: OpenAIAdapter, api_key: str, allowed_hosts: Sequence[str] = ()) -> Any:
    """The adapter's ASGI app (Starlette), behind :class:`adapter_guard.RequestGuard`: clients send
    ``Authorization: Bearer <api_key>`` from a loopback name or one of ``allowed_hosts``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from qfnb._core.errors import QfnbError  # deferred: `qfnb --help` does without it (1 module)

    def handler(call: Callable[[dict[str, Any]], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                body = await request.json()
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                result = await call(body)
            except QfnbError as exc:
                return _openai_error(str(exc), getattr(exc, "status_code", None) or 400, "invalid_request")
            except ValueError as exc:  # JSON, pydantic and protocol errors: the client's body
                return _openai_error(_first_problem(exc), 400, "invalid_request")
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

        from qfnb.resources import ChatCompletion  # deferred: loads the HTTP client (`qfnb --help` does not)

        # an instance lists the platform's own models too (its service/list), off this loop
        names = sorted(await asyncio.to_thread(lambda: ChatCompletion().models()))
        return JSONResponse({"object": "list", "data": [{"id": n, "object": "model", "created": 0,
                                                         "owned_by": "qianfan"} for n in names]})

    app = Starlette(routes=[Route("/v1/chat/completions", handler(adapter.chat), methods=["POST"]),
                            Route("/v1/completions", handler(adapter.completion), methods=["POST"]),
                            Route("/v1/embeddings", handler(adapter.embedding), methods=["POST"]),
                            Route("/v1/models", models, methods=["GET"])])
    return adapter_guard.RequestGuard(app, refusal=_openai_refusal, key_ok=adapter_guard.bearer_key(api_key),
                                      allowed_hosts=allowed_hosts)


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


ARGV_SECRET = ("{option} is refused: argv shows in `ps` to every user of this machine. Put the key in "
               "${env} or in a 0600 file given as {option}-file (with neither, one is generated and printed once)")


def _allowed(host: str, extra: Sequence[str]) -> list[str]:
    """The Host/Origin names a server bound to ``host`` answers: loopback ones, ``extra``, and a
    non-loopback bind address itself."""
    names = list(extra)
    if not is_loopback(host) and host not in ("0.0.0.0", "::"):
        names.append(host)
    return names


def openai(args: argparse.Namespace, argv: Sequence[str]) -> int:
    _need_server()
    if args.api_key:
        raise CliError(ARGV_SECRET.format(option="--api-key", env="QFNB_OPENAI_API_KEY"))
    merged = {"host": "127.0.0.1", "port": 8001, "ignore_system": True, "model_mapping": None, "log_file": None,
              **_adapter_config(args.config_file)}
    for key in ("host", "port", "ignore_system", "log_file"):
        if getattr(args, key) is not None:
            merged[key] = getattr(args, key)
    if merged.get("api_key"):  # the official config file's key: only from a file no one else reads
        adapter_guard.read_secret_file(args.config_file)
        api_key, created = str(merged["api_key"]), None
    else:
        api_key, created = adapter_guard.adapter_secret("openai", "QFNB_OPENAI_API_KEY", args.api_key_file)
    if args.detach:
        return _detach(argv, merged["log_file"])
    import uvicorn

    adapter_guard.log_to(merged["log_file"], [api_key])
    app = openai_app(OpenAIAdapter(ignore_system=bool(merged["ignore_system"]), model_mapping=merged["model_mapping"]),
                     api_key, _allowed(str(merged["host"]), args.allowed_host))
    shown = api_key if created else (f"<the key in {args.api_key_file}>" if args.api_key_file else
                                     "<your key: $QFNB_OPENAI_API_KEY or <data dir>/adapters/openai.key>")
    print(f"OpenAI wrapper server is running at http://{merged['host']}:{merged['port']}\n"
          f"  export OPENAI_BASE_URL=http://{merged['host']}:{merged['port']}/v1 OPENAI_API_KEY={shown}", flush=True)
    if created:
        print(f"  (a new key, kept in {created} (mode 0600); this is the only time it is printed)", flush=True)
    uvicorn.run(app, host=merged["host"], port=int(merged["port"]), log_level="info", log_config=None)
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


def proxy_app(kind: str, access_token: str) -> Any:
    """The inference (``kind="base"``) or console proxy's ASGI app."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from qfnb._core.errors import QfnbError  # deferred: `qfnb --help` does without it (1 module)
    from qfnb._core.http.client import get_client  # deferred: loads the HTTP client (`qfnb --help` does not)
    from qfnb._core.http.response import QfResponse  # deferred: `qfnb --help` does without it (3 modules)
    from qfnb.protocol.routes import MODEL_API_PREFIX, Target  # deferred: `qfnb --help` does without it (1 module)

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
    _need_server()
    if args.access_token:
        raise CliError(ARGV_SECRET.format(option="--access-token", env="QFNB_PROXY_ACCESS_TOKEN"))
    if args.direct and args.access_token_file:
        raise CliError("--access-token-file guards the proxy's own credentials; a --direct proxy has none to guard "
                       "(each client sends its own)")
    token, created = ("", None) if args.direct else \
        adapter_guard.adapter_secret("proxy", "QFNB_PROXY_ACCESS_TOKEN", args.access_token_file)
    if args.detach:
        return _detach(argv, args.log_file)
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
    allowed = _allowed(args.host, args.allowed_host)
    servers = [uvicorn.Server(uvicorn.Config(
        adapter_guard.RequestGuard(app, refusal=_qianfan_refusal, key_ok=None, allowed_hosts=allowed),
        host=args.host, port=port, log_level="info", log_config=None, **ssl))
        for app, port in ((_proxy_app("base", args, token), args.base_port),
                          (_proxy_app("console", args, token), args.console_port))]

    async def both() -> None:
        await asyncio.gather(*(s.serve() for s in servers))
    asyncio.run(both())
    return 0


def _proxy_app(kind: str, args: argparse.Namespace, token: str) -> Any:
    if not args.direct:
        return proxy_app(kind, token)
    from qfnb._core.http.client import get_client  # deferred: loads the HTTP client (`qfnb --help` does not)

    config = get_client().config  # the backend the signing proxy would call: configured, or the local platform
    return direct_app(config.base_url if kind == "base" else config.console_api_base_url)
