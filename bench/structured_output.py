"""Constrained decoding's cost and tool-call accuracy on the real engine (Qwen2.5-Coder-0.5B).

    .venv/bin/python bench/structured_output.py [--rounds 1]

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
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
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
    from qfnb.protocol.openai_requests import OpenAIChatRequest

    ask = chat_ask(OpenAIChatRequest.model_validate({"model": engine.name, "messages": messages, **params,
                                                     **(fields or {})}), "interactive")
    t0 = time.perf_counter()
    deltas = [d async for d in engine.generate(ask)]
    return deltas, time.perf_counter() - t0


def speed(engine: Any, rounds: int) -> dict[str, float]:
    from qfnb.local.engines.gate import run_blocking

    schema = {"response_format": {"type": "json_schema", "json_schema": {"name": "person", "strict": True,
                                                                         "schema": PERSON}}}
    params = {"temperature": 0.0, "max_tokens": 48}
    tokens: dict[str, int] = {"free": 0, "schema": 0}
    secs: dict[str, float] = {"free": 0.0, "schema": 0.0}
    per_round: dict[str, list[float]] = {"free": [], "schema": []}
    run_blocking(lambda: _run(engine, [{"role": "user", "content": "warm up"}], params, None))
    for r in range(rounds):
        round_tok = {"free": 0, "schema": 0}
        round_sec = {"free": 0.0, "schema": 0.0}
        for i, (name, age, city) in enumerate(PEOPLE):
            msgs = [{"role": "user", "content": f"Extract the person as JSON: {name} is {age} and lives in {city}."}]
            # alternate which goes first, so a slower or faster moment of the machine hits both
            order = (("free", None), ("schema", schema)) if (r + i) % 2 == 0 else (("schema", schema), ("free", None))
            for label, fields in order:
                deltas, took = run_blocking(lambda m=msgs, f=fields: _run(engine, m, params, f))  # type: ignore[misc]
                round_tok[label] += deltas[-1].completion_tokens
                round_sec[label] += took
                if label == "schema":
                    json.loads("".join(d.text for d in deltas))  # every constrained answer parses
        for label in tokens:
            tokens[label] += round_tok[label]
            secs[label] += round_sec[label]
            per_round[label].append(round_tok[label] / round_sec[label])
    free, constrained = statistics.median(per_round["free"]), statistics.median(per_round["schema"])
    return {"free_tok_s": free, "schema_tok_s": constrained, "ratio": constrained / free,
            "free_tokens": tokens["free"], "schema_tokens": tokens["schema"]}


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


def tools(engine: Any, choice: str) -> dict[str, int]:
    from qfnb.local.convert.answer import answer_of
    from qfnb.local.engines.gate import run_blocking

    names = [t["function"]["name"] for t in TOOLS]
    right = called = failures = 0
    for prompt, tool, key, word in TOOL_PROMPTS:
        deltas, _ = run_blocking(lambda p=prompt: _run(  # type: ignore[misc]
            engine, [{"role": "user", "content": p}], {"temperature": 0.0, "max_tokens": 64},
            {"tools": TOOLS, "tool_choice": choice}))
        calls = answer_of(deltas).tool_calls
        text = "".join(d.text for d in deltas)
        if not calls:
            failures += int(any(f'"{n}"' in text for n in names) or "<tool_call>" in text)
            log.info("%-45s -> text %r", prompt, text[:80])
            continue
        called += 1
        try:
            args = json.loads(calls[0]["function"]["arguments"])
        except ValueError:
            failures += 1
            continue
        failures += int(not isinstance(args, dict))
        ok = calls[0]["function"]["name"] == tool and word in str(args.get(key, "")).lower().replace(" ", "_")
        right += int(ok)
        log.info("%-45s -> %s %s %s", prompt, calls[0]["function"]["name"], args, "ok" if ok else "WRONG")
    return {"prompts": len(TOOL_PROMPTS), "called": called, "right": right, "parse_failures": failures}


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
    from qfnb.protocol.tools import v1_history_as_openai

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
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from qfnb.local.engines.registry import EngineOptions, EngineRegistry

    registry = EngineRegistry(Path(tempfile.mkdtemp(prefix="qfnb-bench-so-")), options=EngineOptions(slots=2))
    try:
        engine = registry.chat(QWEN)
        decode = engine_speed(registry, args.rounds)
        log.info("engine decode: free %.1f tok/s, schema %.1f tok/s, ratio %.2f (target >= 0.90)",
                 decode["free_tok_s"], decode["schema_tok_s"], decode["ratio"])
        fast = {} if args.skip_platform else speed(engine, args.rounds)
        if fast:
            log.info("through the platform: free %.1f tok/s, schema %.1f tok/s, ratio %.2f (%d and %d tokens; "
                     "wall clock per request, prefill and queueing included)", fast["free_tok_s"],
                     fast["schema_tok_s"], fast["ratio"], fast["free_tokens"], fast["schema_tokens"])
        results = {choice: tools(engine, choice) for choice in ("auto", "required")}
        for choice, r in results.items():
            log.info("tools (%s): %d/%d right, %d called, %d parse failures", choice, r["right"], r["prompts"],
                     r["called"], r["parse_failures"])
        loop = tool_loop(engine)
        for way, r in loop.items():
            log.info("tool loop (%s): %d/%d answers used the result, %d wrote a call again", way, r["used_result"],
                     r["answers"], r["called_again"])
        print(json.dumps({"engine_decode": decode, "platform": fast, "tools": results, "tool_loop": loop}))
        ok = decode["ratio"] >= 0.90 and all(r["parse_failures"] == 0 for r in results.values())
        return 0 if ok else 1
    finally:
        registry.close()


if __name__ == "__main__":
    sys.exit(main())
