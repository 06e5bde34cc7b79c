"""``qfnb.forecast(prompts, model=...)``: what a run will take, said before anything is sent.

* **Input tokens** are counted by the model's own tokenizer: the local platform renders each chat
  with the model's template and tokenizes it (what the answer's ``prompt_tokens`` will say); the
  cloud platform's tokenizer counts ERNIE models' text. Elsewhere they are estimated, and it says so.
* **Output tokens** come from a pilot's answers (``pilot=``) or this model's recorded answers in the
  usage ledger, preferring prompts of similar length, each capped at ``max_tokens``. The range is a
  90% prediction interval for the sum of the run's answers: the answers vary (``N σ²``) and the
  mean is itself estimated from ``k`` answers (``N² σ² / k``). With fewer than 3 answers to learn
  from, the upper bound is every answer at its cap.
* **Price** is the dated list price (:mod:`qfnb._core.record.prices`) for a cloud model, ¥0 locally;
  a batch job's is the table's batch price class, or the online price where it has none (it says which).
* **ETA** is this machine's recorded speed for the model: the wall time of its earlier runs
  (evaluations and batches, or single calls for a single call) against their tokens.

:meth:`Forecast.check_budget` refuses a run whose upper bound exceeds what the active budget has
left, before its first call; :meth:`Forecast.against` compares a finished run with its forecast.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qfnb._core.config import Config, resolve_config
from qfnb._core.errors import ValidationError
from qfnb._core.http.recorded import generates
from qfnb._core.record.budget import BudgetExceeded, active_budget
from qfnb._core.record.ledger import SESSION, UsageRow, default_ledger
from qfnb._core.record.prices import prices
from qfnb._core.runtime import sync
from qfnb.protocol.limits import DEFAULT_OUTPUT_TOKENS
from qfnb.protocol.safe_html import escape
from qfnb.resources.defaults import default_model
from qfnb.resources.inference.tokenizer import Tokenizer

__all__ = ["Forecast", "ForecastCheck", "aforecast", "check_budget", "count_conversations", "duration", "forecast"]

#: the z of a two-sided 90% interval
_Z90 = 1.6449
#: answers needed before their spread is trusted; with fewer the upper bound is the cap
MIN_SAMPLES = 3
#: prompts within this factor of the run's median length count as similar
_SIMILAR = 2.0
#: the most recent earlier runs the speed is measured on
_RUNS = 10
#: prompts counted at once
_COUNTING = 8


@dataclass(frozen=True)
class ForecastCheck:
    """A finished run against its forecast: tokens and seconds, forecast and actual."""

    forecast: Forecast
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    calls: int
    replayed: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def tokens_ratio(self) -> float | None:
        """actual ÷ forecast total tokens (None without an expected output)."""
        expected = self.forecast.total_expected
        return self.total_tokens / expected if expected else None

    @property
    def eta_ratio(self) -> float | None:
        eta = self.forecast.eta_s
        return self.seconds / eta if eta else None

    def rows(self) -> list[tuple[str, str, str]]:
        f = self.forecast
        out = f.output_expected
        return [
            ("input tokens", f"{f.input_tokens:,}", f"{self.prompt_tokens:,}"),
            ("output tokens", f"~{out:,} ({f.output_low:,}–{f.output_high:,})" if out is not None
             else f"≤ {f.output_high:,}", f"{self.completion_tokens:,}"),
            ("total tokens", f"~{f.total_expected:,}" if f.total_expected is not None else f"≤ {f.total_high:,}",
             f"{self.total_tokens:,}" + (f" ({self.tokens_ratio:.0%} of forecast)" if self.tokens_ratio else "")),
            ("time", duration(f.eta_s) if f.eta_s is not None else "no record",
             duration(self.seconds) + (f" ({self.eta_ratio:.0%} of forecast)" if self.eta_ratio else "")),
        ]

    def __repr__(self) -> str:
        head = f"Forecast vs actual ({self.calls:,} calls" + (f", {self.replayed:,} replayed from the cache"
                                                             if self.replayed else "") + ")"
        return "\n".join([head, *(f"  {a:<14}{b:>28}  →  {c}" for a, b, c in self.rows())])

    def _repr_html_(self) -> str:
        cells = "".join(f"<tr><th style='text-align:left'>{escape(a)}</th><td>{escape(b)}</td>"
                        f"<td>{escape(c)}</td></tr>" for a, b, c in self.rows())
        head = escape(repr(self).splitlines()[0])
        return (f"<table class='qfnb-forecast-check'><caption style='text-align:left'>{head}</caption>"
                f"<tr><th></th><th>forecast</th><th>actual</th></tr>{cells}</table>")


@dataclass(frozen=True)
class Forecast:
    """What a run of ``calls`` chat calls to ``model`` will take (see the module's docstring)."""

    model: str
    platform: str
    calls: int
    input_tokens: int
    input_source: str
    output_expected: int | None
    output_low: int
    output_high: int
    output_source: str
    yuan_expected: float | None
    yuan_high: float | None
    price_source: str
    eta_s: float | None
    eta_low_s: float | None
    eta_high_s: float | None
    speed_source: str
    assumptions: tuple[str, ...] = field(default=())
    #: the name the run asks by, when the model that answers (``model``) goes by another
    asked: str = ""

    @property
    def total_expected(self) -> int | None:
        return None if self.output_expected is None else self.input_tokens + self.output_expected

    @property
    def total_high(self) -> int:
        """The forecast's upper bound on tokens (what a budget is checked against)."""
        return self.input_tokens + self.output_high

    def check_budget(self, what: str = "this run") -> None:
        """Raise :class:`~qfnb.usage.BudgetExceeded`, with the figures, when the forecast's upper bound
        exceeds what the active budget has left (:func:`check_budget`)."""
        check_budget([self], what)

    def against(self, *, since: float, seconds: float, session: str = SESSION) -> ForecastCheck:
        """The run that began at ``since`` (``time.time()``) and took ``seconds``, read from the
        ledger (this session's generating calls to this model since then), against this forecast."""
        names = {self.model.lower(), self.asked.lower()} - {""}
        rows = [r for r in default_ledger().rows(since=since, session=session)
                if (generates(r.api) or r.api == "batch-job") and {r.model.lower(), r.asked.lower()} & names]
        return ForecastCheck(self, prompt_tokens=sum(r.prompt_tokens for r in rows),
                             completion_tokens=sum(r.completion_tokens for r in rows), seconds=seconds,
                             calls=len(rows), replayed=sum(r.cache_hit for r in rows))

    def rows(self) -> list[tuple[str, str, str]]:
        out = self.output_expected
        if out is None:
            output = f"up to {self.output_high:,}"
        else:
            output = f"~{out:,} ({self.output_low:,}–{self.output_high:,})"
        if self.yuan_expected is None:
            price = "no list price"
        elif self.platform == "local":
            price = "¥0"
        else:
            price = f"~¥{self.yuan_expected:.4f} (up to ¥{self.yuan_high or 0.0:.4f})"
        if self.eta_s is None:
            eta = "no record"
        else:
            eta = f"~{duration(self.eta_s)} ({duration(self.eta_low_s or 0.0)}–{duration(self.eta_high_s or 0.0)})"
        return [("input tokens", f"{self.input_tokens:,}", self.input_source),
                ("output tokens", output, self.output_source),
                ("price", price, self.price_source),
                ("ETA", eta, self.speed_source),
                ("upper bound", f"{self.total_high:,} tokens", "what a budget is checked against")]

    @property
    def title(self) -> str:
        return f"Forecast: {self.calls:,} call{'s' * (self.calls != 1)} to {self.model} ({self.platform})"

    def __repr__(self) -> str:
        return "\n".join([self.title, *(f"  {a:<14}{b:<28} {c}" for a, b, c in self.rows())])

    def _repr_html_(self) -> str:
        cells = "".join(f"<tr><th style='text-align:left'>{escape(a)}</th><td>{escape(b)}</td>"
                        f"<td style='opacity:.75'>{escape(c)}</td></tr>" for a, b, c in self.rows())
        return (f"<table class='qfnb-forecast'><caption style='text-align:left'><b>{escape(self.title)}</b>"
                f"</caption>{cells}</table>")


def check_budget(forecasts: Sequence[Forecast], what: str = "this run") -> None:
    """Raise :class:`~qfnb.usage.BudgetExceeded`, with the figures, when the forecasts' upper bounds
    together exceed what the active budget has left (spent and held by calls in flight counted)."""
    held = active_budget()
    if held is None or not forecasts:
        return
    high = sum(f.total_high for f in forecasts)
    calls = sum(f.calls for f in forecasts)
    models = ", ".join(dict.fromkeys(f.model for f in forecasts))
    if held.tokens is not None:
        left = held.tokens - held.spent_tokens - held.reserved_tokens
        if high > left:
            inputs, outputs = sum(f.input_tokens for f in forecasts), sum(f.output_high for f in forecasts)
            raise BudgetExceeded(
                f"forecast: {what} may use up to {high:,} tokens ({inputs:,} input + up to {outputs:,} output over "
                f"{calls:,} calls to {models}) and the token budget has {max(left, 0):,} of {held.tokens:,} left; "
                "nothing was sent (qfnb.usage.budget(tokens=...) raises it, --limit runs fewer items)")
    priced = [f.yuan_high for f in forecasts if f.yuan_high is not None]
    if held.yuan is not None and priced:
        left_yuan = held.yuan - held.spent_yuan - held.reserved_yuan
        if sum(priced) > left_yuan:
            raise BudgetExceeded(
                f"forecast: {what} may cost up to ¥{sum(priced):.4f} ({high:,} tokens on {models}) and the budget "
                f"has ¥{max(left_yuan, 0.0):.4f} of ¥{held.yuan:.4f} left; nothing was sent")


def duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _conversation(prompt: Any, system: str | None) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        turns = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, Sequence) and prompt and all(isinstance(m, Mapping) for m in prompt):
        turns = [{"role": str(m.get("role")), "content": str(m.get("content") or "")} for m in prompt]
    else:
        raise ValidationError("prompts", "each prompt must be a string or a list of {role, content} turns, "
                              f"got {type(prompt).__name__}")
    if system and not any(t["role"] == "system" for t in turns):
        turns.insert(0, {"role": "system", "content": system})
    return turns


