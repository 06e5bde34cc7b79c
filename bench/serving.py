"""Serving through the local platform vs bare llama-server, in one run (issue 10's targets).

    .venv/bin/python bench/serving.py [--tokens 128] [--rounds 3] [--skip-lora]
    .venv/bin/python bench/serving.py --engine-url http://127.0.0.1:8080 --slots 32 --skip-lora
    .venv/bin/python bench/serving.py --skip-lora --skip-seeds --before /tmp/before  # a change's effect, paired

Both sides run the same llama-server binary, model (Qwen2.5-Coder-0.5B-Instruct), flags, slot
count (the platform's spare interactive slots included) and build switches; they are measured one
after the other, never at the same time. With ``--engine-url`` the engine is one already running
(a GPU box's llama.cpp or vLLM, any OpenAI-compatible server): "bare" is that engine called
directly and "platform" is ``qfnb serve`` with the engine mapped to the chat model's name
(``QFNB_ENGINES``), the way a user moves the engine off this machine. Prints:

1. single-stream decode tok/s (first streamed token to last) and time to first token, through
   ``qfnb serve`` (v1 completions, SSE) and bare (``/v1/completions``); target >= 90 %;
2. aggregate tok/s with 1, 4, 8 and 16 concurrent chats through the platform (and bare);
   target at 8: >= 3x single-stream;
3. decode tok/s of a LoRA-served model vs its base (Gemma-3-270M, an adapter in the base's
   engine, through the engine API);
4. the cost of seeds: aggregate tok/s of ``--seeded-users`` concurrent chats (default 8) through the
   platform with none seeded, then with ``--seeded-share`` of them (default 0.25) sending a ``seed``
   (the engine computes every batch holding a seeded request with batch-invariant kernels, so its
   answer repeats beside the others), in the same run: their ratio.

With ``--relay-floor`` a third side is measured in the same rounds: a bare llama-server of its own
behind ``bench/byte_relay.py``, a process that passes the bytes on unread. What it costs is what any server
in the path costs on these cores before it does work of its own: the floor for the platform's ratio.
With ``--pump-floor`` another: ``bench/pump_floor.py``, uvicorn and a bare ASGI app that parses each engine
event and writes a v1 chunk in one callback (no task woken, no middleware): the floor for a platform that
rewrites each token in Python.

Each side's aggregate is also printed as its rounds' ratios to bare: their median and range, their mean
with a 90 % interval (Student's t), and each side's gap to the relay paired a round. A round's spread
on two cores is a few percent: 15 rounds resolve about a point, 5 do not.

With ``--unpaced`` another: the same platform with ``QFNB_STREAM_INTERVAL_MS=0``, which hands each token on
as it comes instead of at its pace (the first token at once, then about three tokens an event):
what the pace buys, in the same rounds. Tokens are counted from each answer's ``usage`` (an event of the
platform's may hold several), one an event where a server does not say.

With ``--observe-cost`` "bare" is the platform itself with ``/metrics`` and tracing off
(``QFNB_OBSERVE=0``): what counting and tracing cost real serving (issue 56's target: >= 98 %).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "local"))

from _common import load_average, log_to_stdout, printed_port, serve_bare, serve_platform  # noqa: E402
from platform_helpers import spawn_reporting  # noqa: E402

from qfnb.local.engines import DEFAULT_CHAT, GEMMA  # noqa: E402
from qfnb.local.engines.ask import Sampling, TextAsk  # noqa: E402
from qfnb.local.engines.lanes import spare_slots  # noqa: E402
from qfnb.local.engines.llama.process.command import BUILD_SWITCHES, default_slots  # noqa: E402
from qfnb.local.engines.store import assets  # noqa: E402
from qfnb.protocol.wires.codec.sse import SSEDecoder  # noqa: E402
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX, OAUTH_TOKEN  # noqa: E402

log = logging.getLogger("bench.serving")
PROMPT = ("<|im_start|>user\nRound {n}: write a Python module that implements a binary search tree with insert, "
          "delete, search and in-order traversal, with docstrings.<|im_end|>\n<|im_start|>assistant\n")


class Side:
    """One contender: how to stream a completion and what counts as one token."""

    def __init__(self, name: str, url: str, params: dict[str, str], headers: dict[str, str], body: dict[str, Any],
                 text_key: str) -> None:
        self.name, self.url, self.params, self.headers, self.body, self.text_key = name, url, params, headers, body, \
            text_key
        self.tokens = 0  # streamed so far

    async def one(self, client: httpx.AsyncClient, prompt: str, tokens: int,
                  seed: int | None = None, texts: list[str] | None = None) -> tuple[float, float, int]:
        """(seconds to first token, seconds first->last, tokens after the first); the text is appended
        to ``texts``. A seeded request samples at temperature 0.9. Tokens are the answer's usage where
        its events say it (a server may send several tokens in one event), else one an event."""
        body = {**self.body, "prompt": prompt, self.text_key: tokens,
                **({"seed": seed, "temperature": 0.9} if seed is not None else {})}
        start = time.perf_counter()
        first = last = 0.0
        at_first = used = 0  # tokens: in the first event with text, and in all so far
        pieces: list[str] = []
        decoder = SSEDecoder()
        async with client.stream("POST", self.url, params=self.params, headers=self.headers, json=body) as resp:
            async for chunk in resp.aiter_text():
                for item in decoder.feed(chunk):
                    if item.done or not isinstance(item.data, dict):
                        continue
                    data = item.data
                    piece = data.get("result") if "result" in data else \
                        "".join(c.get("text") or "" for c in data.get("choices") or [])
                    said = int((data.get("usage") or {}).get("completion_tokens") or 0)
                    if piece:
                        pieces.append(piece)
                        used = max(said, used + 1)
                        now = time.perf_counter()
                        if not first:
                            first, at_first = now, used
                        last = now
                    else:
                        used = max(said, used)
        if texts is not None:
            texts.append("".join(pieces))
        self.tokens += used
        return first - start, last - first, used - at_first


async def concurrent(side: Side, users: int, tokens: int, tag: str, seeded: int = 0,
                     texts: dict[int, list[str]] | None = None) -> float:
    """Aggregate generated tok/s with ``users`` chats at once (the first ``seeded`` of them with a seed,
    each with the same prompt every time: its answers go to ``texts[i]``)."""
    texts = {} if texts is None else texts
    before = side.tokens
    async with httpx.AsyncClient(timeout=600) as client:
        start = time.perf_counter()
        await asyncio.gather(*(side.one(client, PROMPT.format(n=f"seeded-{i}" if i < seeded
                                                                   else f"{tag}-{i}"),
                                                  tokens, seed=i + 1 if i < seeded else None,
                                                  texts=texts.setdefault(i, []) if i < seeded else None)
                                         for i in range(users)))
        wall = time.perf_counter() - start
    return (side.tokens - before) / wall


def start_platform(data_dir: Path, slots: int, engine_url: str | None, *, observe: bool = True,
                   name: str = "platform", root: Path = ROOT, **more: str) -> tuple[subprocess.Popen[bytes], Side]:
    env = {"QFNB_ENGINE_SLOTS": str(slots), "QFNB_OBSERVE": "1" if observe else "0", **more}
    if engine_url:
        env["QFNB_ENGINES"] = json.dumps({DEFAULT_CHAT: {"base_url": engine_url.rstrip("/") + "/v1",
                                                         "api_types": ["chat", "completions"]}})
    proc, base, creds = serve_platform(data_dir, data_dir.parent / f"{name}.log", root, **env)
    token = httpx.post(base + OAUTH_TOKEN, params={"grant_type": "client_credentials", "client_id": creds["api_key"],
                                                   "client_secret": creds["secret_key"]}).json()["access_token"]
    side = Side(name, f"{base}{MODEL_API_PREFIX}/completions/qwen2_5_coder_0_5b_instruct",
                {"access_token": token}, {}, {"stream": True, "temperature": 0.0001}, "max_output_tokens")
    return proc, side


def serve_engine(slots: int, log_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A bare llama-server started as the platform starts its engine for ``slots`` (``QFNB_ENGINE_SLOTS``):
    the same flags, the slots it keeps for interactive calls beside them, and our build's switches."""
    return serve_bare(slots + spare_slots(slots), log_dir, env=BUILD_SWITCHES)


