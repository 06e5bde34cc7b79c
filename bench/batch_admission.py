"""Batch-job admission on a real daemon (issue 34 §3): CPU and RSS with many waiting jobs at idle,
creation and cancel time per job, and RSS while a job meets a 150 MB input line.

    .venv/bin/python bench/batch_admission.py [--jobs 200,600,1000] [--root /work/main]

``--root`` runs the daemon from another checkout (e.g. main before the fix) with the same bench.
A ``qfnb serve`` on 127.0.0.1 and a temporary data dir gets two engine doubles over HTTP:
``slow`` (holds every request: its slots stay full, so every job waits) and ``fast`` (answers at
once). Every figure is printed beside a baseline measured in the same run: the same daemon idle
with 0 jobs (CPU % of one core over ``--window`` seconds; RSS from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "local"))
sys.path.insert(0, str(ROOT))

from _common import log_to_stdout, serve_platform  # noqa: E402
from platform_helpers import Signer  # noqa: E402

log = logging.getLogger("bench.batch_admission")
TICKS = os.sysconf("SC_CLK_TCK")


class Engines:
    """``slow`` never finishes an answer; ``fast`` answers one word at once (OpenAI chat, streamed)."""

    def __init__(self) -> None:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import StreamingResponse
        from starlette.routing import Route

        async def answer(request: Request, hold: bool) -> StreamingResponse:
            await request.body()

            async def events() -> Any:
                if hold:
                    await asyncio.sleep(86_400)
                yield 'data: {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}\n\n'
                yield 'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}\n\n'
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        async def slow(request: Request) -> StreamingResponse:
            return await answer(request, True)

        async def fast(request: Request) -> StreamingResponse:
            return await answer(request, False)

        self.app = Starlette(routes=[Route("/slow/v1/chat/completions", slow, methods=["POST"]),
                                     Route("/fast/v1/chat/completions", fast, methods=["POST"])])

    def serve(self) -> str:
        import socket

        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=0))
        threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
        return f"http://127.0.0.1:{port}"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory(pid: int, key: str = "VmRSS") -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(key)


def idle_cpu(pid: int, window: float) -> float:
    """CPU % of one core the daemon used over ``window`` seconds."""
    start, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(window)
    return 100 * (cpu_seconds(pid) - start) / (time.monotonic() - t0)


class Daemon:
    def __init__(self, root: Path, work: Path, engines: str, slots: int) -> None:
        self.data = work / "data"
        self.proc, self.url, creds = serve_platform(
            self.data, work / "serve.log", root, PYTHONPATH=str(root), QFNB_ENGINE_SLOTS=str(slots),
            QFNB_ENGINES=json.dumps({"slow": f"{engines}/slow/v1", "fast": f"{engines}/fast/v1"}))
        self.auth = Signer(creds["access_key"], creds["iam_secret_key"])
        self.http = httpx.Client(base_url=self.url, timeout=600)

    def put(self, key: str, content: Any) -> str:
        resp = self.http.put(f"/bos/in/{key}", content=content, auth=self.auth)
        resp.raise_for_status()
        return f"bos:/in/{key}"

    def console(self, action: str, body: dict[str, Any]) -> Any:
        resp = self.http.post("/v2/batchinference", params={"Action": action}, json=body, auth=self.auth)
        if resp.status_code != 200:
            raise RuntimeError(f"{action}: HTTP {resp.status_code} {resp.text[:300]}")
        return resp.json()["result"]

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except Exception:
            self.proc.kill()


def big_line(size: int) -> Iterator[bytes]:
    yield json.dumps({"id": "before", "query": "hello"}).encode() + b"\n"
    yield b'{"id": "big", "query": "'
    chunk = b"a" * (1 << 20)
    for _ in range(size // len(chunk)):
        yield chunk
    yield b'"}\n'
    yield json.dumps({"id": "after", "query": "hello"}).encode() + b"\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", default="200,600,1000", help="waiting jobs at which to measure (ascending)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout the daemon runs from")
    parser.add_argument("--window", type=float, default=5.0, help="seconds over which idle CPU is measured")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--line-mb", type=int, default=150)
    args = parser.parse_args()
    log_to_stdout()
    steps = [int(n) for n in args.jobs.split(",")]
    engines = Engines().serve()
    with tempfile.TemporaryDirectory(prefix="qfnb-bench-admission-") as tmp:
        daemon = Daemon(args.root.resolve(), Path(tmp), engines, args.slots)
        pid = daemon.proc.pid
        try:
            uri = daemon.put("one.jsonl", json.dumps({"id": "a", "query": "hello"}) + "\n")
            body = {"name": "t", "inputBosUri": uri, "outputBosUri": "bos:/out/", "endpoint": "slow"}
            time.sleep(1)
            base_cpu, base_rss = idle_cpu(pid, args.window), memory(pid)
            log.info("daemon from %s, engine slots %d", args.root, args.slots)
            log.info("baseline: idle daemon with 0 jobs: CPU %.1f %% of a core, RSS %.0f MiB", base_cpu, base_rss)
            ids: list[str] = []
            for target in steps:
                made_before, t0 = len(ids), time.perf_counter()
                while len(ids) < target:
                    ids.append(daemon.console("CreateBatchInferenceTask", body)["taskId"])
                per_job = (time.perf_counter() - t0) / max(1, target - made_before)
                time.sleep(1)
                cpu, rss = idle_cpu(pid, args.window), memory(pid)
                listed = daemon.console("DescribeBatchInferenceTasks", {"maxKeys": 1000, "runStatus": "Running"})
                log.info("%5d jobs (%d running): CPU %.1f %% of a core (baseline %.1f, %+.1f), RSS %.0f MiB "
                         "(baseline %.0f, %+.0f); creating them took %.2f ms a job",
                         target, len(listed["taskList"]), cpu, base_cpu, cpu - base_cpu, rss, base_rss,
                         rss - base_rss, 1000 * per_job)
            running = {t["taskId"] for t in daemon.console("DescribeBatchInferenceTasks", {
                "maxKeys": 1000, "runStatus": "Running"})["taskList"]}
            waiting = [t for t in reversed(ids) if t not in running]  # newest first: none of them starts
            for label, tasks in (("waiting", waiting), ("running", sorted(running))):
                t0 = time.perf_counter()
                for task in tasks:
                    daemon.console("StopBatchInferenceTask", {"taskId": task})
                log.info("cancelling %d %s jobs: %.2f ms a job; RSS %.0f MiB, peak %.0f MiB", len(tasks), label,
                         1000 * (time.perf_counter() - t0) / max(1, len(tasks)), memory(pid), memory(pid, "VmHWM"))

            peak_before = memory(pid, "VmHWM")
            uri = daemon.put("big.jsonl", big_line(args.line_mb * 1_000_000))
            made = daemon.console("CreateBatchInferenceTask", {**body, "inputBosUri": uri, "endpoint": "fast"})
            deadline = time.monotonic() + 600
            while True:
                view = daemon.console("DescribeBatchInferenceTask", {"taskId": made["taskId"]})
                if view["runStatus"] in ("Done", "Failed", "Stopped") or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            log.info("a %d MB input line: job %s (%s done, %s failed); peak RSS %.0f MiB before it, %.0f MiB "
                     "after (+%.0f)", args.line_mb, view["runStatus"], view["succeededCount"], view["failedCount"],
                     peak_before, memory(pid, "VmHWM"), memory(pid, "VmHWM") - peak_before)
        finally:
            daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
