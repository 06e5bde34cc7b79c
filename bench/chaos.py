"""Chaos: a user's afternoon of batch and chat traffic while processes are killed at random moments
from a seeded schedule; what reached the engine is counted at the engine, not by qfnb.

    .venv/bin/python bench/chaos.py [--seed 1] [--kills 20] [--rows 1000] [--durable-rows 200]

On a temporary data dir, a ``qfnb serve`` daemon (started as a client starts it) serves two model
names from one engine process of the bench's own (``bench/chaos_engine.py``: OpenAI's chat API,
deterministic answers, a journal of every request it received and how it ended). At once:

- an OpenAI batch of ``--rows`` rows (``qfnb.openai_client()``: recorded in the usage ledger),
- a durable batch of ``--durable-rows`` (``ChatCompletion(...).batch_do(prompts, durable=True)``),
- chat calls one after another, each with an ``idempotency_key``, on a model of their own (so no
  batch row is pre-empted for them: every repeat the bench finds is a kill's),

while ``--kills`` kills land at seeded random moments: the daemon (SIGKILL or SIGTERM, started again
as the next client call or the bench would, after a pause) or the engine (SIGKILL or SIGTERM,
started again after a pause, as a supervisor would). Then it waits for everything to end and prints:

- rows lost and rows answered twice (each batch's output, by ``custom_id``; each answer must be
  its own row's);
- requests the engine received more than once, and whether each earlier sending was in flight at a
  kill (open at the kill, cut by it, or finished at most ``--window`` seconds before a daemon kill:
  sent, answered, but not yet written);
- tokens: the engine's own count of prompt tokens for each batch's rows against the batch's
  ``usage`` (exact: the lost sends are paid with their prompts), completion tokens (the answered
  sends' exact, the lost sends' at their cap: at least what the engine sent), ``/metrics``' batch
  counters against the batches' usage, and the ledger's rows against both.

Then the Ray phase (``bench/chaos_ray.py``; ``--ray-rows 0`` leaves it out): a batch of ``--ray-rows``
rows on a one-node Ray head whose driver is SIGKILLed ``--ray-kills`` times at seeded moments and run
again as a user runs the cell again, and whose workers' engine is SIGKILLed ``--ray-engine-kills`` times
(the workers retry); its rows once, its repeats at the engine in flight at a kill, the engine's tokens
for its rows against the ledger's rows of its attempts.

``--phase attached`` runs the same traffic (no Ray phase) on an attached engine that answers every
request whole, as one JSON body, never streamed (``chaos_engine.py --whole``; the probe's engine, whose
batch read ``input_tokens: 0``): each batch's usage must still equal what the engine billed.

``--phase train`` runs instead a fine-tune whose training worker and daemon are killed, then a sequential
evaluation whose kernel and daemon are (``bench/chaos_train.py``).

The seed fixes the schedule (kill times, targets, signals and pauses), so a failure can be repeated.
Exit status 0 when every check holds.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "bench"), str(ROOT / "tests" / "batch")) if p not in sys.path]

from _common import HTTP_LOGGERS, load_average, log_to_stdout, retry  # noqa: E402
from chaos_books import (  # noqa: E402
    BATCH_MODEL,
    CHAT_MODEL,
    Kill,
    Request,
    dropped_requests,
    engine_requests,
    keep_logs,
    lost_to_a_kill,
    row_key,
)
from chaos_engine import answer_words  # noqa: E402
from chaos_ray import RAY_JOB, RaySeen, ray_report, run_ray  # noqa: E402
from chaos_train import add_arguments, run_train_phase  # noqa: E402

log = logging.getLogger("bench.chaos")


def schedule(seed: int, kills: int, span: float) -> list[Kill]:
    """``kills`` kills over the first ``span`` seconds, fixed by ``seed``."""
    rng = random.Random(seed)
    times = sorted(rng.uniform(2.0, span) for _ in range(kills))
    return [Kill(t, rng.choice(("daemon", "daemon", "engine")), rng.choice((signal.SIGKILL, signal.SIGTERM)),
                 round(rng.uniform(0.2, 2.0), 2)) for t in times]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Engine:
    """The bench's engine process, on a fixed port (a restart keeps its address)."""

    def __init__(self, work: Path, delay: float, *, whole: bool = False) -> None:
        self.port, self.journal, self.delay, self.work = free_port(), work / "engine.jsonl", delay, work
        self.whole = whole  # answers whole, as JSON (chaos_engine.py --whole)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        import httpx

        with open(self.work / "engine.log", "ab") as out:
            self.proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "chaos_engine.py"), str(self.port),
                                          str(self.journal), "--delay", str(self.delay),
                                          *(["--whole"] * self.whole)], stdout=out, stderr=out)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/models", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("the chaos engine did not start")

    def kill(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill(signal.SIGTERM)


class Daemon:
    """The data dir's ``qfnb serve``, found or started as a client finds or starts it."""

    def __init__(self, data: Path) -> None:
        self.data = data

    def ensure(self) -> Any:
        from qfnb._core.backend import daemon

        daemon._known.clear()
        return daemon.ensure_daemon(self.data)

    def kill(self, sig: int) -> None:
        from qfnb._core.backend import daemon

        info = daemon.read_runtime(self.data)
        if info is None or not daemon.pid_alive(info.pid):
            return
        os.kill(info.pid, sig)
        deadline = time.monotonic() + 30
        while daemon.pid_alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        from qfnb._core.backend import daemon

        try:
            daemon.stop_daemon(self.data, force=True, timeout=30)
        finally:
            self.kill(signal.SIGKILL)  # a daemon that did not answer the stop: its process, by its pid


@dataclass
class Traffic:
    """What the user's side saw."""

    batch_id: str = ""
    batch: Any = None
    durable: Any = None
    durable_results: list[Any] = field(default_factory=list)
    chats: dict[str, str] = field(default_factory=dict)   # key -> answer text
    chat_errors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def guarded(work: Any, seen: Traffic, done: threading.Event) -> Any:
    """``work`` run on its thread: what it raised is a problem the run reports, and its end is set anyway."""
    def run(*args: Any) -> None:
        try:
            work(*args)
        except Exception as exc:  # reported
            log.exception("%s failed", work.__name__)
            seen.errors.append(f"{work.__name__}: {type(exc).__name__}: {exc}"[:400])
        finally:
            done.set()
    return run


def run_openai_batch(rows: int, work: Path, seen: Traffic, done: threading.Event) -> None:
    import qfnb

    source = work / "rows.jsonl"
    source.write_text("".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                                          "body": {"model": BATCH_MODEL, "max_tokens": 24, "messages": [
                                              {"role": "user", "content": row_key("openai", i)}]}}) + "\n"
                              for i in range(rows)))
    client = retry(lambda: qfnb.openai_client(data_dir=work / "data", max_retries=8, timeout=30))
    upload = retry(lambda: client.files.create(file=source.open("rb"), purpose="batch"))
    made = retry(lambda: client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                                completion_window="24h"))
    seen.batch_id = made.id
    while True:
        batch = retry(lambda: client.batches.retrieve(made.id))
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            seen.batch = batch
            break
        time.sleep(0.5)
    text = retry(lambda: client.files.content(batch.output_file_id).text) if batch.output_file_id else ""
    (work / "openai-output.jsonl").write_text(text)
    done.set()