def start_bare(slots: int, log_dir: Path, engine_url: str | None) -> tuple[subprocess.Popen[bytes] | None, Side]:
    body = {"stream": True, "temperature": 0.0001, "top_p": 0.8, "min_p": 0.0, "repeat_penalty": 1.0}
    if engine_url:
        return None, Side("bare", engine_url.rstrip("/") + "/v1/completions", {}, {}, body, "max_tokens")
    proc, base = serve_engine(slots, log_dir)
    return proc, Side("bare", f"{base}/v1/completions", {}, {}, body, "max_tokens")


def lora_vs_base(data_dir: Path, tokens: int, rounds: int) -> dict[str, float]:
    """Decode tok/s of Gemma-3-270M and of the same base with a LoRA adapter in its engine."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from qfnb.local.engines.gate import run_blocking
    from qfnb.local.engines.registry import EngineRegistry

    adapter = data_dir / "bench-adapter"
    if not (adapter / "adapter_config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(str(assets.hf_dir(GEMMA)), dtype=torch.float32)
        cfg = LoraConfig(r=16, lora_alpha=32, init_lora_weights=False,
                         target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        get_peft_model(model, cfg).save_pretrained(str(adapter))
    reg = EngineRegistry(data_dir)
    reg.register_adapter("bench_lora", GEMMA, adapter)
    prompt = "Question: Write a long story about a dragon who learns to code.\nAnswer:"
    ask = TextAsk(model="bench", prompt=prompt, sampling=Sampling(temperature=0.0001, max_tokens=tokens))

    async def rate(endpoint: str) -> float:
        stamps = [time.perf_counter() async for d in reg.chat(endpoint).generate(ask) if d.text]
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])

    try:
        run_blocking(lambda: rate("bench_lora"))  # warm-up: starts the engine with the adapter
        rates: dict[str, list[float]] = {"base": [], "lora": []}
        for _ in range(rounds):
            rates["base"].append(run_blocking(lambda: rate("gemma_3_270m")))
            rates["lora"].append(run_blocking(lambda: rate("bench_lora")))
        return {k: statistics.median(v) for k, v in rates.items()}
    finally:
        reg.close()


def seed_cost(platform: Side, users: int, share: float, tokens: int, rounds: int) -> None:
    """Aggregate tok/s of ``users`` concurrent chats with none seeded and with ``share`` of them seeded,
    alternated over ``rounds`` in this run; logs the medians and their ratio."""
    seeded = max(1, round(users * share))
    rates: dict[int, list[float]] = {0: [], seeded: []}
    texts: dict[int, list[str]] = {}
    for r in range(rounds):
        for n in rates:
            rates[n].append(asyncio.run(concurrent(platform, users, tokens, f"seed{r}-{n}", seeded=n, texts=texts)))
            log.info("seed cost round %d: %d of %d chats seeded: %.1f tok/s%s", r, n, users, rates[n][-1],
                     "".join(f"; seeded answer {i}: sha256 {hashlib.sha256(t[-1].encode()).hexdigest()[:12]}"
                             for i, t in sorted(texts.items()) if n and t))
    none, some = statistics.median(rates[0]), statistics.median(rates[seeded])
    log.info("seeded traffic: %d concurrent chats, none seeded %.1f tok/s, %d seeded (%.0f %%) %.1f tok/s -> "
             "%.2fx the unseeded throughput", users, none, seeded, 100 * seeded / users, some, some / none)
    same = all(len(set(t)) == 1 for t in texts.values())
    log.info("seeded answers (temperature 0.9, beside %d unseeded chats): %s across %d repeats each", users - seeded,
             "byte-identical" if same else "DIFFERENT", rounds)


async def single(side: Side, n: str, tokens: int) -> tuple[float, float, int]:
    """One chat alone: :meth:`Side.one` on the prompt numbered ``n``."""
    async with httpx.AsyncClient(timeout=600) as client:
        return await side.one(client, PROMPT.format(n=n), tokens)


def single_streams(sides: list[Side], tokens: int, rounds: int) -> dict[str, float]:
    """Median single-stream decode tok/s by side over ``rounds`` (the sides alternated); logs them and the
    time to first token."""
    decode: dict[str, list[float]] = {s.name: [] for s in sides}
    ttft: dict[str, list[float]] = {s.name: [] for s in sides}
    for r in range(rounds):
        for side in sides:
            first, secs, n = asyncio.run(single(side, f"{r}", tokens))
            decode[side.name].append(n / secs)
            ttft[side.name].append(first)
            log.info("%-8s round %d: %d tokens, %.1f tok/s, first token %.0f ms", side.name, r, n + 1, n / secs,
                     first * 1000)
    med = {k: statistics.median(v) for k, v in decode.items()}
    log.info("single stream decode tok/s: bare %.1f, platform %.1f -> platform/bare = %.1f %% (target >= 90 %%)",
             med["bare"], med["platform"], 100 * med["platform"] / med["bare"])
    log.info("time to first token (median): bare %.0f ms, platform %.0f ms",
             1000 * statistics.median(ttft["bare"]), 1000 * statistics.median(ttft["platform"]))
    return med


def paired_aggregates(sides: list[Side], users: list[int], tokens: int,
                      rounds: int) -> dict[str, dict[int, list[float]]]:
    """Aggregate tok/s by side and concurrent chats, one a round; paired: each concurrency runs on every
    side, one after the other, before the next, the sides' order turned by one each time (so no side is
    always first)."""
    runs: dict[str, dict[int, list[float]]] = {s.name: {u: [] for u in users} for s in sides}
    turn = 0
    for r in range(rounds):
        for u in users:
            for side in sides[turn % len(sides):] + sides[:turn % len(sides)]:
                runs[side.name][u].append(asyncio.run(concurrent(side, u, tokens, f"{side.name}{u}r{r}")))
            turn += 1
            log.info("round %d, %d chats: %s", r, u, ", ".join(f"{n} {v[u][-1]:.1f} tok/s" for n, v in runs.items()))
    return runs


def mean_interval(values: Sequence[float], level: float = 0.9) -> tuple[float, float, float]:
    """The mean of ``values`` (one a round) and its two-sided ``level`` confidence interval, Student's t:
    what a run of so many rounds can tell apart (a round's spread on this machine is a few percent)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf((1 + level) / 2, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system, all threads) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_relay(slots: int, log_dir: Path, script: str = "byte_relay.py",
                name: str = "relay") -> tuple[list[subprocess.Popen[bytes]], Side]:
    """``bench/<script>`` (a stand-in server printing "relay port N") in front of a bare llama-server of its
    own (started as bare's is, so the two engines see the same requests in the same order): their
    processes (engine, stand-in) and its side, named ``name``."""
    engine_proc, base = serve_engine(slots, log_dir)
    port = int(base.rsplit(":", 1)[1])
    relay_proc, relay_port = spawn_reporting([sys.executable, str(ROOT / "bench" / script), str(port)],
                                             log_dir / f"{name}.log", printed_port("relay"))
    _, bare = start_bare(slots, log_dir, f"http://127.0.0.1:{relay_port}")
    bare.name = name
    return [engine_proc, relay_proc], bare


