"""``qfnb.forecast(prompts, model=...)``: what a run will take, said before anything is sent.

* **Input tokens** are counted by the model's own tokenizer: the local platform renders each chat
  with the model's template and tokenizes it (what the answer's ``prompt_tokens`` will say); the
  cloud platform's v1 tokenizer counts ERNIE models' text. Elsewhere (a v2 account's models among
  them) they are estimated by a text rule, and it says so with the range it assumes.
* **Output tokens** come from a pilot's answers (``pilot=``) or this model's recorded answers in the
  usage ledger, preferring prompts of similar length, each capped at ``max_tokens``. The range is a
  90% prediction interval for the sum of the run's answers: the answers vary (``N σ²``) and the
  mean is itself estimated from ``k`` answers (``N² σ² / k``). With fewer than 3 answers to learn
  from, the upper bound is every answer at its cap.
* **Price** is the dated list price (:mod:`qfnb._core.record.prices`) for a cloud model, ¥0 locally;
  a batch job's is the table's batch price class, or the online price where it has none (it says which).
* **ETA** is this machine's recorded speed for the model: the wall time of its earlier runs
  (evaluations and batches, or single calls for a single call) against their tokens. Its range is
  the output's range times the spread of those runs around the fit (a 90 % prediction interval of
  actual ÷ fitted time; assumed 0.5×–2× with fewer than 3 runs), its upper end widened by the load
  now where the machine is busier than its cores; the forecast says which.
* **Known answers** cost nothing: an answer the response cache holds for the call as the client
  will make it (the same key), or one an evaluation's answer store holds (``stored=``), is 0 calls,
  0 tokens and 0 s, and the forecast says how many there are.

The figures come back as a :class:`~qfnb.resources.forecast_result.Forecast`: its ``check_budget``
refuses a run whose upper bound exceeds what the active budget has left, before its first call, and
its ``against`` compares a finished run with its forecast.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from qfnb._core.config import Config, resolve_config
from qfnb._core.errors import QfnbError, ValidationError
from qfnb._core.http.recording.recorded import generates
from qfnb._core.record.cache import mode_for
from qfnb._core.record.ledger import UsageRow, default_ledger
from qfnb._core.record.prices import price_label, prices
from qfnb._core.runtime import sync
from qfnb.protocol.limits import DEFAULT_OUTPUT_TOKENS
from qfnb.resources.defaults import default_model
from qfnb.resources.forecast_result import Forecast
from qfnb.resources.inference.tokenizer import Tokenizer

__all__ = ["ESTIMATE_HIGH", "ESTIMATE_LOW", "aforecast", "count_conversations", "estimate_note", "forecast"]

log = logging.getLogger("qfnb.forecast")

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


#: an estimate's range where no tokenizer of the model can be asked: the bound qfnb assumes for a
#: text rule (0.625 tokens a Chinese character, 1 an English word), not a measured one
ESTIMATE_LOW, ESTIMATE_HIGH = 0.5, 2.0


def estimate_note(model: str, why: str) -> str:
    """How an estimated count was made, with its range."""
    return (f"estimated by a text rule ({why}): 0.625 tokens a Chinese character, 1 an English word; "
            f"{model}'s own count may be {ESTIMATE_LOW:g}×–{ESTIMATE_HIGH:g}× that, and the upper bound "
            f"assumes {ESTIMATE_HIGH:g}×")


def estimate_conversations(conversations: list[list[dict[str, str]]]) -> list[int]:
    """Each conversation's tokens as the local estimate counts its turns' text (no call)."""
    return [sum(Tokenizer.estimate(t["content"]) for t in c) for c in conversations]


async def count_conversations(conversations: list[list[dict[str, str]]], model: str,
                              config: Config) -> tuple[list[int], str, str]:
    """Each conversation's prompt tokens, the model that counted them and how they were counted
    (an estimate's note says so, with its range: :data:`ESTIMATE_HIGH`)."""
    # the v1 tokenizer route counts ERNIE models' text; a v2 account (an API key) has no such route
    cloud_ernie = not config.embedded and config.api_version == 1 and model.lower().startswith("ernie")
    if not (config.embedded or cloud_ernie):  # no tokenizer of this model to ask
        estimate = estimate_conversations(conversations)
        why = ("the v2 API has no tokenizer route" if not config.embedded and config.api_version == 2
               else f"the platform has no tokenizer for {model}")
        return estimate, model, estimate_note(model, why)
    if not conversations:
        return [], model, "nothing to count"
    distinct = {repr(c): c for c in conversations}
    gate = asyncio.Semaphore(_COUNTING)
    named: list[str] = []

    async def one(turns: list[dict[str, str]]) -> int:
        async with gate:
            count, served = await Tokenizer.acount_chat_tokens(turns, model, config=config)
            named.append(served)
            return count

    try:
        counts = dict(zip(distinct, await asyncio.gather(*(one(c) for c in distinct.values())), strict=True))
    except QfnbError as exc:  # an external engine without /tokenize, a cloud model the tokenizer lacks, ...
        log.info("forecast: %s's tokens estimated: %s", model, exc)
        return estimate_conversations(conversations), model, estimate_note(
            model, f"the platform could not count them: {_reason(exc)}")
    served = named[0] if named else model
    how = (f"counted by {served}'s tokenizer, its chat template included" if config.embedded
           else f"counted by the platform's tokenizer for {model} (the turns' text)")
    return [counts[repr(c)] for c in conversations], served, how


def _reason(exc: BaseException) -> str:
    """An error's message without its wrapping (one short clause)."""
    text = str(getattr(exc, "message", "") or exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


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
        if r.latency_s > 0 and single == (r.job is None):
            alone = r.job is None or r.api == "batch-job"
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


#: Student's t at 95 % one-sided (a two-sided 90 % interval) by degrees of freedom; 1.645 past the table
_T90 = (6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812)
#: the time spread assumed where too few runs measured one (a stated assumption, not a measurement)
ASSUMED_SPREAD = (0.5, 2.0)


@dataclasses.dataclass(frozen=True)
class Spread:
    """How far this machine's runs fall from the speed fit: a 90 % prediction interval of the ratio
    actual ÷ fitted time (log-normal, from the fit's residuals), widened by the load now."""

    low: float
    high: float
    centre: float
    note: str


def spread_of(runs: list[tuple[int, int, float]], rates: tuple[float, float],
              load: tuple[float, int] | None = None) -> Spread:
    """The ratio spread of ``runs`` around ``rates`` (:func:`_speed`); ``load`` (the 1-minute load
    average, cores; default: this machine's now) widens the upper end when the machine is busier than
    its cores."""
    per_in, per_out = rates
    ratios = [wall / fit for i, o, wall in runs if (fit := i * per_in + o * per_out) > 0 and wall > 0]
    if len(ratios) >= 3:
        logs = [math.log(r) for r in ratios]
        mu, sd = statistics.fmean(logs), statistics.stdev(logs)
        t = _T90[len(logs) - 2] if len(logs) - 2 < len(_T90) else _Z90
        half = t * sd * math.sqrt(1 + 1 / len(logs))
        low, high, centre = math.exp(mu - half), math.exp(mu + half), math.exp(mu)
        note = (f"90 % of similar runs on this machine take {low:.2g}×–{high:.2g}× the fitted time "
                f"(the spread of its last {len(logs)} runs)")
    else:
        (low, high), centre = ASSUMED_SPREAD, 1.0
        note = (f"{len(ratios)} run{'s' * (len(ratios) != 1)} cannot measure the spread: "
                f"{low:g}×–{high:g}× the fitted time assumed")
    load_now, cores = load if load is not None else (os.getloadavg()[0], os.cpu_count() or 1)
    busy = load_now / max(cores, 1)
    note += f"; load {load_now:.1f} on {cores} cores now" + (f": the upper end ×{busy:.2g}" if busy > 1 else "")
    return Spread(low, high * max(busy, 1.0), centre, note)


def _call_fields(params: Mapping[str, Any] | None, max_tokens: int | None, system: str | None) -> dict[str, Any]:
    fields = {k: v for k, v in (params or {}).items() if v is not None}
    if max_tokens is not None:
        fields["max_output_tokens"] = max_tokens
    if system:
        fields["system"] = system
    return fields


async def _cached(prompts: Sequence[Any], asks: Sequence[tuple[int, int]], model: str, fields: Mapping[str, Any],
                  config: Config) -> set[tuple[int, int]]:
    """The ``(repeat, prompt)`` answers the response cache holds now: each call's key made as the
    client makes it (:meth:`~qfnb.resources.inference.base.BaseResource._replays`); nothing is sent."""
    from qfnb.resources.inference.chat import ChatCompletion  # deferred: loads the chat resource
    from qfnb.resources.inference.params import ChatCall  # deferred: with the chat resource

    names = {f.name for f in dataclasses.fields(ChatCall)} - {"extra", "messages", "model", "endpoint"}
    named = {k: v for k, v in fields.items() if k in names}
    extra = {k: v for k, v in fields.items() if k not in names}
    chat = ChatCompletion(model=model, config=config)
    gate = asyncio.Semaphore(_COUNTING)

    async def one(repeat: int, index: int) -> bool:
        prompt = prompts[index]
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
        async with gate:
            try:
                return await chat._replays(ChatCall(messages=messages, model=model, extra=extra, **named),
                                           repeat=repeat)
            except QfnbError as exc:  # the cache could not be asked: the call counts as made
                log.debug("forecast: no cache look-up for %s: %s", model, exc)
                return False

    found = await asyncio.gather(*(one(r, i) for r, i in asks))
    return {ask for ask, hit in zip(asks, found, strict=True) if hit}


def _known_note(calls: int, stored: int, cached: int) -> str:
    parts = ([f"{stored:,} stored"] if stored else []) + ([f"{cached:,} in the response cache"] if cached else [])
    return (f"{stored + cached:,} of {calls:,} answers known ({' and '.join(parts)}): 0 calls, 0 tokens, 0 s"
            if parts else "")


async def aforecast(prompts: Iterable[Any], *, model: str | None = None, max_tokens: int | None = None,
                    system: str | None = None, n: int = 1, pilot: Sequence[int] | None = None,
                    batch: bool = False, params: Mapping[str, Any] | None = None,
                    stored: Sequence[bool] | None = None, tag: str = "", config: Config | None = None) -> Forecast:
    """See :func:`forecast`."""
    cfg = resolve_config(config)
    given = list(prompts)
    conversations = [_conversation(p, system) for p in given]
    if not conversations:
        raise ValidationError("prompts", "nothing to forecast: no prompts")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValidationError("n", f"must be an integer >= 1, got {n!r}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise ValidationError("max_tokens", f"must be an integer >= 1, got {max_tokens!r}")
    if stored is not None and len(stored) != len(conversations) * n:
        raise ValidationError("stored", f"one flag an answer: {len(conversations) * n} expected, got {len(stored)}")
    name = model or default_model("chat", config=cfg)
    if not name:
        raise ValidationError("model", "name the model to forecast (the platform has no default chat model)")
    platform = "local" if cfg.embedded else "cloud"
    asks = [(r, i) for r in range(n) for i in range(len(conversations))]
    in_store = {ask for ask, held in zip(asks, stored or (), strict=False) if held}
    cached: set[tuple[int, int]] = set()
    if not batch and mode_for(cfg.cache) == "on":  # a batch job's rows do not replay from the response cache
        cached = await _cached(given, [a for a in asks if a not in in_store], name, _call_fields(params, max_tokens,
                                                                                               system), cfg)
    todo = [a for a in asks if a not in in_store and a not in cached]
    asked = sorted({i for _, i in todo})  # the prompts still asked (n answers to one prompt read it once)
    counted, served, input_source = await count_conversations([conversations[i] for i in asked], name, cfg)
    input_tokens = sum(counted)
    input_high = math.ceil(input_tokens * ESTIMATE_HIGH) if input_source.startswith("estimated") else None
    bound_in = input_high if input_high is not None else input_tokens
    calls = len(todo)
    cap = max_tokens or DEFAULT_OUTPUT_TOKENS

    rows = [r for r in await asyncio.to_thread(default_ledger().rows)
            if _of_model(r, {name.lower(), served.lower()}, platform)]
    samples, output_source = _output_samples(rows, statistics.median(counted or [0]), pilot, cap)
    if not calls:
        expected, low, high = 0, 0, 0
        output_source = "no answer to generate"
    elif len(samples) >= MIN_SAMPLES:
        mean, sd = statistics.fmean(samples), statistics.stdev(samples)
        spread = _Z90 * math.sqrt(calls * sd ** 2 + calls ** 2 * sd ** 2 / len(samples))
        expected = round(calls * mean)
        low, high = max(0, round(calls * mean - spread)), min(calls * cap, math.ceil(calls * mean + spread))
    else:
        expected, low, high = None, 0, calls * cap
        output_source = (f"{output_source}: too few to learn from, so every answer at its cap ({cap:,}); "
                         "a pilot (pilot=[...] or %qfeval --limit) narrows it")

    yuan, yuan_high, price_source = _price(name, platform, batch, (input_tokens, expected), (bound_in, high))

    eta, eta_low, eta_high, speed_source = _eta(rows, served, calls, input_tokens, expected, low, high)
    known = _known_note(len(asks), len(in_store), len(cached))
    assumptions = ("the recorded answers stand for this run's (similar prompts, same sampling)",
                   "an answer stored or in the response cache now is still there when the run asks",
                   "the machine is as busy as it is now")
    return Forecast(model=served, platform=platform, calls=calls, input_tokens=input_tokens,
                    input_source=input_source, input_high=input_high, output_expected=expected, output_low=low,
                    output_high=high,
                    output_source=output_source, yuan_expected=yuan, yuan_high=yuan_high, price_source=price_source,
                    eta_s=eta, eta_low_s=eta_low, eta_high_s=eta_high, speed_source=speed_source,
                    assumptions=assumptions, asked=name if name.lower() != served.lower() else "",
                    known=len(asks) - calls, known_source=known, tag=tag)


def _price(name: str, platform: str, batch: bool, expected: tuple[int, int | None],
           high: tuple[int, int]) -> tuple[float | None, float | None, str]:
    """The run's expected ¥ (None without an expected output), its upper bound (None: no price) and
    where they come from: the one price (:func:`~qfnb._core.record.prices.price_label`) the budget
    and the ledger use too, stated."""
    if platform == "local":
        return 0.0, 0.0, "local model"
    table = prices()
    prompt, output = expected
    yuan = table.cost(name, prompt, output, batch=batch) if output is not None else None
    yuan_high = table.cost(name, *high, batch=batch)
    if yuan_high is None:
        return yuan, None, f"{name} is not in the price table of {table.date}"
    source = table.batch_source(name) if batch else f"list price of {table.date}"
    return yuan, yuan_high, f"{source}: {price_label(name, platform, table)}"


def _eta(rows: list[UsageRow], served: str, calls: int, input_tokens: int, expected: int | None, low: int,
         high: int) -> tuple[float | None, float | None, float | None, str]:
    """The ETA, its range and where it came from: the speed fit of this machine's recorded runs, its
    range the output's range times the runs' measured spread (:func:`spread_of`)."""
    if not calls:
        return 0.0, 0.0, 0.0, "no call to make"
    single = calls == 1
    runs = _runs(rows, single=single)
    if not runs:  # only the other kind is on record: single calls for a run, or runs for a call
        single = not single
        runs = _runs(rows, single=single)
    rates = _speed(runs)
    if rates is None:
        return None, None, None, f"no recorded run of {served} on this machine yet"
    per_in, per_out = rates
    spread = spread_of(runs, rates)

    def seconds(out: int) -> float:
        return input_tokens * per_in + out * per_out

    eta = seconds(expected) * spread.centre if expected is not None else None
    kind = ("single call" if single else "run") + ("s" if len(runs) != 1 else "")
    speed = (f"{1 / per_out:,.1f} output tokens/s" + (f", {1 / per_in:,.0f} input tokens/s" if per_in else
                                                     " (prompt reading included)"))
    return (eta, seconds(low) * spread.low, seconds(high) * spread.high,
            f"{spread.note}; speed from this machine's {len(runs)} recorded {kind} of {served}: {speed}")


def forecast(prompts: Iterable[Any], *, model: str | None = None, max_tokens: int | None = None,
             system: str | None = None, n: int = 1, pilot: Sequence[int] | None = None,
             batch: bool = False, params: Mapping[str, Any] | None = None,
             stored: Sequence[bool] | None = None, tag: str = "", config: Config | None = None) -> Forecast:
    """What running ``prompts`` (strings, or lists of ``{role, content}`` turns) on ``model`` will
    take: input tokens counted by the model's tokenizer, expected output tokens with a 90% range,
    ¥ at list price, and ETA from this machine's recorded speed. Nothing is generated.

    ``max_tokens`` caps each answer, ``n`` answers per prompt, ``pilot`` the output tokens of a
    pilot's answers (instead of the ledger's), ``batch`` prices a durable batch job (the table's batch
    price class where it has one). Answers already known cost nothing: those the response cache holds
    for the calls as they will be made (``params``: their other fields, ``temperature``...), and
    ``stored`` (one flag an answer, repeat by repeat: an evaluation's answer store). ``tag`` names the
    run's calls (an evaluation's model or prompt variant) for :meth:`Forecast.against`.
    ``forecast(...).check_budget()`` refuses the run when its upper bound exceeds what the active
    budget has left."""
    return sync.run(aforecast(prompts, model=model, max_tokens=max_tokens, system=system, n=n, pilot=pilot,
                              batch=batch, params=params, stored=stored, tag=tag, config=config))
