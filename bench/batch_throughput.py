"""Batch throughput: qfnb vs the official ``qianfan`` SDK against one fast fake v1 chat server.

Usage: ``.venv/bin/python bench/batch_throughput.py [--n 2000] [--workers 50] [--skip-official]``

The server is a minimal keep-alive HTTP/1.1 responder on raw asyncio (in a subprocess, on
127.0.0.1) so it is not the bottleneck; it answers OAuth and v1 chat with a fixed body
after ``latency`` ms. For each latency (0 and 100 ms) it runs the official SDK's
``abatch_do``/``batch_do`` and qfnb's, in the same run, and prints req/s, qfnb/official
ratios, % of the ideal rate (workers / latency), client CPU ms per request, and the
import times (``import X`` and ``from X import ChatCompletion``) of both packages in fresh
interpreters. Each measurement runs in its own interpreter (the official SDK leaves threads
behind that would tax whatever runs after it). ``--profile`` runs qfnb's ``abatch_do`` at 0 ms
under cProfile instead. ``--anchor LATENCY_MS`` runs issue 68's comparison instead: ``--n`` prompts
through each SDK at its defaults and at the worker counts around its best, one server answering
after ``LATENCY_MS``, with qfnb's ratios to the official defaults and to the official best.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("bench")

CHAT_BODY = json.dumps(
    {
        "id": "as-bench",
        "object": "chat.completion",
        "created": 1,
        "result": "ok",
        "is_truncated": False,
        "need_clear_history": False,
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()
TOKEN_BODY = json.dumps({"access_token": "24.bench.2592000", "expires_in": 2592000}).encode()


# --------------------------------------------------------------------------- the fake server
class _Http(asyncio.Protocol):
    latency = 0.0

    def connection_made(self, transport: Any) -> None:
        self.t = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length :]
            body = TOKEN_BODY if "/oauth/2.0/token" in head.split("\r\n", 1)[0] else CHAT_BODY
            out = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            if self.latency:
                asyncio.get_running_loop().call_later(self.latency, self._write, out)
            else:
                self.t.write(out)

    def _write(self, out: bytes) -> None:
        if not self.t.is_closing():
            self.t.write(out)


def server_main(port: int, latency_ms: float) -> None:
    """Entry point of the server subprocess (stops when stdin closes)."""
    _Http.latency = latency_ms / 1000.0

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Http, "127.0.0.1", port, backlog=2048)
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.read)  # parent exit closes stdin
        server.close()

    try:  # uvloop (uvicorn's, a core dependency) keeps the server's CPU per call below the clients'
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


def start_server(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), str(latency_ms)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("bench server failed to start")
    return proc, f"http://127.0.0.1:{port}"


def stop_server(proc: subprocess.Popen[str]) -> None:
    if proc.stdin:
        proc.stdin.close()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


# --------------------------------------------------------------------------- runners
def _messages(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"hello {i}"}] for i in range(n)]


def _timed(fn: Callable[[], Any], n: int) -> dict[str, float]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    results = fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    bad = [r for r in results if isinstance(r, Exception)]
    if bad:
        raise RuntimeError(f"{len(bad)} of {n} calls failed, first: {bad[0]!r}")
    return {"rps": n / wall, "cpu_ms": cpu * 1000 / n, "wall": wall}


def _timed_batches(chat: Any, n: int, workers: int | None, run_async: Callable[[Any], Any] | None) -> dict[str, float]:
    """``chat.batch_do`` of ``n`` messages on ``workers`` workers (None: the SDK's default), timed once its
    token and a connection per worker are warm; with ``run_async``, ``chat.abatch_do`` run by it instead."""
    chat.do(messages=_messages(1)[0])  # warm: token
    chat.batch_do(_messages(min(workers or 64, n)), worker_num=workers).results()  # warm: a connection per worker
    msgs = _messages(n)
    if run_async is not None:
        return _timed(lambda: run_async(chat.abatch_do(msgs, worker_num=workers)), n)
    return _timed(lambda: chat.batch_do(msgs, worker_num=workers).results(), n)


def run_official(url: str, n: int, workers: int | None, mode: str) -> dict[str, float]:
    os.environ.update(QIANFAN_BASE_URL=url, QIANFAN_AK="bench_ak", QIANFAN_SK="bench_sk", QIANFAN_DISABLE_CACHE="true")
    import qianfan
    import qianfan.config

    qianfan.config._GLOBAL_CONFIG = None  # type: ignore[attr-defined]
    return _timed_batches(qianfan.ChatCompletion(), n, workers, asyncio.run if mode == "abatch_do" else None)


def run_qfnb(url: str, n: int, workers: int | None, mode: str) -> dict[str, float]:
    from qfnb import ChatCompletion
    from qfnb._core.config import Config
    from qfnb._core.runtime import sync

    chat = ChatCompletion(config=Config.from_env({}, base_url=url, ak="bench_ak", sk="bench_sk"))
    # abatch_do runs on qfnb's loop so the warmed connection pool is reused (a fresh asyncio.run works too)
    return _timed_batches(chat, n, workers, sync.run if mode == "abatch_do" else None)


def run_isolated(sdk: str, url: str, n: int, workers: int | None, mode: str) -> dict[str, float]:
    """``run_official``/``run_qfnb`` in a fresh interpreter (``workers`` None: the SDK's default); its
    figures come back as JSON."""
    out = subprocess.run([sys.executable, __file__, "--one", sdk, url, str(n), str(workers or 0), mode],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{sdk} {mode} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def one_main(sdk: str, url: str, n: int, workers: int, mode: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("qianfan").setLevel(logging.WARNING)
    fn = run_official if sdk == "official" else run_qfnb
    print(json.dumps(fn(url, n, workers or None, mode)))


#: the anchor's contenders: (label, SDK, worker_num: None is the SDK's default, mode)
ANCHOR_RUNS = (
    ("official abatch_do, defaults (all at once)", "official", None, "abatch_do"),
    *((f"official abatch_do, worker_num={w}", "official", w, "abatch_do") for w in (50, 200, 1000)),
    ("qfnb abatch_do, defaults", "qfnb", None, "abatch_do"),
    ("qfnb batch_do, defaults", "qfnb", None, "batch_do"),
    *((f"qfnb abatch_do, worker_num={w}", "qfnb", w, "abatch_do") for w in (64, 1000)),
)


def run_anchor(latency_ms: float, n: int) -> None:
    """Issue 68's anchor: the same ``n`` prompts through the official SDK's ``abatch_do`` (its defaults, then
    the worker counts around its best) and qfnb's, one server answering after ``latency_ms``, one run; prints
    rows/s and qfnb's ratios to the official SDK's defaults and to its best setting."""
    proc, url = start_server(latency_ms)
    rows: list[tuple[str, str, dict[str, float]]] = []
    try:
        for label, sdk, workers, mode in ANCHOR_RUNS:
            rows.append((label, sdk, run_isolated(sdk, url, n, workers, mode)))
            print(f"{label:<45} {rows[-1][2]['rps']:>8.0f} rows/s  {rows[-1][2]['cpu_ms']:.3f} ms CPU/row", flush=True)
    finally:
        stop_server(proc)
    official = {label: r["rps"] for label, sdk, r in rows if sdk == "official"}
    default, best = official[ANCHOR_RUNS[0][0]], max(official.values())
    print(f"\n{latency_ms:.0f} ms server, {n} prompts; official: defaults {default:.0f} rows/s, best {best:.0f} "
          f"({max(official, key=official.__getitem__)})")
    for label, sdk, r in rows:
        if sdk == "qfnb":
            print(f"{label:<45} {r['rps']:>8.0f} rows/s = {r['rps'] / default:5.2f}x official defaults, "
                  f"{r['rps'] / best:5.2f}x official best")


def run_big(n: int, workers: int, out: str) -> None:
    """``n`` prompts (generated lazily) through ``batch_do(output_file=...)``; peak RSS before/after."""
    import resource

    from qfnb import ChatCompletion
    from qfnb._core.config import Config

    proc, url = start_server(0)
    try:
        chat = ChatCompletion(config=Config.from_env({}, base_url=url, ak="bench_ak", sk="bench_sk"))
        chat.do(messages=_messages(1)[0])
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if os.path.exists(out):
            os.remove(out)
        prompts = ([{"role": "user", "content": f"hello {i}"}] for i in range(n))
        t0 = time.perf_counter()
        task = chat.batch_do(prompts, worker_num=workers, output_file=out)
        task.wait()
        wall = time.perf_counter() - t0
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with open(out, encoding="utf-8") as fh:
            lines = sum(1 for _ in fh)
        print(
            f"big batch: {n} prompts -> {lines} lines in {wall:.1f} s ({n / wall:.0f} req/s); "
            f"peak RSS {rss0:.0f} MB before, {rss1:.0f} MB after"
        )
    finally:
        stop_server(proc)


def run_ceiling(url: str, n: int, workers: int) -> dict[str, float]:
    """The same load through qfnb's bare transport (aiohttp's pool), no client logic: what this
    server/machine/transport allow."""
    from qfnb._core.transport import Request
    from qfnb._core.transport.aiohttp import AiohttpTransport

    async def main() -> dict[str, float]:
        http = AiohttpTransport(max_connections=workers)
        request = Request("POST", url + "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/ernie-lite-8k",
                          {"Content-Type": "application/json"}, b'{"messages": []}')

        async def worker(it: Any) -> None:
            for _ in it:
                resp = await http.send(request)
                json.loads(resp.content)

        warm = iter(range(workers))
        await asyncio.gather(*(worker(warm) for _ in range(workers)))
        it = iter(range(n))
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(it) for _ in range(workers)))
        await http.aclose()
        return {"rps": n / (time.perf_counter() - t0)}

    return asyncio.run(main())


def run_profile(n: int, workers: int, top: int = 35) -> None:
    """qfnb's ``abatch_do`` at 0 ms under cProfile: where the client's CPU goes."""
    import cProfile
    import pstats

    from qfnb import ChatCompletion
    from qfnb._core.config import Config

    proc, url = start_server(0)
    try:
        chat = ChatCompletion(config=Config.from_env({}, base_url=url, ak="bench_ak", sk="bench_sk"))

        async def main() -> dict[str, float]:  # on this thread, so the profiler sees it
            await chat.abatch_do(_messages(200), worker_num=workers)  # warm
            msgs = _messages(n)
            cpu0, t0 = time.process_time(), time.perf_counter()
            prof.enable()
            await chat.abatch_do(msgs, worker_num=workers)
            prof.disable()
            return {"rps": n / (time.perf_counter() - t0), "cpu_ms": (time.process_time() - cpu0) * 1000 / n}

        prof = cProfile.Profile()
        res = asyncio.run(main())
    finally:
        stop_server(proc)
    print(f"{res['rps']:.0f} req/s under the profiler, {res['cpu_ms']:.3f} ms CPU/request")
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def import_time(statement: str, repeats: int = 3) -> float:
    """Best of ``repeats`` fresh interpreters for ``statement`` (e.g. ``from qfnb import ChatCompletion``)."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    best = float("inf")
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        best = min(best, float(out.stdout.strip().splitlines()[-1]))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="requests per run at 0 ms")
    ap.add_argument("--n-slow", type=int, default=5000,
                    help="requests per run at 100 ms (100 rounds of the workers: a steady-state rate, "
                         "not the ramp of the first round)")
    ap.add_argument("--workers", type=int, default=50)
    ap.add_argument("--skip-official", action="store_true")
    ap.add_argument("--modes", default="abatch_do,batch_do")
    ap.add_argument("--big", type=int, default=0, help="only run an N-prompt file-backed batch (memory check)")
    ap.add_argument("--big-out", default="/tmp/qfnb_big_batch.jsonl")
    ap.add_argument("--profile", action="store_true", help="cProfile qfnb's abatch_do at 0 ms, print the top")
    ap.add_argument("--anchor", type=float, metavar="LATENCY_MS",
                    help="only issue 68's anchor: --n prompts, each SDK at its defaults and its best worker_num, "
                         "against a server answering after LATENCY_MS")
    args = ap.parse_args()
    if args.anchor is not None:
        run_anchor(args.anchor, args.n)
        return
    if args.profile:
        run_profile(args.n, args.workers)
        return
    if args.big:
        run_big(args.big, args.workers, args.big_out)
        return
    logging.basicConfig(level=logging.WARNING)
    modes = args.modes.split(",")
    rows = []
    for latency, n in ((0.0, args.n), (100.0, args.n_slow)):
        proc, url = start_server(latency)
        try:
            ceiling = run_ceiling(url, n, args.workers)
            if latency:
                one = run_ceiling(url, 20, 1)  # one call at a time: the server's real round trip
                print(f"{latency:.0f} ms: bare-pool ceiling {ceiling['rps']:.0f} req/s "
                      f"({100 * ceiling['rps'] * latency / 1000 / args.workers:.1f}% of ideal); one call at a "
                      f"time takes {1000 / one['rps']:.1f} ms")
            else:
                print(f"0 ms: bare-pool ceiling {ceiling['rps']:.0f} req/s")
            for mode in modes:
                off = None if args.skip_official else run_isolated("official", url, n, args.workers, mode)
                ours = run_isolated("qfnb", url, n, args.workers, mode)
                rows.append((latency, mode, n, off, ours))
        finally:
            stop_server(proc)
    print(
        f"\n{'latency':>8} {'mode':>10} {'n':>6} {'official r/s':>13} {'qfnb r/s':>10} {'ratio':>6} "
        f"{'% ideal':>8} {'qfnb cpu ms/req':>16} {'official cpu ms/req':>20}"
    )
    for latency, mode, n, off, ours in rows:
        ideal = args.workers / (latency / 1000) if latency else float("nan")
        ratio = ours["rps"] / off["rps"] if off else float("nan")
        pct = 100 * ours["rps"] / ideal if latency else float("nan")
        print(
            f"{latency:>6.0f}ms {mode:>10} {n:>6} {off['rps'] if off else float('nan'):>13.0f} "
            f"{ours['rps']:>10.0f} {ratio:>6.2f} {pct:>7.1f}% {ours['cpu_ms']:>16.3f} "
            f"{off['cpu_ms'] if off else float('nan'):>20.3f}"
        )
    print(
        f"\nimport qfnb: {import_time('import qfnb'):.3f} s   "
        f"from qfnb import ChatCompletion: {import_time('from qfnb import ChatCompletion'):.3f} s   "
        f"import qianfan: {import_time('import qianfan') if not args.skip_official else float('nan'):.3f} s   "
        f"from qianfan import ChatCompletion: "
        f"{import_time('from qianfan import ChatCompletion') if not args.skip_official else float('nan'):.3f} s"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        server_main(int(sys.argv[2]), float(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--one":
        one_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    else:
        main()