def run_durable_batch(rows: int, seen: Traffic, done: threading.Event) -> None:
    from qfnb.resources import ChatCompletion

    prompts = [[{"role": "user", "content": row_key("durable", i)}] for i in range(rows)]
    job = retry(lambda: ChatCompletion(model=BATCH_MODEL).batch_do(prompts, durable=True, max_output_tokens=24))
    seen.durable = retry(lambda: job.wait(interval=0.5))
    seen.durable_results = list(retry(job.results))
    done.set()


def run_chats(seen: Traffic, stop: threading.Event) -> None:
    from qfnb.resources import ChatCompletion

    chat = ChatCompletion(model=CHAT_MODEL)
    i = 0
    while not stop.is_set():
        key = row_key("chat", i)
        messages, idem = [{"role": "user", "content": key}], f"chaos-chat-{i}"
        try:
            answer = retry(lambda: chat.do(messages=messages, max_output_tokens=24, idempotency_key=idem))  # noqa: B023
            seen.chats[key] = str(answer["result"])
        except Exception as exc:  # counted: a call the user saw fail
            seen.chat_errors.append(f"{key}: {type(exc).__name__}: {exc}"[:300])
        i += 1


def scrape_batch(base_url: str) -> dict[str, float]:
    import httpx

    text = httpx.get(base_url + "/metrics", timeout=10).text
    sums: dict[str, float] = collections.defaultdict(float)
    for line in text.splitlines():
        if 'route="batch"' in line and not line.startswith("#"):
            name = line.split("{", 1)[0]
            sums[name] += float(line.rsplit(" ", 1)[1])
    return dict(sums)


