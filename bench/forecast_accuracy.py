"""How often ``qfnb.forecast``'s stated ranges hold the runs they forecast, on a tiny chat model
(a 2-layer Qwen 2 shape with random weights, built here and converted to GGUF: its answers run to
the cap in well under a second, so 20 runs take minutes on a busy 2-core machine) served by the
embedded platform (a daemon over a temporary data dir) and by an external engine (a bare
``llama-server`` started here on the same GGUF, named by ``QFNB_ENGINES``); both stopped at the end.

    .venv/bin/python bench/forecast_accuracy.py [--runs 20] [--items 3] [--max-tokens 32] [--model Gemma-3-270M]

(``--model``: a bundled chat model instead of the tiny one.) A pilot of ``--items`` prompts on each
model first (the ledger then holds each model's answers and this machine's speed for it). Then
``--runs`` forecasts, each checked against the run it forecast, taken in turn from four kinds of
run, each on new prompts of the same kind:

- ``plain``: a batch of chats (``qfnb.forecast`` then ``batch_do``);
- ``stored``: an evaluation with an answer store that already holds some of its answers (the
  forecast of ``%qfeval``, :func:`qfnb.notebook.forecasts.eval_forecasts`: those are 0 calls);
- ``variant``: an evaluation of two prompt variants of one model (one forecast each, each compared
  with its own calls only);
- ``external``: a batch of chats on the external engine (its tokens counted by its ``/tokenize``).

A forecast's token range holds the run when its actual input + output tokens lie in
[input + output low, input (up to) + output high]; its ETA range when the run's wall time lies in
[ETA low, ETA high]. Printed: each check, then per kind and overall the share of checks their ranges
hold (target: 80 % or more), the median ratios actual ÷ forecast and how wide the ETA ranges are
(the median of ETA high ÷ actual time), with the load average at the start and the end (on a machine
busier than its cores the ETA's upper end widens with the load).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import load_average, log_to_stdout, serve_bare
from qfnb.local.engines.store import assets
from qfnb.local.engines.store.model_store import ModelStore

log = logging.getLogger("bench.forecast_accuracy")

EXTERNAL = "Bench-External-Chat"
TINY = "Bench-Tiny-Chat"
SUBJECTS = ["the moon", "a river", "bread", "a violin", "the desert", "a lighthouse", "coffee", "an owl", "snow",
            "a bridge", "honey", "a volcano", "the ocean", "a kite", "salt", "a lantern", "copper", "a fern",
            "a clock", "paper", "a cave", "tea", "glass", "a map", "bees", "dice", "tides", "a harbour",
            "a forest", "a library", "rain", "a mountain"]
ASKS = ["Describe {} in one short sentence.", "Name one use of {}.", "Say something about {} in a few words.",
        "What colour is {}?"]
KINDS = ("plain", "stored", "variant", "external")


@dataclasses.dataclass
class Check:
    """One forecast beside the run it forecast."""

    kind: str
    tokens: int
    tokens_low: int
    tokens_high: int
    seconds: float
    eta_low: float | None
    eta_high: float | None
    tokens_ratio: float | None
    eta_ratio: float | None

    @property
    def tokens_held(self) -> bool:
        return self.tokens_low <= self.tokens <= self.tokens_high

    @property
    def eta_held(self) -> bool:
        return self.eta_low is not None and self.eta_high is not None and self.eta_low <= self.seconds <= self.eta_high

    def line(self) -> str:
        eta = (f"{self.eta_low:.1f}–{self.eta_high:.1f} s" if self.eta_low is not None and self.eta_high is not None
               else "no ETA")
        return (f"{self.kind:<9} tokens {self.tokens:>5} in {self.tokens_low}–{self.tokens_high}: "
                f"{'yes' if self.tokens_held else 'NO ':<3}  time {self.seconds:6.1f} s in {eta}: "
                f"{'yes' if self.eta_held else 'NO'}")


def checked(kind: str, fc: Any, check: Any) -> Check:
    """A forecast (:class:`qfnb.Forecast`) and its ``against`` as one :class:`Check`."""
    top_in = fc.input_high if fc.input_high is not None else fc.input_tokens
    return Check(kind, check.total_tokens, fc.input_tokens + fc.output_low, top_in + fc.output_high, check.seconds,
                 fc.eta_low_s, fc.eta_high_s, check.tokens_ratio, check.eta_ratio)


class Prompts:
    """New prompts of the same kind, never asked before in this run."""

    def __init__(self) -> None:
        self._all = [a.format(s) for a in ASKS for s in SUBJECTS]

    def take(self, n: int) -> list[str]:
        if len(self._all) < n:
            raise SystemExit("the bench ran out of prompts: fewer --runs or --items")
        out, self._all = self._all[:n], self._all[n:]
        return out


def timed(run: Callable[[], Any]) -> tuple[float, float]:
    since, start = time.time(), time.perf_counter()
    run()
    return since, time.perf_counter() - start


def tiny_model(data: Path) -> tuple[str, Path]:
    """The tiny chat model, built, converted to GGUF and named :data:`TINY` in the temporary data
    dir's model store: its name and its GGUF."""
    from tiny_models import build_tiny_qwen  # tests/local, on the path by bench._common

    from qfnb.local.engines.store.hf_gguf import convert

    gguf = convert(build_tiny_qwen(data / "tiny-hf"), data / "tiny.gguf")
    ModelStore(data_dir=data / "data").add(gguf, TINY)
    return TINY, gguf


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--items", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--model", help="a bundled chat model (default: a tiny one built here)")
    args = parser.parse_args()
    log_to_stdout()
    data = Path(tempfile.mkdtemp(prefix="qfnb-forecast-bench-"))
    for key in [k for k in os.environ if k.startswith("QIANFAN_")]:
        os.environ.pop(key)
    os.environ["QFNB_DATA_DIR"] = str(data / "data")
    os.environ["QIANFAN_CACHE_DIR"] = str(data / "cache")
    log.info("load average at the start: %s", load_average())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a stopped bench stops what it started
    model, gguf = (args.model, assets.gguf_path(args.model)) if args.model else tiny_model(data)
    bare, base = serve_bare(2, data / "bare", gguf)
    os.environ["QFNB_ENGINES"] = json.dumps({EXTERNAL: {"base_url": f"{base}/v1"}})

    from qfnb._core.backend import daemon

    try:
        checks = Runner(model, args.items, args.max_tokens).checks(args.runs)
    finally:
        daemon.stop_daemon(data / "data", force=True, timeout=30)
        bare.terminate()
        bare.wait(30)
        if not args.model:
            ModelStore(data_dir=data / "data").remove(TINY)
        shutil.rmtree(data, ignore_errors=True)
    log.info("%-9s %6s %16s %16s %14s %14s %16s", "kind", "checks", "tokens in range", "time in range",
             "tokens median", "time median", "ETA high/actual")
    for kind in (*KINDS, "all"):
        mine = [c for c in checks if kind in ("all", c.kind)]
        if not mine:
            continue
        tok = [c.tokens_ratio for c in mine if c.tokens_ratio]
        eta = [c.eta_ratio for c in mine if c.eta_ratio]
        wide = [c.eta_high / c.seconds for c in mine if c.eta_high is not None and c.seconds > 0]
        log.info("%-9s %6d %16s %16s %14s %14s %16s", kind, len(mine),
                 f"{sum(c.tokens_held for c in mine) / len(mine):.0%}",
                 f"{sum(c.eta_held for c in mine) / len(mine):.0%}",
                 f"{statistics.median(tok):.0%}" if tok else "-", f"{statistics.median(eta):.0%}" if eta else "-",
                 f"{statistics.median(wide):.1f}x" if wide else "-")
    log.info("targets: 80%% or more of the checks in range; load average at the end: %s (%d cores)", load_average(),
             os.cpu_count() or 1)
    return 0


