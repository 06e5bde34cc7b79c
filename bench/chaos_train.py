"""The chaos bench's fine-tune and evaluation phase (``bench/chaos.py --phase train``): a fine-tune whose
daemon and training worker are killed at seeded moments, then a sequential evaluation whose kernel and
daemon are.

The fine-tune: a tiny random Gemma 3 (the tests' ``tiny_models``) added as a fine-tune base
(``qfnb.local_models.add``), trained by an OpenAI fine-tuning job (``qfnb.openai_client()``) with a
validation file, so the run keeps checkpoints and a resume point at each. ``--train-kills`` kills land
once the worker (started again or not) trained a seeded 3 to 40 steps since the last kill (steps, not
seconds: the machine's load does not move them), once the run has its first
checkpoint (a kill before it fails the run, as docs/faults.md says), and not a fourth time in a row
at one resume point (the platform takes that for a crash loop and fails the run: such a kill waits for
the worker's next checkpoint): the worker (SIGKILL), the
daemon (SIGKILL or SIGTERM: the worker lives on, or is stopped and queued for the next start) or both;
the daemon is started again after a pause, as the user's next call would. Then it checks that the job
succeeded with one tuned model listed; that every start of the worker after a kill went on from the
last checkpoint before it (or a later point), never from step 0 once a point existed; the steps trained
in all against the job's steps plus one checkpoint interval per kill; the job's metrics events: each
step once, none missing; a step trained twice (before a kill and after its resume point) logged the
same loss; the job's ``trained_tokens``, the daemon's fine-tune span and the tokens an uninterrupted
run trains on (the worker's own data code over the same seeded batches): all equal, and one span.

The evaluation (``bench/chaos_eval_kernel.py``): ``EvaluationManager.eval`` of the bench engine's model
on ``--eval-items`` items with an answer store, one item at a time, in a process of its own (the
kernel), while ``--eval-kills`` kills land at seeded moments: the kernel (SIGKILL, started again: the
cell run again) or the daemon, each a seeded moment after the kernel (started again or not) asked the
engine for an item. It checks the report (each item once, its own answer) and, at the
engine, that an item was asked again only when its first sending was in flight at a kill.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import retry
from chaos_books import BATCH_MODEL, Kill, Request, engine_requests, keep_logs, row_key
from chaos_engine import answer_words

log = logging.getLogger("bench.chaos")
ROOT = Path(__file__).resolve().parents[1]
BASE = "chaos-base"
WORKER = "qfnb.local.training.process.worker"


def add_arguments(parser: Any) -> None:
    parser.add_argument("--phase", choices=("batch", "attached", "train"), default="batch",
                        help="batch: the batch, chat and Ray traffic; attached: the batch and chat traffic on an "
                        "attached engine that answers whole, never streamed; train: a fine-tune and an evaluation")
    parser.add_argument("--train-rows", type=int, default=96, help="the fine-tune's rows (0: no fine-tune)")
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument("--train-kills", type=int, default=4)
    parser.add_argument("--eval-items", type=int, default=120, help="the evaluation's items (0: no evaluation)")
    parser.add_argument("--eval-kills", type=int, default=6)


@dataclass
class TrainKill:
    after: int     # steps the worker trains after the last kill
    target: str    # "trainer", "daemon" or "both"
    sig: int       # the daemon's signal (the worker's is SIGKILL)
    pause: float   # seconds before the daemon is started again
    step: int = 0  # the last step the worker had logged
    when: float = 0.0


def train_schedule(seed: int, kills: int) -> list[TrainKill]:
    rng = random.Random(seed * 1_000_003 + 67)
    return [TrainKill(rng.randint(3, 40), rng.choice(("trainer", "trainer", "daemon", "both")),
                      rng.choice((signal.SIGKILL, signal.SIGTERM)), round(rng.uniform(0.2, 2.0), 2))
            for _ in range(kills)]


def eval_schedule(seed: int, kills: int) -> list[Kill]:
    """``at``: seconds after the kernel (started again or not) asked the engine for an item."""
    rng = random.Random(seed * 1_000_003 + 68)
    return [Kill(round(rng.uniform(0.3, 4.0), 2), rng.choice(("kernel", "kernel", "daemon")),
                 rng.choice((signal.SIGKILL, signal.SIGTERM)), round(rng.uniform(0.2, 1.5), 2)) for _ in range(kills)]


@dataclass
class Found:
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def say(self, text: str, *args: Any) -> None:
        self.lines.append(text % args if args else text)
        log.info(text, *args)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


def run_train_phase(args: Any, engine_class: Any, daemon_class: Any, load_average: Any) -> int:
    """The phase on a data dir of its own; exit status 0 when every check held."""
    found = Found()
    t0 = time.time()
    found.say("train phase: seed %d, %d rows x %d epochs under %d kills, %d eval items under %d kills; load %s",
              args.seed, args.train_rows, args.train_epochs, args.train_kills, args.eval_items, args.eval_kills,
              load_average())
    with tempfile.TemporaryDirectory(prefix="qfnb-chaos-train-") as tmp:
        work = Path(tmp)
        engine = engine_class(work, args.delay)
        engine.start()
        os.environ.update(QFNB_DATA_DIR=str(work / "data"), QFNB_ENGINES=json.dumps({BATCH_MODEL: engine.url}))
        for key in [k for k in os.environ if k.startswith("QIANFAN_")]:
            os.environ.pop(key)
        daemon = daemon_class(work / "data")
        daemon.ensure()
        try:
            if args.train_rows:
                fine_tune(args, work, daemon, found)
            if args.eval_items:
                evaluate(args, work, daemon, found)
        except Exception as exc:  # reported
            log.exception("the train phase failed")
            found.problems.append(f"train phase: {type(exc).__name__}: {exc}"[:400])
        finally:
            for what, stop in (("the daemon", daemon.stop), ("the engine", engine.stop)):
                try:
                    stop()
                except Exception:
                    log.exception("could not stop %s", what)
            if args.keep:
                keep_logs(work, args.keep)
    found.say("train phase: wall %.0f s; load %s", time.time() - t0, load_average())
    for problem in found.problems:
        log.info("PROBLEM: %s", problem)
    log.info("%s", "every check held" if not found.problems else f"{len(found.problems)} problems")
    return 0 if not found.problems else 1


# ---- the fine-tune --------------------------------------------------------------------------------


def _chat_rows(n: int, start: int = 0) -> str:
    return "".join(json.dumps({"messages": [
        {"role": "user", "content": f"What is code {i}?"},
        {"role": "assistant", "content": f"Code {i} is {chr(65 + i % 26) * 3}."}]}) + "\n"
        for i in range(start, start + n))


def _progress(job_dir: Path) -> list[dict[str, Any]]:
    try:
        text = (job_dir / "progress.jsonl").read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line being written
            continue
    return out


def worker_pids(job_dir: Path) -> list[int]:
    """The training workers of ``job_dir`` (the daemon we started started them): their command names it."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if WORKER.encode() in cmd and str(job_dir).encode() in cmd:
            pids.append(int(proc.name))
    return pids