async def count_conversations(conversations: list[list[dict[str, str]]], model: str,
                              config: Config) -> tuple[list[int], str, str]:
    """Each conversation's prompt tokens, the model that counted them and how they were counted."""
    cloud_ernie = not config.embedded and model.lower().startswith("ernie")
    if not (config.embedded or cloud_ernie):  # no tokenizer of this model to ask
        estimate = [sum(Tokenizer.count_tokens(t["content"]) for t in c) for c in conversations]
        return estimate, model, f"estimated (the platform has no tokenizer for {model})"
    distinct = {repr(c): c for c in conversations}
    gate = asyncio.Semaphore(_COUNTING)
    named: list[str] = []

    async def one(turns: list[dict[str, str]]) -> int:
        async with gate:
            count, served = await Tokenizer.acount_chat_tokens(turns, model, config=config)
            named.append(served)
            return count

    counts = dict(zip(distinct, await asyncio.gather(*(one(c) for c in distinct.values())), strict=True))
    served = named[0] if named else model
    how = (f"counted by {served}'s tokenizer, its chat template included" if config.embedded
           else f"counted by the platform's tokenizer for {model} (the turns' text)")
    return [counts[repr(c)] for c in conversations], served, how


def _of_model(row: UsageRow, names: set[str], platform: str) -> bool:
    return (row.platform == platform and not row.cache_hit and row.completion_tokens > 0
            and (row.model.lower() in names or row.asked.lower() in names))