class Runner:
    """The runs of each kind, each forecast first and checked against its run."""

    def __init__(self, model: str, items: int, max_tokens: int) -> None:
        from qfnb.evaluation import AnswerStore, EvaluationManager, ExactMatchEvaluator
        from qfnb.resources import ChatCompletion

        self.items, self.cap = items, max_tokens
        self.params = {"max_output_tokens": max_tokens, "temperature": 0.01}
        self.chat = ChatCompletion(model=model)
        self.engine = ChatCompletion(model=EXTERNAL)
        self.prompts = Prompts()
        self.store = AnswerStore(Path(os.environ["QFNB_DATA_DIR"]) / "answers.sqlite")
        self.manager = EvaluationManager(local_evaluators=[ExactMatchEvaluator()], worker_num=2)

    def batch(self, chat: Any, prompts: list[str]) -> None:
        answers = chat.batch_do([[{"role": "user", "content": p}] for p in prompts], worker_num=2,
                                **self.params).results()
        failed = [a for a in answers if isinstance(a, Exception)]
        if failed:
            raise SystemExit(f"a call failed: {failed[0]}")

    def evaluate(self, llms: dict[str, Any], prompts: list[str]) -> None:
        self.manager.eval(llms, [{"input": p, "reference": ""} for p in prompts], input_column="input",
                          reference_column="reference", progress=False, store=self.store, **self.params)

    def checks(self, runs: int) -> list[Check]:
        self.batch(self.chat, self.prompts.take(self.items))  # the pilots: each model's answers and speed
        self.batch(self.engine, self.prompts.take(self.items))
        out: list[Check] = []
        k = 0
        while len(out) < runs:
            kind = KINDS[k % len(KINDS)]
            k += 1
            found = getattr(self, kind)()
            for c in found[:runs - len(out)]:
                log.info("%s", c.line())
                out.append(c)
        return out

    def plain(self, chat: Any = None, kind: str = "plain") -> list[Check]:
        import qfnb

        chat = chat or self.chat
        prompts = self.prompts.take(self.items)
        fc = qfnb.forecast(prompts, model=chat._model, max_tokens=self.cap, params={"temperature": 0.01})
        since, seconds = timed(lambda: self.batch(chat, prompts))
        return [checked(kind, fc, fc.against(since=since, seconds=seconds))]

    def external(self) -> list[Check]:
        return self.plain(self.engine, "external")

    def stored(self) -> list[Check]:
        """An evaluation whose store holds a third of its answers (asked just before, not timed)."""
        prompts = self.prompts.take(self.items * 3 // 2)
        known = prompts[:max(1, len(prompts) // 3)]
        self.evaluate({"m": self.chat}, known)
        return self.forecast_evaluation({"m": self.chat}, prompts, "stored")

    def variant(self) -> list[Check]:
        from qfnb.evaluation import PromptVariant

        llms = {"terse": PromptVariant("Answer in at most ten words: {input}", self.chat),
                "system": PromptVariant("You are a helpful, brief assistant.", self.chat)}
        return self.forecast_evaluation(llms, self.prompts.take(self.items), "variant")

    def forecast_evaluation(self, llms: dict[str, Any], prompts: list[str], kind: str) -> list[Check]:
        from qfnb.notebook.forecasts import eval_forecasts

        found, _ = eval_forecasts(llms, prompts, max_tokens=self.cap, repeats=1, params=self.params, store=self.store)
        since, seconds = timed(lambda: self.evaluate(llms, prompts))
        if len(found) == 1:
            return [checked(kind, found[0], found[0].against(since=since, seconds=seconds))]
        return [checked(kind, fc, fc.against(since=since, seconds=took)) for fc, took in zip(found, spans(found, since),
                                                                                             strict=True)]


def spans(found: list[Any], since: float) -> list[float]:
    """Each part's wall time in an evaluation that asks its models (prompt variants) one after
    another: from the previous part's last call (the first: the start) to its own last call."""
    from qfnb._core.record.ledger import default_ledger, in_part

    rows = default_ledger().rows(since=since)
    out, start = [], since
    for fc in found:
        end = max((r.ts for r in rows if in_part(r.job, fc.tag)), default=start)
        out.append(end - start)
        start = end
    return out


if __name__ == "__main__":
    sys.exit(main())
