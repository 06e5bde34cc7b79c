"""Constrained decoding's cost and tool-call accuracy on the real engine (Qwen2.5-Coder-0.5B).

    .venv/bin/python bench/structured_output.py [--rounds 1] [--chat own,server] [--prompts 10] [--people 8]

1. Speed: the same extraction prompts answered free and under a strict JSON schema (the
   engine's grammar), interleaved prompt by prompt in one run; generated tokens per second of
   each and the ratio schema / free (target >= 0.90), as the engine times its decoding and as
   a client of the platform sees it (wall clock, prefill and queueing included).
2. Tools: a fixed set of prompts offered three tools, with ``tool_choice`` ``auto`` and
   ``required``: how many calls name the right tool with the right key argument, and parse
   failures (a call whose arguments are not a JSON object, or an answer that writes a call of an
   offered tool that did not become ``tool_calls``), which must be 0.
3. The tool loop: each ``auto`` call of step 2, its result sent back as ``%%qfchat --tools`` sends
   it (a v1 ``function`` turn, no functions offered): how many final answers use the result and how
   many write a call again, with the cell's closing ask in the result turn
   (``qfnb.agents.closing_messages``) against the same ask as the system line (the baseline).

``--chat own,server`` runs steps 1 (through the platform) and 2 for each way the platform prepares a
chat for llama-server (``QFNB_LLAMA_CHAT``: ``own`` renders and tokenizes it and sends token ids to
``/completions``; ``server`` sends the turns to llama-server's ``/v1/chat/completions``), each on
its own engine process, interleaved prompt by prompt, and prints each against the first (the
baseline) measured in the same run. ``--prompts``/``--people`` take the first N of each set (a
reduced run on a loaded machine: say so).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.structured_output")

QWEN = "Qwen2.5-Coder-0.5B-Instruct"
PEOPLE = [("Ada", 36, "London"), ("Bo", 29, "Oslo"), ("Chen", 41, "Xi'an"), ("Dara", 23, "Cork"),
          ("Eli", 52, "Haifa"), ("Femi", 31, "Lagos"), ("Gus", 64, "Malmo"), ("Hana", 27, "Kyoto")]
PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age", "city"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "city": {"type": "string"}}}
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {"name": "get_weather", "description": "The current weather in a city",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                     "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "description": "The current time in a time zone",
                                      "parameters": {"type": "object", "properties": {"zone": {"type": "string"}},
                                                     "required": ["zone"]}}},
    {"type": "function", "function": {"name": "convert_currency", "description": "Convert an amount of money",
                                      "parameters": {"type": "object", "required": ["amount", "to"], "properties": {
                                          "amount": {"type": "number"}, "to": {"type": "string"}}}}},
]
#: prompt -> (the tool it needs, its key argument, a word the argument's value must hold)
TOOL_PROMPTS = [
    ("What's the weather in Paris?", "get_weather", "city", "paris"),
    ("Is it raining in Tokyo right now?", "get_weather", "city", "tokyo"),
    ("How warm is it in Cairo today?", "get_weather", "city", "cairo"),
    ("What time is it in Europe/Berlin?", "get_time", "zone", "berlin"),
    ("Tell me the current time in Asia/Shanghai.", "get_time", "zone", "shanghai"),
    ("What's the time in America/New_York?", "get_time", "zone", "new_york"),
    ("Convert 100 dollars to euros.", "convert_currency", "to", "eur"),
    ("How much is 50 EUR in JPY?", "convert_currency", "to", "jpy"),
    ("Change 20 pounds into US dollars.", "convert_currency", "to", "usd"),
    ("What's the weather like in Sydney?", "get_weather", "city", "sydney"),
]


async def _run(engine: Any, messages: list[dict[str, Any]], params: dict[str, Any],
               fields: dict[str, Any] | None) -> tuple[list[Any], float]:
    """The answer to an OpenAI chat body (``params``: its sampling fields, ``fields``: tools or a
    response format), converted to the engine's ask as the platform's route converts it."""
    from qfnb.local.convert.openai_chat import chat_ask
    from qfnb.protocol.wires.openai.requests import OpenAIChatRequest

    ask = chat_ask(OpenAIChatRequest.model_validate({"model": engine.name, "messages": messages, **params,
                                                     **(fields or {})}), "interactive")
    t0 = time.perf_counter()
    deltas = [d async for d in engine.generate(ask)]
    return deltas, time.perf_counter() - t0


def speed(engines: dict[str, Any], rounds: int, people: int) -> dict[str, dict[str, float]]:
    """Tokens per second free and under the schema, through the platform, per engine (``engines``:
    label -> engine), every request of a prompt on each engine in turn before the next prompt."""
    from qfnb.local.engines.gate import run_blocking

    schema = {"response_format": {"type": "json_schema", "json_schema": {"name": "person", "strict": True,
                                                                         "schema": PERSON}}}
    params = {"temperature": 0.0, "max_tokens": 48}
    out: dict[str, dict[str, float]] = {}
    spent = {(e, k): [0, 0.0] for e in engines for k in ("free", "schema")}  # tokens, seconds
    invalid = dict.fromkeys(engines, 0)
    for engine in engines.values():  # the engine started and its first request served
        run_blocking(lambda e=engine: _run(e, [{"role": "user", "content": "warm up"}], {**params, "max_tokens": 4},
                                           None))
    for r in range(rounds):
        for i, (name, age, city) in enumerate(PEOPLE[:people]):
            msgs = [{"role": "user", "content": f"Extract the person as JSON: {name} is {age} and lives in {city}."}]
            # alternate which goes first, so a slower or faster moment of the machine hits both
            order = [("free", None), ("schema", schema)][:: 1 if (r + i) % 2 == 0 else -1]
            labels = list(engines)[:: 1 if i % 2 == 0 else -1]
            for label in labels:
                for kind, fields in order:
                    deltas, took = run_blocking(lambda e=engines[label], m=msgs, f=fields: _run(e, m, params, f))
                    spent[label, kind][0] += deltas[-1].completion_tokens
                    spent[label, kind][1] += took
                    if kind == "schema":
                        try:
                            json.loads("".join(d.text for d in deltas))  # every constrained answer parses
                        except ValueError:
                            invalid[label] += 1
    for label in engines:
        free = spent[label, "free"][0] / spent[label, "free"][1]
        constrained = spent[label, "schema"][0] / spent[label, "schema"][1]
        out[label] = {"free_tok_s": free, "schema_tok_s": constrained, "ratio": constrained / free,
                      "free_tokens": spent[label, "free"][0], "schema_tokens": spent[label, "schema"][0],
                      "schema_seconds": spent[label, "schema"][1], "invalid_json": invalid[label]}
    return out


def engine_speed(registry: Any, rounds: int) -> dict[str, float]:
    """Decode speed as the engine itself times it (``timings``: generated tokens over the time
    spent generating them, no HTTP, queueing or prefill), free and under the schema's grammar,
    interleaved prompt by prompt: constrained decoding's own cost, steady under a loaded machine."""
    import httpx

    server = registry._server(QWEN, registry.spec_of(QWEN))
    lease = server.acquire()
    headers = {"Authorization": f"Bearer {lease.key}"}
    spent: dict[str, list[float]] = {"free": [0.0, 0.0], "schema": [0.0, 0.0]}  # tokens, seconds
    try:
        with httpx.Client(base_url=lease.url, headers=headers, timeout=600, trust_env=False) as http:
            for r in range(rounds):
                for i, (name, age, city) in enumerate(PEOPLE):
                    msgs = [{"role": "user", "content": f"Extract the person as JSON: {name} is {age} and lives in "
                             f"{city}."}]
                    prompt = http.post("/apply-template", json={"messages": msgs}).json()["prompt"]
                    labels = ("free", "schema") if (r + i) % 2 == 0 else ("schema", "free")
                    for label in labels:
                        body = {"prompt": prompt, "n_predict": 48, "temperature": 0.0, "cache_prompt": False,
                                **({"json_schema": PERSON} if label == "schema" else {})}
                        timings = http.post("/completion", json=body).json()["timings"]
                        spent[label][0] += float(timings["predicted_n"])
                        spent[label][1] += float(timings["predicted_ms"]) / 1000
    finally:
        server.release(lease)
    free, constrained = spent["free"][0] / spent["free"][1], spent["schema"][0] / spent["schema"][1]
    return {"free_tok_s": free, "schema_tok_s": constrained, "ratio": constrained / free}


