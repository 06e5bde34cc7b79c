"""Speculative decoding on the tool model: decode speed with and without a draft, and the same greedy text.

    .venv/bin/python bench/speculative.py [--rounds 2] [--tokens 256] [--kinds none,one-line,grammar] [--jump]

The tool model (Qwen2.5-Coder-1.5B-Instruct) runs in llama-server with the platform's own flags
(:class:`~qfnb.local.engines.llama.process.command.ServerConfig`), once per contender, the contenders taking
turns in each round (so the machine's load moves over all of them alike). Each answers the same
greedy requests: JSON under a schema, tool calls, code, and plain prose (through llama-server's
chat route), and a required tool call as qfnb's own chat layer sends it (``calls``: the template's
call opener, the calls' grammar). Prints, per contender and request kind, the median decode tok/s
(llama-server's own ``timings.predicted_per_second``), its ratio to no draft (for the grammar kinds:
to one-line JSON without drafts), the draft tokens accepted (``timings.draft_n_accepted`` of
``draft_n``), and whether each greedy text is byte-identical to the baseline's. Targets (issue 68):
>= 1.3x on JSON/tool answers, >= 0.98x on prose, identical text. With ``--tokens`` high enough for the
answers to end, it also prints the time to decode each whole answer against no draft's (one-line JSON
has fewer tokens than the model's own indented JSON, so the answer ends sooner still). Besides the platform's kinds, the
:data:`VARIANTS` can be named: other n-gram lookup lengths and draft sizes, and our build's
``one-line`` (JSON written on one line, the grammar kinds' baseline) and ``grammar`` (one-line JSON
and drafts of the text a request's grammar forces next, as the platform starts its engines).

``--jump`` measures jump-forward decoding's room instead (on the engine without a draft): the
schema-constrained answers as qfnb's own chat layer asks for them (a JSON schema's grammar; a
required call after the template's call opener, under the calls' schema), each token marked whole
forced or not by :mod:`bench.jump_forward`; a run of ``k`` forced tokens jumped
(appended to the prompt and read in one batch with the token before them, whose step would have
computed the first of them) saves at most ``k`` of the engine's forward passes, so the bound printed
is tokens / (tokens - forced tokens), before any request's own cost. And what ``k`` tokens read in
one batch then a step cost beside ``k + 1`` decode steps, on a slot that holds the rest (the prompt
cache reused), one request each.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.jump_forward import forced_runs  # noqa: E402
from qfnb.local.engines.llama import grammar, tool_calls  # noqa: E402
from qfnb.local.engines.llama.process import spawn  # noqa: E402
from qfnb.local.engines.llama.process.command import ServerConfig, find_binary, reported_port, speculative_args  # noqa: E402
from qfnb.local.engines.store import assets  # noqa: E402
from qfnb.protocol.schema.enforced import enforced_part  # noqa: E402

log = logging.getLogger("bench.speculative")
TOOL_MODEL = "Qwen2.5-Coder-1.5B-Instruct"
DRAFT_MODEL = "Qwen2.5-Coder-0.5B-Instruct"

USERS = {"type": "array", "minItems": 6, "maxItems": 6, "items": {
    "type": "object", "additionalProperties": False, "required": ["id", "name", "email", "role", "active"],
    "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "email": {"type": "string"},
                   "role": {"type": "string", "enum": ["admin", "editor", "viewer"]}, "active": {"type": "boolean"}}}}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "required": ["city", "unit"],
                   "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}}}}

#: request kind -> (chat body fields); the agents' and structured-output benches' kinds of answer
REQUESTS: dict[str, dict[str, Any]] = {
    "json": {"messages": [{"role": "user", "content": "Make up six users of a wiki as JSON: id, name, email, role, "
                                                      "active."}],
             "response_format": {"type": "json_schema", "json_schema": {"name": "users", "schema": USERS}}},
    "tools": {"messages": [{"role": "user", "content": "What is the weather in Paris, Tokyo, Berlin, Madrid, Rome "
                                                       "and Oslo, in celsius? Call the tool once for each city."}],
              "tools": [WEATHER], "tool_choice": "required", "parallel_tool_calls": True},
    "code": {"messages": [{"role": "user", "content": "Write a Python dataclass Employee with ten typed fields, "
                                                      "and methods to_dict and from_dict that list every field."}]},
    "prose": {"messages": [{"role": "user", "content": "Write a short story about a lighthouse keeper who finds a "
                                                       "message in a bottle."}]},
}

#: a required tool call as qfnb's own chat layer asks the engine for it (``tools``' request, its calls' grammar)
OWN_CALLS = "calls"
KINDS = [*REQUESTS, OWN_CALLS]

#: n-gram draft variants measured beside the platform's kinds (name -> llama-server flags)
VARIANTS: dict[str, tuple[str, ...]] = {
    "ngram-mod-8": ("--spec-type", "ngram-mod", "--spec-ngram-mod-n-match", "8", "--spec-ngram-mod-n-min", "2",
                    "--spec-ngram-mod-n-max", "16"),
    "ngram-mod-4": ("--spec-type", "ngram-mod", "--spec-ngram-mod-n-match", "4", "--spec-ngram-mod-n-min", "1",
                    "--spec-ngram-mod-n-max", "8"),
    "ngram-map-k-2": ("--spec-type", "ngram-map-k", "--spec-ngram-map-k-size-n", "2", "--spec-ngram-map-k-size-m", "6"),
    # scripts/llama_server_grammar_draft.patch: one-line JSON (the baseline of the grammar kinds), and drafts of
    # the text a request's grammar forces next
    "one-line": ("--json-one-line",),
    "grammar": ("--json-one-line", "--spec-grammar"),
}


def flags(kind: str) -> tuple[str, ...]:
    if kind == "none":
        return ()
    if kind in VARIANTS:
        return VARIANTS[kind]
    return speculative_args(kind, assets.gguf_path(DRAFT_MODEL) if kind == "draft" else None)


def start(kind: str, log_dir: Path, threads: int | None) -> tuple[subprocess.Popen[bytes], str]:
    config = ServerConfig(name=f"bench-{kind}", gguf=assets.gguf_path(TOOL_MODEL), log_dir=log_dir,
                          speculative=flags(kind))
    if threads:
        config.threads = threads
    argv = config.argv(find_binary(), ())
    logf = (log_dir / f"{kind}.log").open("wb")  # a fresh log: the port read is this process's
    proc = spawn.popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        port = reported_port((log_dir / f"{kind}.log").read_bytes())
        if port:
            url = f"http://127.0.0.1:{port}"
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
        if proc.poll() is not None:
            raise RuntimeError(f"llama-server ({kind}) exited: see {log_dir / f'{kind}.log'}")
        time.sleep(0.2)
    raise RuntimeError(f"llama-server ({kind}) did not start")


@dataclass(frozen=True)
class Answer:
    text: str
    rate: float  # decode tok/s
    drafted: int
    accepted: int
    seconds: float  # decoding the whole answer
    tokens: int


def ask(url: str, name: str, tokens: int) -> Answer:
    if name == OWN_CALLS:  # a required call as qfnb's own chat layer sends it: the template's call opener, the grammar
        with httpx.Client(timeout=600) as client:
            prompt, schema = own_chat_request(client, url, "tools")
            reply = client.post(url + "/completion", json={
                "prompt": prompt, "n_predict": tokens, "temperature": 0.0, "seed": 1, "cache_prompt": False,
                **grammar.engine_fields(schema)}).json()
        text = reply["content"]
    else:
        body = {**REQUESTS[name], "temperature": 0.0, "max_tokens": tokens, "seed": 1, "cache_prompt": False}
        reply = httpx.post(url + "/v1/chat/completions", json=body, timeout=600).json()
        msg = reply["choices"][0]["message"]
        text = (msg.get("content") or "") + repr(msg.get("tool_calls") or "")
    t = reply.get("timings") or {}
    return Answer(text, float(t.get("predicted_per_second") or 0), int(t.get("draft_n") or 0),
                  int(t.get("draft_n_accepted") or 0), float(t.get("predicted_ms") or 0) / 1000,
                  int(t.get("predicted_n") or 0))


def own_chat_request(client: httpx.Client, url: str, name: str) -> tuple[list[int], dict[str, Any]]:
    """The prompt's tokens and the schema of a schema-constrained request as qfnb's own chat layer
    (:class:`~qfnb.local.engines.llama.engine.OwnChat`) sends it: the chat rendered by the model's
    template (with the tools; a required call opened with the template's call opener) and the
    grammar's schema (the response format's, or the calls')."""
    fields = REQUESTS[name]
    tools = fields.get("tools")
    rendered = client.post(url + "/apply-template", json={"messages": fields["messages"],
                                                          **({"tools": tools} if tools else {})}).json()["prompt"]
    text = tool_calls.fix_rendered(rendered)
    if tools:
        text += tool_calls.call_prefix(text)
        schema = tool_calls.call_schema(tools)
    else:
        schema = fields["response_format"]["json_schema"]["schema"]
    return client.post(url + "/tokenize", json={"content": text, "add_special": True, "parse_special": True}
                       ).json()["tokens"], schema


def jump_room(url: str, tokens: int) -> None:
    """Jump-forward's room on the schema-constrained answers, and a prefilled batch's cost beside decode steps."""
    client = httpx.Client(timeout=600)
    for name in ("json", "tools"):
        prompt, schema = own_chat_request(client, url, name)
        body = {"prompt": prompt, "n_predict": tokens, "temperature": 0.0, "cache_prompt": True, "id_slot": 0,
                "return_tokens": True, **grammar.engine_fields(schema)}
        reply = client.post(url + "/completion", json=body).json()
        ids = reply["tokens"]
        pieces = [client.post(url + "/detokenize", json={"tokens": [t]}).json()["content"] for t in ids]
        runs = forced_runs(enforced_part(schema).schema, pieces)
        t = reply["timings"]
        log.info("jump %-6s %d tokens, %d whole forced in %d runs (longest %d): bound %.2fx, %d requests more; "
                 "prefill %.1f tok/s, decode %.1f tok/s", name, len(ids), sum(runs), len(runs), max(runs, default=0),
                 len(ids) / max(1, len(ids) - sum(runs)), len(runs), t["prompt_per_second"], t["predicted_per_second"])
        if name == "json":
            cached = prompt + ids[:24]
            for k in (1, 2, 4, 8):
                costs = []
                for n_prompt, n_predict in ((len(cached) + k, 1), (len(cached), k + 1)):  # jump k, or decode them
                    client.post(url + "/completion", json={"prompt": cached, "n_predict": 0, "cache_prompt": True,
                                                           "id_slot": 0})
                    began = time.monotonic()
                    client.post(url + "/completion", json={
                        "prompt": prompt + ids[:n_prompt - len(prompt)], "n_predict": n_predict, "temperature": 0.0,
                        "cache_prompt": True, "id_slot": 0, **grammar.engine_fields(schema)})
                    costs.append((time.monotonic() - began) * 1000)
                log.info("jump %d tokens then a step: %.0f ms; %d steps: %.0f ms (%.2fx)", k, costs[0], k + 1,
                         costs[1], costs[1] / costs[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0, help="engine threads (default: the platform's, one per "
                    "core; 1 measures steadier on a machine loaded by others)")
    ap.add_argument("--kinds", default="none,ngram-simple,ngram-map-k,ngram-mod,draft")
    ap.add_argument("--jump", action="store_true", help="jump-forward's room on JSON and calls (see above), first")
    ap.add_argument("--requests", default=",".join(KINDS), help=f"the request kinds to send (of {', '.join(KINDS)})")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    kinds, names = args.kinds.split(","), args.requests.split(",")
    rates: dict[tuple[str, str], list[float]] = {}
    seconds: dict[tuple[str, str], list[float]] = {}
    finished: dict[tuple[str, str], bool] = {}
    drafts: dict[tuple[str, str], tuple[int, int]] = {}
    texts: dict[tuple[str, str], set[str]] = {}
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with open("/proc/loadavg") as fh:
        log.info("load before: %s", fh.read().strip())
    with tempfile.TemporaryDirectory() as tmp:
        if args.jump:
            proc, url = start("none", Path(tmp), args.threads)
            try:
                jump_room(url, args.tokens)
            finally:
                proc.terminate()
                proc.wait(10)
        for r in range(args.rounds):
            for kind in kinds:
                proc, url = start(kind, Path(tmp), args.threads)
                try:
                    for name in names:
                        a = ask(url, name, args.tokens)
                        rates.setdefault((kind, name), []).append(a.rate)
                        seconds.setdefault((kind, name), []).append(a.seconds)
                        finished[(kind, name)] = finished.get((kind, name), True) and a.tokens < args.tokens
                        texts.setdefault((kind, name), set()).add(a.text)
                        d = drafts.get((kind, name), (0, 0))
                        drafts[(kind, name)] = (d[0] + a.drafted, d[1] + a.accepted)
                        log.info("round %d %-12s %-6s %6.1f tok/s  %5.2f s  drafts %d/%d", r, kind, name, a.rate,
                                 a.seconds, a.accepted, a.drafted)
                finally:
                    proc.terminate()
                    proc.wait(10)
    with open("/proc/loadavg") as fh:
        log.info("load after: %s", fh.read().strip())
    # answer s: decoding the whole answer (median); "vs none": none's time over this kind's, for answers that
    # ended before --tokens (a cut answer's time says nothing of the whole one's)
    log.info("%-12s %-6s %8s %7s %14s %-5s %9s %8s", "draft", "kind", "tok/s", "ratio", "accepted", "same",
             "answer s", "vs none")
    for kind in kinds:
        # the grammar kinds write one-line JSON: their baseline is one-line JSON without drafts
        baseline = "one-line" if "--json-one-line" in flags(kind) and "one-line" in kinds else "none"
        for name in names:
            rate = statistics.median(rates[(kind, name)])
            base = statistics.median(rates[(baseline, name)]) if baseline in kinds else rate
            n, acc = drafts[(kind, name)]
            same = texts[(kind, name)] == texts.get((baseline, name), texts[(kind, name)])
            took = statistics.median(seconds[(kind, name)])
            whole = finished[(kind, name)] and finished.get(("none", name), False)
            versus = f"{statistics.median(seconds[('none', name)]) / took:7.2f}x" if whole and took else "    cut"
            log.info("%-12s %-6s %8.1f %6.2fx %7d/%-6d %-5s %8.2fs %8s", kind, name, rate, rate / base, acc, n,
                     "yes" if same else "NO", took, versus)


if __name__ == "__main__":
    main()