def _output_samples(rows: list[UsageRow], median_prompt: float, pilot: Sequence[int] | None,
                    cap: int) -> tuple[list[int], str]:
    """The per-call output tokens to learn from and where they came from."""
    if pilot is not None:
        found = [min(int(v), cap) for v in pilot]
        return found, f"from the pilot's {len(found):,} answers"
    calls = [r for r in rows if generates(r.api)]
    similar = [r for r in calls if median_prompt / _SIMILAR <= r.prompt_tokens <= median_prompt * _SIMILAR]
    if len(similar) >= MIN_SAMPLES:
        return ([min(r.completion_tokens, cap) for r in similar],
                f"from {len(similar):,} recorded answers of this model to prompts of similar length")
    if not calls:
        return [], "no recorded answers of this model"
    return ([min(r.completion_tokens, cap) for r in calls],
            f"from {len(calls):,} recorded answers of this model (prompts of other lengths)")


def _runs(rows: list[UsageRow], single: bool) -> list[tuple[int, int, float]]:
    """Earlier runs as (input tokens, output tokens, wall seconds), newest last: one per job (an
    evaluation, a batch) or, for a single call, the single calls outside jobs."""
    groups: dict[tuple[str, str], list[UsageRow]] = {}
    for r in rows:
        if r.latency_s <= 0:
            continue
        alone = r.job is None or r.api == "batch-job"
        if single != (r.job is None):
            continue
        groups.setdefault((r.session, f"{r.ts}" if alone else str(r.job)), []).append(r)
    runs = []
    for found in groups.values():
        wall = max(r.ts for r in found) - min(r.ts - r.latency_s for r in found)
        if wall > 0:
            runs.append((sum(r.prompt_tokens for r in found), sum(r.completion_tokens for r in found), wall,
                         max(r.ts for r in found)))
    runs.sort(key=lambda run: run[3])
    return [(a, b, c) for a, b, c, _ in runs[-_RUNS:]]