def tools(engines: dict[str, Any], choice: str, prompts: int) -> dict[str, dict[str, float]]:
    """Tool-call accuracy per engine (``engines``: label -> engine), each prompt on each engine in turn."""
    from qfnb.local.convert.answer import answer_of
    from qfnb.local.engines.gate import run_blocking

    names = [t["function"]["name"] for t in TOOLS]
    out = {label: {"prompts": 0, "called": 0, "right": 0, "parse_failures": 0, "seconds": 0.0} for label in engines}
    for i, (prompt, tool, key, word) in enumerate(TOOL_PROMPTS[:prompts]):
        for label in list(engines)[:: 1 if i % 2 == 0 else -1]:
            r = out[label]
            deltas, took = run_blocking(lambda e=engines[label], p=prompt: _run(  # type: ignore[misc]
                e, [{"role": "user", "content": p}], {"temperature": 0.0, "max_tokens": 64},
                {"tools": TOOLS, "tool_choice": choice}))
            r["prompts"] += 1
            r["seconds"] += took
            calls = answer_of(deltas).tool_calls
            text = "".join(d.text for d in deltas)
            if not calls:
                r["parse_failures"] += int(any(f'"{n}"' in text for n in names) or "<tool_call>" in text)
                log.info("%-6s %-45s -> text %r", label, prompt, text[:80])
                continue
            r["called"] += 1
            try:
                args = json.loads(calls[0]["function"]["arguments"])
            except ValueError:
                r["parse_failures"] += 1
                continue
            r["parse_failures"] += int(not isinstance(args, dict))
            ok = calls[0]["function"]["name"] == tool and word in str(args.get(key, "")).lower().replace(" ", "_")
            r["right"] += int(ok)
            log.info("%-6s %-45s -> %s %s %s", label, prompt, calls[0]["function"]["name"], args,
                     "ok" if ok else "WRONG")
    return out


