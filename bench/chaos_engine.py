"""The chaos bench's engine: an OpenAI-compatible chat engine in a process of its own that keeps
its own books, so what reached an engine is counted at the engine, not by qfnb.

    python bench/chaos_engine.py PORT JOURNAL [--delay 0.02]

Every request is journaled as it arrives (``recv``: its key, the last user message, its prompt
tokens: the words of every message, and ``orphan``: its sender had already hung up when it was
read; ``dropped``, with no key: its sender hung up before the server read its body, which uvicorn
then hands the app as a disconnect), as it ends (``done``: the completion tokens it sent) or as its
caller drops it (``abort``: the tokens sent so far), one JSON line each, flushed at once; a kill of this process leaves
requests with no end line, which the bench reads as aborted at the kill. The answer is
deterministic: ``answer to <key>`` and words up to a length set by the key, streamed a word every
``--delay`` seconds, with the usage chunk last; with ``--whole``, sent whole as one JSON answer with its
usage once every word is made (an OpenAI-compatible engine that does not stream, whatever the request asks).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.responses import JSONResponse


def answer_words(key: str) -> list[str]:
    """The words of ``key``'s answer: ``answer to <key>`` and fillers, 8 to 23 words in all (fixed by the key)."""
    n = 8 + int(hashlib.sha256(key.encode()).hexdigest()[:4], 16) % 16
    words = ["answer", "to", *key.split()]
    return (words + [f"w{i}" for i in range(n)])[:max(n, len(words))]


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content") or "").split()) for m in messages)


async def whole_answer(note: Any, delay: float, rid: int, model: Any, words: list[str], prompt: int,
                       cap: Any) -> JSONResponse:
    """The answer of ``--whole``: made at the streamed pace, sent at the end as one JSON body with its usage."""
    from starlette.responses import JSONResponse

    try:
        await asyncio.sleep(delay * len(words))
    except BaseException:
        note(ev="abort", id=rid, sent=0)
        raise
    usage = {"prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words)}
    note(ev="done", id=rid, completion=len(words))
    return JSONResponse({"id": f"c{rid}", "object": "chat.completion", "model": model, "usage": usage,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(words)},
                                      "finish_reason": "length" if cap and len(words) == cap else "stop"}]})


def app(journal: Path, delay: float, whole: bool = False) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    ids = itertools.count(1)
    book = open(journal, "a", encoding="utf-8")  # noqa: SIM115  # the process's lifetime

    def note(**entry: Any) -> None:
        book.write(json.dumps({**entry, "t": time.time()}) + "\n")
        book.flush()

    async def chat(request: Request) -> StreamingResponse | JSONResponse:
        try:
            body = await request.json()
        except ClientDisconnect:  # the server took the request in, and hands a disconnect for its body
            note(ev="dropped")
            return JSONResponse({"error": "the client went away"}, status_code=499)
        messages = body.get("messages") or []
        key = str(messages[-1].get("content") or "") if messages else ""
        rid, prompt = next(ids), prompt_tokens(messages)
        words = answer_words(key)
        cap = body.get("max_tokens") or body.get("max_completion_tokens")
        if cap:
            words = words[:int(cap)]
        # a request whose sender had hung up by the time this (busy) loop read it: sent by a process killed since
        note(ev="recv", id=rid, key=key, prompt=prompt, orphan=await request.is_disconnected())

        async def events() -> Any:
            sent = 0
            try:
                for i, word in enumerate(words):
                    await asyncio.sleep(delay)
                    last = i == len(words) - 1
                    chunk = {"id": f"c{rid}", "object": "chat.completion.chunk", "model": body.get("model"),
                             "choices": [{"index": 0, "delta": {"content": word if i == 0 else " " + word},
                                          "finish_reason": ("length" if cap and len(words) == cap else "stop")
                                          if last else None}]}
                    yield f"data: {json.dumps(chunk)}\n\n"
                    sent += 1
                usage = {"prompt_tokens": prompt, "completion_tokens": sent, "total_tokens": prompt + sent}
                yield f"data: {json.dumps({'id': f'c{rid}', 'choices': [], 'usage': usage})}\n\n"
                yield "data: [DONE]\n\n"
                note(ev="done", id=rid, completion=sent)
            except BaseException:
                note(ev="abort", id=rid, sent=sent)
                raise

        if whole:  # an engine that answers every request whole, as JSON, whatever ``stream`` asked
            return await whole_answer(note, delay, rid, body.get("model"), words, prompt, cap)
        return StreamingResponse(events(), media_type="text/event-stream")

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "chaos", "object": "model"}]})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                             Route("/v1/models", models, methods=["GET"])])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("journal", type=Path)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--whole", action="store_true", help="answer each request whole, as JSON, never streamed")
    args = parser.parse_args()
    uvicorn.run(app(args.journal, args.delay, args.whole), host="127.0.0.1", port=args.port, log_level="warning",
                timeout_graceful_shutdown=0)


if __name__ == "__main__":
    main()