def _speed(runs: list[tuple[int, int, float]]) -> tuple[float, float] | None:
    """Seconds per input token and per output token: a least-squares fit of the runs' wall time when
    it gives positive rates, else one rate per output token (prefill folded in)."""
    if not runs or not sum(out for _, out, _ in runs):
        return None
    if len(runs) >= 3:
        import numpy as np  # deferred: loads numpy (`import qfnb` does not)

        a = np.array([[i, o] for i, o, _ in runs], dtype=float)
        w = np.array([s for _, _, s in runs], dtype=float)
        fit, *_ = np.linalg.lstsq(a, w, rcond=None)
        if fit[0] > 0 and fit[1] > 0:
            return float(fit[0]), float(fit[1])
    return 0.0, sum(s for _, _, s in runs) / sum(out for _, out, _ in runs)


async def aforecast(prompts: Iterable[Any], *, model: str | None = None, max_tokens: int | None = None,
                    system: str | None = None, n: int = 1, pilot: Sequence[int] | None = None,
                    batch: bool = False, config: Config | None = None) -> Forecast:
    """See :func:`forecast`."""
    cfg = resolve_config(config)
    conversations = [_conversation(p, system) for p in prompts]
    if not conversations:
        raise ValidationError("prompts", "nothing to forecast: no prompts")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValidationError("n", f"must be an integer >= 1, got {n!r}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise ValidationError("max_tokens", f"must be an integer >= 1, got {max_tokens!r}")
    name = model or default_model("chat", config=cfg)
    if not name:
        raise ValidationError("model", "name the model to forecast (the platform has no default chat model)")
    platform = "local" if cfg.embedded else "cloud"
    counts, served, input_source = await count_conversations(conversations, name, cfg)
    input_tokens = sum(counts)  # n answers to one prompt read it once
    calls = len(conversations) * n
    cap = max_tokens or DEFAULT_OUTPUT_TOKENS

    rows = [r for r in await asyncio.to_thread(default_ledger().rows)
            if _of_model(r, {name.lower(), served.lower()}, platform)]
    samples, output_source = _output_samples(rows, statistics.median(counts), pilot, cap)
    if len(samples) >= MIN_SAMPLES:
        mean, sd = statistics.fmean(samples), statistics.stdev(samples)
        spread = _Z90 * math.sqrt(calls * sd ** 2 + calls ** 2 * sd ** 2 / len(samples))
        expected: int | None = round(calls * mean)
        low, high = max(0, round(calls * mean - spread)), min(calls * cap, math.ceil(calls * mean + spread))
    else:
        expected, low, high = None, 0, calls * cap
        output_source = (f"{output_source}: too few to learn from, so every answer at its cap ({cap:,}); "
                         "a pilot (pilot=[...] or %qfeval --limit) narrows it")

    table = prices()
    yuan: float | None
    yuan_high: float | None
    if platform == "local":
        yuan, yuan_high, price_source = 0.0, 0.0, "local model"
    else:
        yuan = table.cost(name, input_tokens, expected or 0, batch=batch) if expected is not None else None
        yuan_high = table.cost(name, input_tokens, high, batch=batch)
        price_source = (table.batch_source(name) if batch else f"list price of {table.date}"
                        if yuan_high is not None else f"{name} is not in the price table of {table.date}")

    single = calls == 1
    runs = _runs(rows, single=single)
    if not runs:  # only the other kind is on record: single calls for a run, or runs for a call
        single = not single
        runs = _runs(rows, single=single)
    rates = _speed(runs)
    if rates is None:
        eta = eta_low = eta_high = None
        speed_source = f"no recorded run of {served} on this machine yet"
    else:
        per_in, per_out = rates

        def seconds(out: int) -> float:
            return input_tokens * per_in + out * per_out

        eta = seconds(expected) if expected is not None else None
        eta_low, eta_high = seconds(low), seconds(high)
        kind = "single calls" if single else "runs"
        speed_source = (f"this machine's {len(runs)} recorded {kind} of {served}: "
                        f"{1 / per_out:,.1f} output tokens/s" + (f", {1 / per_in:,.0f} input tokens/s" if per_in else
                                                                  " (prompt reading included)"))
    assumptions = ("the recorded answers stand for this run's (similar prompts, same sampling)",
                   "nothing is replayed from the cache: a replay costs nothing and takes no time",
                   "the machine is as busy as it was in the recorded runs")
    return Forecast(model=served, platform=platform, calls=calls, input_tokens=input_tokens,
                    input_source=input_source, output_expected=expected, output_low=low, output_high=high,
                    output_source=output_source, yuan_expected=yuan, yuan_high=yuan_high, price_source=price_source,
                    eta_s=eta, eta_low_s=eta_low, eta_high_s=eta_high, speed_source=speed_source,
                    assumptions=assumptions, asked=name if name.lower() != served.lower() else "")


def forecast(prompts: Iterable[Any], *, model: str | None = None, max_tokens: int | None = None,
             system: str | None = None, n: int = 1, pilot: Sequence[int] | None = None,
             batch: bool = False, config: Config | None = None) -> Forecast:
    """What running ``prompts`` (strings, or lists of ``{role, content}`` turns) on ``model`` will
    take: input tokens counted by the model's tokenizer, expected output tokens with a 90% range,
    ¥ at list price, and ETA from this machine's recorded speed. Nothing is generated.

    ``max_tokens`` caps each answer, ``n`` answers per prompt, ``pilot`` the output tokens of a
    pilot's answers (instead of the ledger's), ``batch`` prices a durable batch job (the table's batch
    price class where it has one). ``forecast(...).check_budget()`` refuses the run when its upper
    bound exceeds what the active budget has left."""
    return sync.run(aforecast(prompts, model=model, max_tokens=max_tokens, system=system, n=n, pilot=pilot,
                              batch=batch, config=config))

