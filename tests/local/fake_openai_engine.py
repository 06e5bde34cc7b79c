"""A test double of an OpenAI-compatible engine (what llama-server, vLLM and Ollama speak).

It streams ``tokens`` words per answer, ``delay`` seconds apart, records every request body and
notices when a client goes away mid-answer (``cancelled``), as a real serving engine does.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class FakeEngine:
    def __init__(self, *, tokens: int = 5, delay: float = 0.01, key: str | None = None,
                 tokenize: bool = False) -> None:
        self.tokens, self.delay, self.key = tokens, delay, key
        self.bodies: list[dict[str, Any]] = []
        self.active = 0
        self.peak = 0
        self.cancelled: list[float] = []  # monotonic times at which a client went away
        self.finished = 0
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"]),
                                     Route("/v1/completions", self.complete, methods=["POST"]),
                                     *([Route("/tokenize", self.tokenize, methods=["POST"])] if tokenize else [])])

    async def tokenize(self, request: Request) -> Response:
        """vLLM's ``/tokenize``: the turns rendered (3 tokens a turn here) and counted (a word a token)."""
        body = await request.json()
        self.bodies.append(body)
        turns = body.get("messages") or [{"content": body.get("prompt", "")}]
        count = sum(3 + len(str(t.get("content", "")).split()) for t in turns)
        return JSONResponse({"count": count, "tokens": list(range(count)), "max_model_len": 4096})

    async def chat(self, request: Request) -> Response:
        return await self._answer(request, chat=True)

    async def complete(self, request: Request) -> Response:
        return await self._answer(request, chat=False)

    async def _answer(self, request: Request, *, chat: bool) -> Response:
        if self.key and request.headers.get("authorization") != f"Bearer {self.key}":
            return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, status_code=401)
        body = await request.json()
        self.bodies.append(body)
        source = body["messages"][-1]["content"] if chat else body["prompt"]
        if source == "TOO LONG":
            return JSONResponse({"error": {"code": 400, "message": "the request exceeds the available context "
                                           "size", "type": "exceed_context_size_error"}}, status_code=400)
        n = min(self.tokens, int(body.get("max_tokens") or self.tokens))
        words = [f"w{i}" for i in range(n)]
        finish = "length" if n < self.tokens else "stop"

        async def events() -> Any:
            self.active += 1
            self.peak = max(self.peak, self.active)
            try:
                for i, word in enumerate(words):
                    await asyncio.sleep(self.delay)
                    piece = word if i == 0 else " " + word
                    choice = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
                    yield f"data: {json.dumps({'choices': [{**choice, 'finish_reason': None}]})}\n\n"
                last = {"index": 0, "delta": {}} if chat else {"index": 0, "text": ""}
                usage = {"prompt_tokens": len(source.split()), "completion_tokens": n,
                         "total_tokens": len(source.split()) + n}
                yield f"data: {json.dumps({'choices': [{**last, 'finish_reason': finish}]})}\n\n"
                yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
                yield "data: [DONE]\n\n"
                self.finished += 1
            except asyncio.CancelledError:
                self.cancelled.append(time.monotonic())
                raise
            finally:
                self.active -= 1

        return StreamingResponse(events(), media_type="text/event-stream")
