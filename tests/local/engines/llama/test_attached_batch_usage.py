"""Issue 92 §4: a batch on an attached OpenAI-compatible engine (``QFNB_ENGINES``) has the ``usage`` its
engine billed, and ``/metrics`` says the same.

The probe's batch read ``input_tokens: 0`` and only its lost sends' output: its engine answered a
streamed request whole, as JSON, which the link read as a stream with no event (no text, no usage).
The double here keeps its own books of what it billed, answering as a stream or whole."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.cloud import serve
from platform_helpers import bearer, make_settings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from qfnb.local.engines.registry import EngineOptions, EngineRegistry, parse_external
from qfnb.local.server.app import create_app

ROWS = 12


class BillingEngine:
    """An OpenAI-compatible chat engine that counts what it billed: a prompt token a word of the
    messages, an answer of ``1 + len(words) % 4`` words; ``whole``: every answer sent as one JSON
    body, whatever ``stream`` asked."""

    def __init__(self, *, whole: bool) -> None:
        self.whole = whole
        self.prompt = self.completion = self.requests = 0
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        words = [w for m in body["messages"] for w in str(m.get("content") or "").split()]
        answer = [f"a{i}" for i in range(1 + len(words) % 4)]
        usage = {"prompt_tokens": len(words), "completion_tokens": len(answer),
                 "total_tokens": len(words) + len(answer)}
        self.prompt += len(words)
        self.completion += len(answer)
        self.requests += 1
        if self.whole or not body.get("stream"):
            return JSONResponse({"id": "c1", "object": "chat.completion", "model": body["model"], "usage": usage,
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": " ".join(answer)}}]})

        async def events() -> Any:
            for i, word in enumerate(answer):
                await asyncio.sleep(0)
                chunk = {"choices": [{"index": 0, "delta": {"content": word if i == 0 else " " + word},
                                      "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\n"
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture(params=[False, True], ids=["streamed", "whole"])
def attached(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, BillingEngine]]:
    engine = BillingEngine(whole=request.param)
    with serve(engine.app) as url:
        external = parse_external({"Attached": {"base_url": url + "/v1", "model": "remote-7b"}})
        registry = EngineRegistry(tmp_path, options=EngineOptions(slots=2, queue=4, external=external))
        with TestClient(create_app(make_settings(tmp_path), registry), base_url="http://127.0.0.1:8123") as client:
            yield client, engine
        registry.close()


def _batch_metrics(text: str) -> dict[str, float]:
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if 'route="batch"' in line and not line.startswith("#"):
            name = line.split("{", 1)[0]
            sums[name] = sums.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return sums


def test_an_attached_engines_batch_usage_is_what_the_engine_billed(attached: tuple[TestClient, BillingEngine]) -> None:
    client, engine = attached
    headers = {"Authorization": f"Bearer {bearer(client)}"}
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "attached", "max_tokens": 16,
                       "messages": [{"role": "user", "content": " ".join(["word"] * (3 + i))}]}} for i in range(ROWS)]
    upload = client.post("/v1/files", headers=headers, data={"purpose": "batch"}, files={
        "file": ("rows.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode(), "application/octet-stream")})
    assert upload.status_code == 200, upload.text
    batch = client.post("/v1/batches", headers=headers, json={"input_file_id": upload.json()["id"],
                                                              "endpoint": "/v1/chat/completions",
                                                              "completion_window": "24h"}).json()
    deadline = time.monotonic() + 60
    while batch["status"] not in ("completed", "failed", "cancelled", "expired") and time.monotonic() < deadline:
        time.sleep(0.05)
        batch = client.get(f"/v1/batches/{batch['id']}", headers=headers).json()
    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == ROWS, batch
    assert engine.requests == ROWS and engine.prompt > 0
    usage = batch["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (engine.prompt, engine.completion)
    out = client.get(f"/v1/files/{batch['output_file_id']}/content", headers=headers).text.splitlines()
    first = next(json.loads(x) for x in out if json.loads(x)["custom_id"] == "r0")
    assert first["response"]["body"]["choices"][0]["message"]["content"] == "a0 a1 a2 a3"  # 3 words: 4 answered
    metrics = _batch_metrics(client.get("/metrics", headers=headers).text)
    assert (metrics.get("qfnb_prompt_tokens_total"), metrics.get("qfnb_completion_tokens_total")) == (
        engine.prompt, engine.completion)