def _kill_worker(job_dir: Path) -> int:
    killed = 0
    for pid in worker_pids(job_dir):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + 30
    while worker_pids(job_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    return killed


def fine_tune(args: Any, work: Path, daemon: Any, found: Found) -> None:
    import qfnb
    from qfnb import local_models

    sys.path[:0] = [str(ROOT / "tests" / "local")]
    from tiny_models import build_tiny_gemma

    local_models.add(build_tiny_gemma(work / "tiny"), name=BASE, role="finetune-base", data_dir=work / "data")
    (work / "train.jsonl").write_text(_chat_rows(args.train_rows))
    (work / "valid.jsonl").write_text(_chat_rows(8, start=1000))
    client = retry(lambda: qfnb.openai_client(data_dir=work / "data", max_retries=8, timeout=30))
    train = retry(lambda: client.files.create(file=(work / "train.jsonl").open("rb"), purpose="fine-tune"))
    valid = retry(lambda: client.files.create(file=(work / "valid.jsonl").open("rb"), purpose="fine-tune"))
    job = retry(lambda: client.fine_tuning.jobs.create(
        model=BASE, training_file=train.id, validation_file=valid.id, seed=args.seed, suffix="chaos",
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": args.train_epochs, "batch_size": 1, "learning_rate_multiplier": 2}}}))
    job_dir = work / "data" / "jobs" / ("task-" + job.id.removeprefix("ftjob-"))
    found.say("fine-tune %s: %d rows x %d epochs on %s", job.id, args.train_rows, args.train_epochs, BASE)
    landed = _kills(args, job_dir, daemon, found)
    deadline = time.monotonic() + 1800
    while True:
        done = retry(lambda: client.fine_tuning.jobs.retrieve(job.id))
        if done.status in ("succeeded", "failed", "cancelled") and done.finished_at is not None:
            break
        if time.monotonic() > deadline:
            found.problems.append(f"fine-tune {job.id} did not end in 30 minutes")
            return
        time.sleep(1.0)
    _check_fine_tune(client, done, job_dir, landed, work, found)


def _kills(args: Any, job_dir: Path, daemon: Any, found: Found) -> list[TrainKill]:
    """The seeded kills, each once the worker trained a step since the last (see the module's docstring)."""
    from qfnb.local.domain.training.jobs import MAX_RESUMES

    landed: list[TrainKill] = []
    for kill in train_schedule(args.seed, args.train_kills):
        if not _wait_training(job_dir, len(_progress(job_dir)), kill.after, need_checkpoint=not landed):
            break
        if kill.target != "daemon" and _stalled(_lives(_progress(job_dir))) >= MAX_RESUMES:
            _wait_checkpoint(job_dir)
        steps = [p["step"] for p in _progress(job_dir) if "loss" in p]
        if (job_dir / "result.json").exists() or not steps:
            break
        kill.step, kill.when = steps[-1], time.time()
        if kill.target in ("daemon", "both"):
            daemon.kill(kill.sig if kill.target == "daemon" else signal.SIGKILL)
        if kill.target in ("trainer", "both"):
            _kill_worker(job_dir)
        landed.append(kill)
        found.say("  kill %d at step %d: %s%s; back in %.1f s", len(landed), kill.step, kill.target,
                  f" ({signal.Signals(kill.sig).name})" if kill.target == "daemon" else "", kill.pause)
        time.sleep(kill.pause)
        if kill.target in ("daemon", "both"):
            retry(daemon.ensure, tries=5)
    return landed


def _stalled(lives: list[Life]) -> int:
    """How many of the last worker starts went on from the resume point the last one did (the first
    start is not a resume)."""
    starts = [life.first for life in lives[1:]]
    return next((n for n in range(len(starts)) if starts[-1 - n] != starts[-1]), len(starts))


def _wait_checkpoint(job_dir: Path, timeout: float = 600.0) -> None:
    """Wait until the worker running now writes a checkpoint (its resume point moves on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lives = _lives(_progress(job_dir))
        if (job_dir / "result.json").exists() or (lives and lives[-1].checkpoint > lives[-1].first):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the fine-tune wrote no checkpoint in {timeout:.0f} s")


def _wait_training(job_dir: Path, seen: int, steps: int, *, need_checkpoint: bool, timeout: float = 600.0) -> bool:
    """Wait until the worker logs ``steps`` trained steps after the first ``seen`` lines (and, with
    ``need_checkpoint``, the run has a checkpoint); False when the job ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (job_dir / "result.json").exists():
            return False
        lines = _progress(job_dir)
        trained = sum(1 for p in lines[seen:] if "loss" in p)
        if trained >= steps and (not need_checkpoint or any("checkpoint" in p for p in lines)):
            return True
        time.sleep(0.1)
    raise RuntimeError(f"the fine-tune trained no step in {timeout:.0f} s")


def _check_fine_tune(client: Any, done: Any, job_dir: Path, landed: list[TrainKill], work: Path,
                     found: Found) -> None:
    found.check(done.status == "succeeded", f"fine-tune {done.id} {done.status}: {done.error}")
    jobs = retry(lambda: list(client.fine_tuning.jobs.list(limit=100)))
    tuned = [j.fine_tuned_model for j in jobs if j.fine_tuned_model]
    saved = [c.step_number for c in retry(lambda: list(client.fine_tuning.jobs.checkpoints.list(done.id)))]
    found.say("fine-tune %s: %s; %d job(s), tuned models %s; checkpoints listed at steps %s", done.id, done.status,
              len(jobs), tuned, sorted(saved))
    found.check(len(jobs) == 1 and tuned == [done.fine_tuned_model],
                f"{len(jobs)} jobs, tuned models {tuned}, the job's {done.fine_tuned_model}")
    found.check(len(saved) == len(set(saved)), f"a checkpoint listed twice: {sorted(saved)}")
    lines = _progress(job_dir)
    total = max((int(p.get("total_steps") or 0) for p in lines), default=0)
    checkpoints = sorted({int(p["checkpoint"]["step"]) for p in lines if "checkpoint" in p})
    # each start of the worker after a kill: the step it went on from, and the last step logged before
    resumed = [int(p["step"]) for p in lines if str(p.get("phase", "")).startswith("resumed from")]
    lives = _lives(lines)
    trained = sum(life.last - life.first for life in lives)
    interval = max((b - a for a, b in itertools.pairwise([0, *checkpoints])), default=total)
    found.say("  %d steps, checkpoints %s; the worker started %d times, resumed from %s; %d steps trained in "
              "all (the job's %d + at most %d per kill: %d)", total, checkpoints, len(lives), resumed, trained,
              total, interval, total + interval * len(landed))
    found.check(trained <= total + interval * len(landed),
                f"{trained} steps trained for a {total}-step job under {len(landed)} kills")
    for n, life in enumerate(lives[1:], 1):
        saved = lives[n - 1].checkpoint  # the last checkpoint the worker before it had written
        found.check(life.first >= saved, f"worker start {n + 1} went on from step {life.first}, the last "
                                         f"checkpoint before it was step {saved}")
    found.check(resumed == [life.first for life in lives[1:]], f"resumed from {resumed}, the starts {lives}")
    losses: dict[int, set[float]] = collections.defaultdict(set)
    for p in lines:
        if "loss" in p:
            losses[int(p["step"])].add(round(float(p["loss"]), 4))
    differing = {s: v for s, v in losses.items() if len(v) > 1}
    found.check(not differing, f"steps trained again with another loss: {dict(list(differing.items())[:3])}")
    events = retry(lambda: list(client.fine_tuning.jobs.list_events(done.id, limit=100)))
    steps = [int(e.data["step"]) for e in events if e.type == "metrics"]
    found.say("  metrics events: %d, %d distinct steps; %d steps logged twice (trained again after a kill), "
              "each with one loss", len(steps), len(set(steps)), _twice(lines))
    found.check(sorted(steps) == list(range(1, total + 1)), f"the loss curve's steps are not 1..{total} once each")
    expected = expected_tokens(job_dir, total)
    spans: list[int] = []
    for _ in range(50):  # the daemon writes its spans within a second or so
        spans = fine_tune_spans(work / "data", "fine-tune " + job_dir.name)
        if spans:
            break
        time.sleep(0.2)
    found.say("  trained tokens: the job %s, the daemon's spans %s, an uninterrupted run's %d", done.trained_tokens,
              spans, expected)
    found.check(done.trained_tokens == expected, f"the job's trained_tokens {done.trained_tokens} != {expected}")
    found.check(spans == [expected], f"the daemon's fine-tune spans {spans} != one of {expected}")


def _twice(lines: list[dict[str, Any]]) -> int:
    counts = collections.Counter(int(p["step"]) for p in lines if "loss" in p)
    return sum(1 for n in counts.values() if n > 1)


@dataclass
class Life:
    """One worker process: the step it started at, the last step it logged, its last checkpoint's step."""

    first: int = 0
    last: int = 0
    checkpoint: int = 0


def _lives(lines: list[dict[str, Any]]) -> list[Life]:
    """Each worker process's :class:`Life`, from its phase lines (each start loads the base's weights)."""
    lives: list[Life] = []
    for p in lines:
        phase = str(p.get("phase", ""))
        if phase.startswith("loading the base model"):
            lives.append(Life())
        elif not lives:
            continue
        elif phase.startswith("resumed from"):
            lives[-1].first = lives[-1].last = lives[-1].checkpoint = int(p["step"])
        elif "checkpoint" in p:
            lives[-1].checkpoint = int(p["checkpoint"]["step"])
        elif "loss" in p:
            lives[-1].last = int(p["step"])
    return lives


def expected_tokens(job_dir: Path, total: int) -> int:
    """The tokens an uninterrupted run trains on: the worker's own data code over the same seeded batches."""
    from transformers import AutoTokenizer

    from qfnb.local.training import data, lora, modes
    from qfnb.local.training.spec import load_spec

    spec = load_spec(job_dir)
    mode = modes.mode_for(spec)
    examples, _ = mode.load(spec)
    tok = AutoTokenizer.from_pretrained(str(lora.base_model_dir(spec)))
    rows = mode.encode(tok, examples, spec.hyper)
    return sum(mode.tokens(rows[i]) for _, idx in itertools.islice(
        data.batches(len(rows), spec.hyper.batch_size, spec.seed), total) for i in idx)


def fine_tune_spans(data_dir: Path, job: str) -> list[int]:
    """The trained tokens of each fine-tune span the daemons wrote for ``job``."""
    from qfnb._core.record.traces import read_spans

    return [int(s.trained_tokens or 0) for s in read_spans(data_dir, last=100_000)
            if getattr(s, "job", None) == job and s.route == "fine-tune"]


# ---- the evaluation -------------------------------------------------------------------------------


def evaluate(args: Any, work: Path, daemon: Any, found: Found) -> None:
    store, report = work / "answers.sqlite", work / "report.json"
    command = [sys.executable, str(ROOT / "bench" / "chaos_eval_kernel.py"), str(args.eval_items), str(store),
               str(report)]
    log_file = (work / "kernel.log").open("ab")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)

    plan = eval_schedule(args.seed, args.eval_kills)
    found.say("evaluation: %d items, one at a time, %d kills", args.eval_items, len(plan))
    t0 = time.time()
    kernel = start()
    landed: list[tuple[float, Kill]] = []
    try:
        for kill in plan:
            if not _asking(work / "engine.jsonl", kernel, _asked(work / "engine.jsonl")):
                break
            time.sleep(kill.at)
            if kernel.poll() is not None:
                break
            when = time.time()
            if kill.target == "kernel":
                kernel.send_signal(signal.SIGKILL)
                kernel.wait(30)
            else:
                daemon.kill(kill.sig)
            kill.gone = time.time()
            landed.append((when, kill))
            found.say("  %5.1f s  %s %s; back in %.1f s", when - t0, signal.Signals(
                signal.SIGKILL if kill.target == "kernel" else kill.sig).name, kill.target, kill.pause)
            time.sleep(kill.pause)
            if kill.target == "kernel":
                kernel = start()
            else:
                retry(daemon.ensure, tries=5)
        code = kernel.wait(900)
    finally:
        if kernel.poll() is None:
            kernel.kill()
            kernel.wait()
        log_file.close()
    found.check(code == 0, f"the evaluation kernel exited with {code}")
    _check_evaluation(args, work, report, landed, found)


def _asked(journal: Path) -> int:
    """The evaluation's requests the engine has received."""
    try:
        text = journal.read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if '"recv"' in line and '"eval row ' in line)


def _asking(journal: Path, kernel: subprocess.Popen[bytes], seen: int, timeout: float = 300.0) -> bool:
    """Wait until the kernel asks the engine for an item after the first ``seen``; False when it ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kernel.poll() is not None:
            return False
        if _asked(journal) > seen:
            return True
        time.sleep(0.05)
    raise RuntimeError(f"the evaluation asked nothing in {timeout:.0f} s")


def in_flight(req: Request, kills: list[tuple[float, Kill]], window: float) -> bool:
    """Whether ``req`` was in flight at a kill of the kernel or the daemon (both write its answer): open at
    it, or answered at most ``window`` seconds before it (not yet written), or read by the engine after
    its sender died: a killed daemon (the engine saw its sender hang up), or a killed kernel whose call
    the daemon had read and passed on after the kernel's end, before the next kernel started (the
    engine's sender, the daemon, lives on: nobody else asks for an item between the two)."""
    return any((req.start <= kill.gone and (req.end is None or req.end >= when - window))
               or (req.orphan and when <= req.start <= kill.gone + 5.0)
               or (kill.target == "kernel" and when <= req.start <= kill.gone + kill.pause) for when, kill in kills)


def _check_evaluation(args: Any, work: Path, report: Path, landed: list[tuple[float, Kill]], found: Found) -> None:
    result = json.loads(report.read_text()) if report.exists() else {"rows": [], "runs": 0}
    rows = result["rows"]
    seen = collections.Counter(r["input"] for r in rows)
    keys = [row_key("eval", i) for i in range(args.eval_items)]
    lost = [k for k in keys if not seen[k]]
    twice = [k for k, n in seen.items() if n > 1]
    wrong = [r["input"] for r in rows if r["output"] != " ".join(answer_words(r["input"])) or r["score"] != 1.0]
    found.say("evaluation report: %d rows (the last of %d runs of the cell), lost %d, twice %d, wrong %d",
              len(rows), result["runs"], len(lost), len(twice), len(wrong))
    found.check(not lost and not twice and not wrong,
                f"evaluation rows lost {lost[:3]}, twice {twice[:3]}, not their own {wrong[:3]}")
    sent = [r for r in engine_requests(work / "engine.jsonl") if r.key.startswith("eval row ")]
    by_key: dict[str, list[Request]] = collections.defaultdict(list)
    for req in sent:
        by_key[req.key].append(req)
    repeats = [(k, r) for k, reqs in by_key.items() for r in reqs[:-1]]
    unexplained = [(k, r) for k, r in repeats if not in_flight(r, landed, args.window)]
    kinds = collections.Counter(k.target for _, k in landed)
    found.say("  engine: %d calls for %d items; %d asked again, %d of them not in flight at a kill (kills: %s)",
              len(sent), len(by_key), len(repeats), len(unexplained), dict(kinds))
    for key, req in unexplained[:5]:
        near = min((w for w, _ in landed), key=lambda w: abs(w - req.start), default=req.start)
        found.problems.append(f"{key!r} asked again though its sending {req.rid} was at no kill "
                              f"({req.how}: {req.start - near:+.2f} s to {(req.end or near) - near:+.2f} s)")
