"""``qfnb openai``: the OpenAI protocol (``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``, ``/v1/models``) in front of Qianfan, through qfnb's client, with the arguments
converted as the official adapter does; its ASGI app sits behind :class:`adapter_guard.RequestGuard`."""

from __future__ import annotations

import argparse
import copy
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfnb.common.cli import adapter_guard
from qfnb.common.cli._shared import CliError
from qfnb.common.cli.servers import ARGV_SECRET, allowed_names, detach, need_server

if TYPE_CHECKING:  # pragma: no cover
    from starlette.responses import Response
    from starlette.types import ASGIApp

#: the official adapter's model mapping (regex -> Qianfan model)
DEFAULT_MODEL_MAPPING = {r"gpt-3.5.*": "ERNIE-3.5-8K", r"gpt-4.*": "ERNIE-4.0-8K",
                         r"text-embedding.*": "Embedding-V1"}
EMBEDDING_BATCH = 16


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
        from qfnb.protocol.wires.chat import tools as tool_checks  # deferred: `qfnb --help` does without it
        from qfnb.protocol.wires.openai.requests import OpenAIChatRequest  # deferred: loads pydantic
        from qfnb.protocol.wires.qianfan.inference import parse_request  # deferred: loads pydantic

        parse_request(OpenAIChatRequest, {**request, "model": request.get("model") or "default"})
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


def _openai_refusal(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object; ``param`` names the request field at fault, as the platform's routes do."""
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def _first_problem(exc: ValueError) -> tuple[str, str | None]:
    """A body's first problem as (sentence naming its field, the field): the protocol's checks raise
    :class:`~qfnb.protocol.errors.ProtocolError` (``parse_request`` turns pydantic's errors into one)."""
    from qfnb.protocol.errors import ProtocolError  # deferred: `qfnb --help` does without it

    if isinstance(exc, ProtocolError):
        return str(exc), exc.field
    return str(exc), None


def openai_app(adapter: OpenAIAdapter, api_key: str, allowed_hosts: Sequence[str] = ()) -> ASGIApp:
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
                status = getattr(exc, "status_code", None) or 400
                return JSONResponse(_openai_refusal(status, "invalid_request", str(exc)), status_code=status)
            except ValueError as exc:  # JSON, pydantic and protocol errors: the client's body
                message, param = _first_problem(exc)
                return JSONResponse(_openai_refusal(400, "invalid_request", message, param), status_code=400)
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


def openai(args: argparse.Namespace, argv: Sequence[str]) -> int:
    need_server()
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
        return detach(argv, merged["log_file"])
    import uvicorn

    adapter_guard.log_to(merged["log_file"], [api_key])
    app = openai_app(OpenAIAdapter(ignore_system=bool(merged["ignore_system"]), model_mapping=merged["model_mapping"]),
                     api_key, allowed_names(str(merged["host"]), args.allowed_host))
    shown = api_key if created else (f"<the key in {args.api_key_file}>" if args.api_key_file else
                                     "<your key: $QFNB_OPENAI_API_KEY or <data dir>/adapters/openai.key>")
    print(f"OpenAI wrapper server is running at http://{merged['host']}:{merged['port']}\n"
          f"  export OPENAI_BASE_URL=http://{merged['host']}:{merged['port']}/v1 OPENAI_API_KEY={shown}", flush=True)
    if created:
        print(f"  (a new key, kept in {created} (mode 0600); this is the only time it is printed)", flush=True)
    uvicorn.run(app, host=merged["host"], port=int(merged["port"]), log_level="info", log_config=None)
    return 0