#: the baseline: the system line the cell's last request carried before the ask moved into the result
BASELINE_SYSTEM = "After a function result, answer the user in one plain sentence."
#: each tool's result in the loop, and the words an answer from it holds (one of them)
LOOP_RESULTS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "get_weather": ({"temp_c": 17, "sky": "light rain"}, ("17", "rain")), "get_time": ({"time": "14:05"}, ("14:05",)),
    "convert_currency": ({"amount": 93.4}, ("93.4",))}


def tool_loop(engine: Any) -> dict[str, dict[str, int]]:
    """Final answers after one call's result: used the result / wrote a call again, per way of asking."""
    from qfnb.agents import closing_messages
    from qfnb.local.convert.answer import answer_of
    from qfnb.local.engines.gate import run_blocking
    from qfnb.protocol.wires.chat.tools import v1_history_as_openai

    ways: dict[str, Callable[[list[dict[str, Any]]], list[dict[str, Any]]]] = {
        "ask_in_result": lambda v1: v1_history_as_openai(closing_messages(v1)),
        "ask_as_system": lambda v1: [{"role": "system", "content": BASELINE_SYSTEM}, *v1_history_as_openai(v1)]}
    out = {way: {"answers": 0, "used_result": 0, "called_again": 0} for way in ways}
    for prompt, *_ in TOOL_PROMPTS:
        deltas, _ = run_blocking(lambda p=prompt: _run(  # type: ignore[misc]
            engine, [{"role": "user", "content": p}], {"temperature": 0.0, "max_tokens": 64},
            {"tools": TOOLS, "tool_choice": "auto"}))
        calls = answer_of(deltas).tool_calls
        if not calls:
            continue
        fn = calls[0]["function"]
        result, words = LOOP_RESULTS[fn["name"]]
        v1: list[dict[str, Any]] = [{"role": "user", "content": prompt},
              {"role": "assistant", "content": "", "function_call": {"name": fn["name"], "arguments": fn["arguments"]}},
              {"role": "function", "name": fn["name"], "content": json.dumps(result)}]
        for way, history in ways.items():
            messages = history(v1)
            answer, _ = run_blocking(lambda m=messages: _run(  # type: ignore[misc]
                engine, m, {"temperature": 0.0, "max_tokens": 64}, {"tool_choice": "none"}))
            text = "".join(d.text for d in answer)
            again = '"name"' in text or "<tool_call>" in text
            out[way]["answers"] += 1
            out[way]["called_again"] += int(again)
            out[way]["used_result"] += int(not again and any(w in text for w in words))
            log.info("%-14s %-40s -> %r", way, prompt, text[:80])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip-platform", action="store_true",
                        help="leave out the wall-clock speed through the platform (slow on a loaded machine)")
    parser.add_argument("--skip-decode", action="store_true", help="leave out step 1's engine-timed decode")
    parser.add_argument("--skip-loop", action="store_true", help="leave out step 3 (the tool loop)")
    parser.add_argument("--chat", default="own", help="the chat layers to compare, the baseline first: own,server")
    parser.add_argument("--prompts", type=int, default=len(TOOL_PROMPTS), help="the first N tool prompts")
    parser.add_argument("--people", type=int, default=len(PEOPLE), help="the first N extraction prompts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench._common import load_average
    from qfnb.local.engines.options import EngineOptions, chat_layer
    from qfnb.local.engines.registry import EngineRegistry

    layers = [chat_layer(x) for x in args.chat.split(",")]
    log.info("load average at start: %s", load_average())
    registries = {layer: EngineRegistry(Path(tempfile.mkdtemp(prefix="qfnb-bench-so-")),
                                        options=EngineOptions(slots=2, chat_layer=layer)) for layer in layers}
    try:
        engines = {layer: registry.chat(QWEN) for layer, registry in registries.items()}
        base = layers[0]
        decode = {"ratio": 1.0} if args.skip_decode else engine_speed(registries[base], args.rounds)
        if not args.skip_decode:
            log.info("engine decode: free %.1f tok/s, schema %.1f tok/s, ratio %.2f (target >= 0.90)",
                     decode["free_tok_s"], decode["schema_tok_s"], decode["ratio"])
        results: dict[str, dict[str, dict[str, float]]] = {}
        for choice in ("auto", "required") if args.prompts > 0 else ():
            per_layer = results[choice] = tools(engines, choice, args.prompts)
            for layer, r in per_layer.items():
                log.info("tools (%s) [%s]: %d/%d right, %d called, %d parse failures, %.0f s (x%.2f of %s)", choice,
                         layer, r["right"], r["prompts"], r["called"], r["parse_failures"], r["seconds"],
                         r["seconds"] / per_layer[base]["seconds"], base)
        fast = {} if args.skip_platform else speed(engines, args.rounds, args.people)
        for layer, f in fast.items():
            log.info("through the platform [%s]: free %.1f tok/s, schema %.1f tok/s, ratio %.2f (%d and %d tokens; "
                     "wall clock per request, prefill and queueing included); %d invalid JSON; schema time x%.2f "
                     "of %s", layer, f["free_tok_s"], f["schema_tok_s"], f["ratio"], f["free_tokens"],
                     f["schema_tokens"], f["invalid_json"], f["schema_seconds"] / fast[base]["schema_seconds"], base)
        loop = {} if args.skip_loop else tool_loop(engines[base])
        for way, r in loop.items():
            log.info("tool loop (%s): %d/%d answers used the result, %d wrote a call again", way, r["used_result"],
                     r["answers"], r["called_again"])
        log.info("load average at end: %s", load_average())
        print(json.dumps({"engine_decode": decode, "platform": fast, "tools": results, "tool_loop": loop}))
        ok = decode["ratio"] >= 0.90 and all(r["parse_failures"] == 0 for c in results.values() for r in c.values())
        return 0 if ok else 1
    finally:
        for registry in registries.values():
            registry.close()


if __name__ == "__main__":
    sys.exit(main())