def main() -> int:  # noqa: C901  # one run, told in order
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--durable-rows", type=int, default=200)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.02, help="the engine's seconds a word")
    parser.add_argument("--span", type=float, default=0.0, help="seconds the kills spread over (0: from the rows)")
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--ray-rows", type=int, default=200, help="the Ray batch's rows (0: no Ray phase)")
    parser.add_argument("--ray-kills", type=int, default=4, help="SIGKILLs of the Ray batch's driver")
    parser.add_argument("--ray-engine-kills", type=int, default=2,
                        help="SIGKILLs of the engine under the Ray batch's workers")
    parser.add_argument("--keep", type=Path,
                        help="copy the engine's journal and the daemon's, jobs' and kernel's logs here")
    add_arguments(parser)
    args = parser.parse_args()
    log_to_stdout()
    for name in (*HTTP_LOGGERS, "openai", "qfnb", "ray"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.phase == "train":
        return run_train_phase(args, Engine, Daemon, load_average)
    span = args.span or max(20.0, (args.rows + args.durable_rows) * 16 * args.delay / args.slots * 0.8)
    plan = schedule(args.seed, args.kills, span)
    log.info("chaos: seed %d, %d kills over %.0f s, %d + %d batch rows, load %s", args.seed, len(plan), span,
             args.rows, args.durable_rows, load_average())
    with tempfile.TemporaryDirectory(prefix="qfnb-chaos-") as tmp:
        work = Path(tmp)
        engine = Engine(work, args.delay, whole=args.phase == "attached")
        if args.phase == "attached":  # the rows' usage against an engine that does not stream (issue 92 §4)
            args.ray_rows = 0
        engine.start()
        os.environ.update(QFNB_DATA_DIR=str(work / "data"), QFNB_ENGINE_SLOTS=str(args.slots),
                          QFNB_ENGINES=json.dumps({BATCH_MODEL: engine.url, CHAT_MODEL: engine.url}))
        for key in [k for k in os.environ if k.startswith("QIANFAN_")]:
            os.environ.pop(key)
        daemon = Daemon(work / "data")
        platform = daemon.ensure()
        seen = Traffic()
        batch_done, durable_done, stop_chats = threading.Event(), threading.Event(), threading.Event()
        threads = [threading.Thread(target=guarded(run_openai_batch, seen, batch_done),
                                    args=(args.rows, work, seen, batch_done), daemon=True),
                   threading.Thread(target=guarded(run_durable_batch, seen, durable_done),
                                    args=(args.durable_rows, seen, durable_done), daemon=True),
                   threading.Thread(target=run_chats, args=(seen, stop_chats), daemon=True)]
        for thread in threads:
            thread.start()
        t0 = time.time()
        landed: list[tuple[float, Kill]] = []
        try:
            for kill in plan:
                time.sleep(max(0.0, t0 + kill.at - time.time()))
                if batch_done.is_set() and durable_done.is_set():
                    log.info("the work ended before kill %d of %d", len(landed) + 1, len(plan))
                    break
                when = time.time()
                (daemon if kill.target == "daemon" else engine).kill(kill.sig)
                kill.gone = time.time()
                landed.append((when, kill))
                log.info("%6.1f s  %s %s; back in %.1f s", when - t0, signal.Signals(kill.sig).name, kill.target,
                         kill.pause)
                time.sleep(kill.pause)
                if kill.target == "daemon":
                    platform = retry(daemon.ensure, tries=5)
                else:
                    engine.start()
            import faulthandler

            faulthandler.dump_traceback_later(240, repeat=True)  # where a run that does not end waits
            for event in (batch_done, durable_done):
                if not event.wait(1800):
                    seen.errors.append("a batch did not end in 30 minutes")
            faulthandler.cancel_dump_traceback_later()
            stop_chats.set()
            threads[2].join(120)
            metrics = scrape_batch(platform.base_url)
            if args.ray_rows:
                ray_seen = _ray_phase(args, work, t0, landed, seen, engine)
            wall = time.time() - t0
            from qfnb._core.record.ledger import default_ledger

            ledger = default_ledger()
            ledger.flush()
            ledger_rows = list(ledger.rows())
        finally:
            stop_chats.set()
            for what, stop in (("the daemon", daemon.stop), ("the engine", engine.stop)):  # each, whatever raised
                try:
                    stop()
                except Exception:
                    log.exception("could not stop %s", what)
            if args.keep:
                keep_logs(work, args.keep)
        problems = report(args, work, seen, landed, metrics, ledger_rows, wall)
        if args.ray_rows:
            problems += ray_report(args, work, ray_seen, landed, ledger_rows)
        for problem in problems:
            log.info("PROBLEM: %s", problem)
        log.info("%s", "every check held" if not problems else f"{len(problems)} problems")
        return 0 if not problems else 1


def _ray_phase(args: Any, work: Path, t0: float, landed: list[tuple[float, Kill]], seen: Traffic,
               engine: Engine) -> RaySeen:
    """The Ray batch under its driver's and its engine's kills, after the local traffic (what it raised
    is a problem)."""
    log.info("ray phase: %d rows, %d SIGKILLs of the driver, %d of the engine; load %s", args.ray_rows,
             args.ray_kills, args.ray_engine_kills, load_average())
    try:
        return run_ray(args.ray_rows, args.ray_kills, args.seed, work, t0, landed, engine, args.ray_engine_kills)
    except Exception as exc:  # reported
        log.exception("the Ray phase failed")
        seen.errors.append(f"ray phase: {type(exc).__name__}: {exc}"[:400])
        return RaySeen()


def report(args: Any, work: Path, seen: Traffic, landed: list[tuple[float, Kill]],  # noqa: C901  # told in order
           metrics: dict[str, float], ledger_rows: list[Any], wall: float) -> list[str]:
    problems = list(seen.errors)
    requests = engine_requests(work / "engine.jsonl")
    by_key: dict[str, list[Request]] = collections.defaultdict(list)
    for req in requests:
        by_key[req.key].append(req)
    # rows: each once, each its own row's answer
    output = work / "openai-output.jsonl"
    out = [json.loads(line) for line in output.read_text().splitlines() if line.strip()] if output.exists() else []
    ids = collections.Counter(r["custom_id"] for r in out)
    lost = [f"r{i}" for i in range(args.rows) if ids[f"r{i}"] == 0]
    twice = [k for k, n in ids.items() if n > 1]
    wrong = [r["custom_id"] for r in out if r["response"]["body"]["choices"][0]["message"]["content"]
             != " ".join(answer_words(row_key("openai", int(r["custom_id"][1:]))))]
    durable_lost = [i for i, r in enumerate(seen.durable_results) if isinstance(r, Exception)]
    durable_wrong = [i for i, r in enumerate(seen.durable_results) if not isinstance(r, Exception)
                     and str(r["result"]) != " ".join(answer_words(row_key("durable", i)))]
    log.info("")
    log.info("openai batch %s: %s; rows lost %d, answered twice %d, not their own %d", seen.batch_id,
             getattr(seen.batch, "status", "?"), len(lost), len(twice), len(wrong))
    log.info("durable batch: %s; rows lost %d, not their own %d (of %d)", getattr(seen.durable, "status", "?"),
             len(durable_lost), len(durable_wrong), len(seen.durable_results))
    problems += [f"openai rows lost: {lost[:5]}"] * bool(lost) + [f"openai rows twice: {twice[:5]}"] * bool(twice)
    problems += [f"openai rows not their own: {wrong[:5]}"] * bool(wrong)
    problems += [f"durable rows lost: {durable_lost[:5]}"] * bool(durable_lost)
    problems += [f"durable rows not their own: {durable_wrong[:5]}"] * bool(durable_wrong)
    # repeats at the engine: every sending but the last must have been in flight at a kill
    repeats = unexplained = 0
    for key, sent in by_key.items():
        for req in sent[:-1]:
            repeats += 1
            if not lost_to_a_kill(req, landed, args.window):
                unexplained += 1
                near = min((when for when, _ in landed), key=lambda w: abs(w - req.start), default=req.start)
                problems.append(f"{key!r} sent again though its sending {req.rid} was at no kill ({req.how}: "
                                 f"{req.start - near:+.2f} s to {(req.end or near) - near:+.2f} s from the nearest "
                                 "kill)")
    finished_twice = sum(1 for sent in by_key.values() if sum(r.how == "done" for r in sent) > 1)
    log.info("engine: %d requests for %d keys; %d sent again, %d of them not in flight at a kill; "
             "%d keys answered in full more than once; %d dropped unread by its server (their senders killed "
             "as they sent them: paid, though no prompt was read)", len(requests), len(by_key), repeats, unexplained,
             finished_twice, dropped_requests(work / "engine.jsonl"))
    # tokens
    for name, kind, usage_in, usage_out, repeated in _batch_usages(seen):
        sent = [r for k, reqs in by_key.items() if k.startswith(f"{kind} row ") for r in reqs]
        prompt = sum(r.prompt for r in sent)
        final = {k: reqs[-1] for k, reqs in by_key.items() if k.startswith(f"{kind} row ")}
        answered_out = sum(r.completion for r in final.values())
        engine_out = sum(r.completion for r in sent)
        log.info("%s: engine prompt tokens %d, usage %d (%s); engine completion %d (answered %d), usage %d "
                 "(lost sends %d at their cap)", name, prompt, usage_in, "=" if prompt == usage_in else "MISMATCH",
                 engine_out, answered_out, usage_out, repeated)
        if prompt != usage_in:
            problems.append(f"{name}: engine prompt tokens {prompt} != usage {usage_in}")
        if usage_out < engine_out:
            problems.append(f"{name}: usage completion {usage_out} < the engine's {engine_out}")
    paid_in = sum(u[2] for u in _batch_usages(seen))
    paid_out = sum(u[3] for u in _batch_usages(seen))
    log.info("/metrics batch: requests %.0f, prompt %.0f, completion %.0f; the batches' usage: prompt %d, "
             "completion %d", metrics.get("qfnb_requests_total", 0), metrics.get("qfnb_prompt_tokens_total", 0),
             metrics.get("qfnb_completion_tokens_total", 0), paid_in, paid_out)
    if (metrics.get("qfnb_prompt_tokens_total", 0), metrics.get("qfnb_completion_tokens_total", 0)) != (
            paid_in, paid_out):
        problems.append("/metrics' batch counters differ from the batches' usage")
    jobs = [r for r in ledger_rows if r.api == "batch-job" and not str(r.job or "").startswith(RAY_JOB)]
    ledger_total = sum(r.total_tokens for r in jobs)
    log.info("ledger: %d batch-job rows, %d tokens (the batches' usage: %d)", len(jobs), ledger_total,
             paid_in + paid_out)
    if len(jobs) != 2 or ledger_total != paid_in + paid_out:
        problems.append(f"ledger batch-job rows {len(jobs)} / {ledger_total} tokens != the batches' usage")
    chats_ok = sum(1 for k, text in seen.chats.items() if text == " ".join(answer_words(k)))
    chat_sent = sum(len(v) for k, v in by_key.items() if k.startswith("chat row "))
    log.info("chat: %d calls answered (%d their own), %d failed as the user saw them; %d sendings at the engine",
             len(seen.chats), chats_ok, len(seen.chat_errors), chat_sent)
    if chats_ok != len(seen.chats):
        problems.append("a chat call got another call's answer")
    kinds = collections.Counter(f"{signal.Signals(k.sig).name} {k.target}" for _, k in landed)
    log.info("kills landed: %d (%s); wall %.0f s; load %s", len(landed),
             ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())), wall, load_average())
    return problems


def _batch_usages(seen: Traffic) -> list[tuple[str, str, int, int, int]]:
    """``(name, row kind, input, output, lost sends)`` of each batch as its owner reads it."""
    found = []
    if seen.batch is not None:
        usage = seen.batch.usage
        repeated = (usage.model_extra or {}).get("repeated") or {}
        found.append(("openai batch", "openai", usage.input_tokens, usage.output_tokens,
                      int(repeated.get("requests") or 0)))
    if seen.durable is not None:
        view = seen.durable.view
        found.append(("durable batch", "durable", int(view.get("inputTokenUsage") or 0),
                      int(view.get("outputTokenUsage") or 0), int(view.get("repeatedRequests") or 0)))
    return found


if __name__ == "__main__":
    sys.exit(main())