def start_baseline(args: argparse.Namespace, work: Path) -> tuple[Any, Side]:
    """What the platform is compared with: bare llama-server, or (``--observe-cost``) the same platform
    with counting and tracing off."""
    if args.observe_cost:
        log.info("observe cost: 'bare' below is the platform with /metrics and tracing off")
        return start_platform(work / "data-unobserved", args.slots, args.engine_url, observe=False, name="bare")
    return start_bare(args.slots, work / "bare-logs", args.engine_url)


def compare(sides: list[Side], pids: dict[str, int], tokens: int, rounds: int, users: list[int]) -> None:
    """Single streams and paired aggregates of ``sides`` (bare first), each platform's ratio to bare and its
    daemon's CPU per streamed token (``pids``: the platforms' processes by side name)."""
    for side in sides:  # warm-up: loads the model, starts the engine
        asyncio.run(single(side, "warm", tokens))
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    for side in sides:
        side.tokens = 0
    med = single_streams(sides, tokens, rounds)
    for side in sides:  # an engine's first batch after a busy spell can stall once
        asyncio.run(single(side, "warm-sweep", tokens))
    runs = paired_aggregates(sides, users, tokens // 2, rounds)
    aggs = {name: {u: statistics.median(v) for u, v in by_users.items()} for name, by_users in runs.items()}
    for side in sides:
        agg = aggs[side.name]
        log.info("%-8s aggregate tok/s by concurrent chats: %s; at 8 = %.1fx one chat measured the same way "
                 "(target >= 3x), %.1fx the single-stream decode rate", side.name,
                 {u: round(v, 1) for u, v in agg.items()}, agg[8] / agg[1], agg[8] / med[side.name])
    for name in pids:
        log.info("aggregate tok/s %s/bare by concurrent chats: %s", name,
                 {u: f"{100 * aggs[name][u] / aggs['bare'][u]:.1f} %" for u in users})
    for name in pids:  # each round's ratio (the two sides measured within the same round), then what the run
        # can tell apart: each side's mean ratio, and each side against the relay
        ratios = {u: [100 * a / b for a, b in zip(runs[name][u], runs["bare"][u], strict=True)] for u in users}
        log.info("%s/bare a round, by concurrent chats: %s", name, {
            u: f"median {statistics.median(r):.1f} % (range {min(r):.1f}-{max(r):.1f} %, {sum(x >= 100 for x in r)} "
               f"of {len(r)} rounds >= 100 %)" for u, r in ratios.items()})
        log.info("%s/bare a round, mean and 90 %% interval: %s", name,
                 {u: "{:.1f} % ({:.1f} to {:.1f})".format(*mean_interval(r)) for u, r in ratios.items()})
        if name != "relay" and "relay" in runs:
            gaps = {u: [100 * (a - r) / b for a, r, b in zip(runs[name][u], runs["relay"][u], runs["bare"][u],
                                                               strict=True)] for u in users}
            log.info("%s - relay, in points of bare, mean and 90 %% interval: %s", name,
                     {u: "{:+.1f} ({:+.1f} to {:+.1f})".format(*mean_interval(g)) for u, g in gaps.items()})
    for side in (s for s in sides if s.name in pids):
        log.info("%s's own CPU (its process, not the engine's): %.0f us per streamed token (%d tokens)", side.name,
                 1e6 * (cpu_seconds(pids[side.name]) - cpu[side.name]) / max(1, side.tokens), side.tokens)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--slots", type=int, default=default_slots())
    ap.add_argument("--skip-lora", action="store_true")
    ap.add_argument("--engine-url", help="an OpenAI-compatible engine already running (its base URL, without /v1)")
    ap.add_argument("--concurrency", default="1,4,8,16", help="concurrent chats to measure, comma-separated")
    ap.add_argument("--observe-cost", action="store_true",
                    help="compare the platform with /metrics and tracing (as shipped) to one with both off "
                         "(QFNB_OBSERVE=0) instead of to bare llama-server; target >= 98 %%")
    ap.add_argument("--seeded-users", type=int, default=8, help="concurrent chats of the seed cost measurement")
    ap.add_argument("--seeded-share", type=float, default=0.25, help="the share of them sending a seed")
    ap.add_argument("--only-seeds", action="store_true", help="measure the seed cost only (no bare engine)")
    ap.add_argument("--skip-seeds", action="store_true", help="leave the seed cost out (platform vs bare only)")
    ap.add_argument("--relay-floor", action="store_true",
                    help="measure bare llama-server behind a byte relay too (bench/byte_relay.py), in the same rounds")
    ap.add_argument("--pump-floor", action="store_true",
                    help="measure bare llama-server behind bench/pump_floor.py too (each token parsed and rewritten "
                         "in Python behind uvicorn, in one callback), in the same rounds")
    ap.add_argument("--unpaced", action="store_true",
                    help="measure the platform with its streams unpaced too (QFNB_STREAM_INTERVAL_MS=0: each token "
                         "handed on as it comes), as 'unpaced', in the same rounds")
    ap.add_argument("--before", help="another checkout (e.g. `git worktree add /tmp/before main`): its platform "
                    "is measured too, as 'before', beside this one and bare, in the same rounds")
    args = ap.parse_args()
    users = sorted({int(u) for u in args.concurrency.split(",")} | {1, 8})
    log_to_stdout()  # httpx's request lines would show the access token
    log.info("load average at start: %s", load_average())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="qfnb-bench-serving-"))
    procs = []
    try:
        platform_proc, platform = start_platform(work / "data", args.slots, args.engine_url)
        procs.append(platform_proc)

        asyncio.run(single(platform, "warm", args.tokens))
        if not args.skip_seeds:
            seed_cost(platform, args.seeded_users, args.seeded_share, args.tokens // 2, args.rounds)
        if args.only_seeds:
            return 0
        bare_proc, bare = start_baseline(args, work)
        if bare_proc is not None:
            procs.append(bare_proc)
        sides = [bare, platform]
        pids = {platform.name: platform_proc.pid}
        if args.relay_floor and bare_proc is not None:  # what a process in the path costs before doing any work
            relay_procs, relay = start_relay(args.slots, work / "relay-logs")
            procs += relay_procs
            sides.insert(1, relay)
            pids[relay.name] = relay_procs[1].pid
        if args.pump_floor and bare_proc is not None:  # what parsing and rewriting each token in Python costs, at least
            pump_procs, pump = start_relay(args.slots, work / "pump-logs", "pump_floor.py", "pump")
            procs += pump_procs
            sides.insert(1, pump)
            pids[pump.name] = pump_procs[1].pid
        if args.unpaced:  # the same platform, each token handed on as it comes
            unpaced_proc, unpaced = start_platform(work / "data-unpaced", args.slots, args.engine_url, name="unpaced",
                                                   QFNB_STREAM_INTERVAL_MS="0")
            procs.append(unpaced_proc)
            sides.insert(1, unpaced)
            pids[unpaced.name] = unpaced_proc.pid
        if args.before:  # the same platform from another checkout (the code before a change), in the same run
            before_proc, before = start_platform(work / "data-before", args.slots, args.engine_url, name="before",
                                                 root=Path(args.before).resolve())
            procs.append(before_proc)
            sides.insert(1, before)
            pids[before.name] = before_proc.pid

        compare(sides, pids, args.tokens, args.rounds, users)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    log.info("load average at end: %s", load_average())
    if not args.skip_lora:
        lora = lora_vs_base(work / "lora", args.tokens, args.rounds)
        log.info("LoRA-served decode tok/s: base %.1f, with adapter %.1f -> %.1f %% of base", lora["base"],
                 lora["lora"], 100 * lora["lora"] / lora["base"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
