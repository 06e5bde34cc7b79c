"""Record what real client packages send, as they ship, for the conformance test.

    .venv/bin/python tools/capture_clients.py [--out tests/clients/corpus]

A small capturing server (loopback, a free port) answers every request with a well-formed canned
reply in the shape the route expects (a chat completion, an embedding list, a response, a
message) and records the request: method, path and JSON body. Each client package that is
installed is driven through its documented calls (openai, LangChain's ChatOpenAI and
OpenAIEmbeddings, openai-agents, pydantic-ai, anthropic; instructor and LiteLLM when run from an
environment that has them), and its requests are written to ``<out>/<client>.jsonl``, one line
each, with the model name replaced by ``{model}`` (the conformance test names a served one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger("tools.capture_clients")

MODEL = "captured-model"
EMBED = "captured-embedder"
captured: list[dict[str, Any]] = []


def _canned(path: str, body: dict[str, Any]) -> dict[str, Any]:
    if path.endswith("/embeddings"):
        texts = body.get("input")
        count = len(texts) if isinstance(texts, list) else 1
        return {"object": "list", "model": EMBED, "usage": {"prompt_tokens": 1, "total_tokens": 1},
                "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(count)]}
    if path.endswith("/messages/count_tokens"):
        return {"input_tokens": 3}
    if path.endswith("/messages"):
        return {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL, "stop_reason": "end_turn",
                "stop_sequence": None, "content": [{"type": "text", "text": "Paris"}],
                "usage": {"input_tokens": 3, "output_tokens": 1}}
    if path.endswith("/responses"):
        return {"id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": MODEL,
                "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                            "content": [{"type": "output_text", "text": "Paris", "annotations": []}]}],
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "error": None,
                "incomplete_details": None, "instructions": None, "metadata": {}, "temperature": 1.0, "top_p": 1.0,
                "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4,
                          "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens_details": {"reasoning_tokens": 0}}}
    content = '{"name": "Ada", "age": 36}' if body.get("response_format") or body.get("tools") else "Paris"
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


async def record(request: Request) -> Response:
    raw = await request.body()
    body = json.loads(raw) if raw.strip() else {}
    captured.append({"method": request.method, "path": request.url.path, "body": body})
    if body.get("stream"):
        return JSONResponse({"error": {"message": "the capture answers whole replies only"}}, status_code=400)
    return JSONResponse(_canned(request.url.path, body))


def _serve() -> tuple[str, uvicorn.Server]:
    app = Starlette(routes=[Route("/{path:path}", record, methods=["GET", "POST", "DELETE"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", server


def drive_openai(url: str) -> None:
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
    client.chat.completions.create(model=MODEL, messages=[{"role": "developer", "content": "Be brief."},
                                                          {"role": "user", "content": "Capital of France?"}])
    client.embeddings.create(model=EMBED, input=["one", "two"])
    client.responses.create(model=MODEL, instructions="Be brief.", input="Capital of France?")


def drive_langchain(url: str) -> None:
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings

    chat = ChatOpenAI(model=MODEL, base_url=url + "/v1", api_key="k", max_retries=0)  # type: ignore[arg-type]
    chat.invoke([SystemMessage("Be brief."), HumanMessage([{"type": "text", "text": "Capital of France?"}])])
    OpenAIEmbeddings(model=EMBED, base_url=url + "/v1", api_key="k", check_embedding_ctx_length=False,  # type: ignore[arg-type]
                     max_retries=0).embed_documents(["one", "two"])


def drive_openai_agents(url: str) -> None:
    import openai
    from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner, set_tracing_disabled

    set_tracing_disabled(True)
    async def both() -> None:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
        for model in (OpenAIChatCompletionsModel(model=MODEL, openai_client=client),
                      OpenAIResponsesModel(model=MODEL, openai_client=client)):  # the default: Responses
            await Runner.run(Agent(name="Assistant", instructions="Be brief.", model=model), "Capital of France?")

    asyncio.run(both())


def drive_pydantic_ai(url: str) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=url + "/v1", api_key="k"))
    Agent(model, instructions="Be brief.").run_sync("Capital of France?")


def drive_anthropic(url: str) -> None:
    import anthropic

    client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    client.messages.create(model=MODEL, max_tokens=20, system="Be brief.",
                           messages=[{"role": "user", "content": "Capital of France?"}])
    client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Capital of France?"}])


def drive_instructor(url: str) -> None:
    import instructor
    import openai
    from pydantic import BaseModel, Field

    class Person(BaseModel):
        name: str
        age: int

    class Sentiment(BaseModel):  # pydantic writes minimum/maximum for ge/le: bounds on a number
        label: str
        confidence: float = Field(ge=0, le=1)

    calls = [(instructor.Mode.TOOLS, Person, "Ada is 36.", 3)]  # its default retries: 4 requests
    calls += [(mode, Sentiment, "I love this phone!", 0) for mode in (instructor.Mode.JSON_SCHEMA,
                                                                       instructor.Mode.TOOLS)]
    for mode, model, text, retries in calls:
        client = instructor.from_openai(openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0), mode=mode)
        try:  # the canned reply is neither model's: instructor stops after sending its requests
            client.chat.completions.create(model=MODEL, response_model=model, max_retries=retries,
                                           messages=[{"role": "user", "content": text}])
        except Exception as exc:
            log.info("instructor %s: %s", mode.value, type(exc).__name__)


def drive_litellm(url: str) -> None:
    import litellm

    litellm.completion(model="openai/" + MODEL, api_base=url + "/v1", api_key="k",
                       messages=[{"role": "user", "content": "Capital of France?"}])
    litellm.embedding(model="openai/" + EMBED, api_base=url + "/v1", api_key="k", input=["one"])


CLIENTS: dict[str, Callable[[str], None]] = {
    "openai": drive_openai, "langchain": drive_langchain, "openai-agents": drive_openai_agents,
    "pydantic-ai": drive_pydantic_ai, "anthropic": drive_anthropic, "instructor": drive_instructor,
    "litellm": drive_litellm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/clients/corpus")
    parser.add_argument("--only", help="comma-separated clients (default: every installed one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    url, server = _serve()
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = args.only.split(",") if args.only else list(CLIENTS)
    try:
        for name in wanted:
            captured.clear()
            try:
                CLIENTS[name](url)
            except ImportError as exc:
                log.info("%s: not installed here (%s)", name, exc)
                continue
            except Exception as exc:  # a client that stops on a canned reply still sent what it sends
                log.info("%s: stopped after %d request(s): %s", name, len(captured), exc)
            lines = [json.dumps(r, ensure_ascii=False).replace(MODEL, "{model}").replace(EMBED, "{embedder}")
                     for r in captured if r["method"] == "POST"]
            (args.out / f"{name}.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            log.info("%s: %d request(s) recorded", name, len(lines))
    finally:
        server.should_exit = True


if __name__ == "__main__":
    sys.exit(main())
