"""Stress tests (``Dataset.stress_test`` / ``multi_stress_test``): the dataset's prompts sent by
``users`` concurrent streams through qfnb's own async client, timed per request.

Why qfnb's client and not locust (the official SDK's load generator): what is measured is the
call a user makes (the same client, auth, retries and stream decoding), the first token is
timed where the stream's first chunk is decoded, and one event loop drives every user, so the
load generator takes a few percent of one core instead of locust's gevent worker processes
competing with the engine for the same cores (the local platform runs on the user's machine).
The response cache is bypassed (``refresh``): every request reaches the engine.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from qfnb._core.errors import QfnbError, ValidationError
from qfnb._core.record.cache import cache_mode
from qfnb.resources import ChatCompletion, Completion
from qfnb.resources.safe_html import clean, escape

from ._infer import prompts_of

if TYPE_CHECKING:  # pragma: no cover
    from ..view import DatasetView

__all__ = ["RequestSample", "RoundStats", "StressTestResult", "parse_runtime"]

logger = logging.getLogger("qfnb.dataset")

MODEL_TYPES = {"chatcompletion": "chat", "chat": "chat", "completion": "completion", "completions": "completion"}
_RUNTIME = re.compile(r"(\d+(?:\.\d+)?)([hms])")


def parse_runtime(runtime: str | float | int) -> float:
    """``"300s"``, ``"20m"``, ``"1h30m"`` (locust's format, the official argument) or seconds; 0: no limit."""
    if isinstance(runtime, int | float) and not isinstance(runtime, bool):
        if runtime < 0:
            raise ValidationError("runtime", f"must be >= 0, got {runtime}")
        return float(runtime)
    text = str(runtime).strip().lower()
    parts = _RUNTIME.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValidationError("runtime", f"must look like 300s, 20m, 3h or 1h30m, got {runtime!r}")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


@dataclass(frozen=True)
class RequestSample:
    """One request: when it started (s into the round), time to the first token, whole latency."""

    start: float
    ttft: float | None
    latency: float
    output_tokens: int
    error: str | None = None


def _pct(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank), NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass(frozen=True)
class RoundStats:
    """One round at ``users`` concurrent users."""

    users: int
    duration: float
    samples: tuple[RequestSample, ...] = field(repr=False)

    @property
    def ok(self) -> list[RequestSample]:
        return [s for s in self.samples if s.error is None]

    @property
    def errors(self) -> int:
        return len(self.samples) - len(self.ok)

    def summary(self) -> dict[str, float | int]:
        """The round's figures: requests, errors, QPS, OTPS, TTFT and latency (avg, p50, p90, p99).

        ``otps`` is the official SDK's OutputTokensPerSecond: the mean output tokens of a successful
        request over its mean latency, i.e. what one user's stream receives; ``total_otps`` is the
        round's output tokens over its wall time, what the engine serves to all users together."""
        ok, wall = self.ok, max(self.duration, 1e-9)
        ttft = [s.ttft for s in ok if s.ttft is not None]
        latency = [s.latency for s in ok]
        tokens = sum(s.output_tokens for s in ok)
        row: dict[str, float | int] = {
            "users": self.users, "requests": len(self.samples), "errors": self.errors,
            "success_rate": len(ok) / len(self.samples) if self.samples else math.nan,
            "duration_s": self.duration, "qps": len(ok) / wall,
            "otps": tokens / sum(latency) if sum(latency) > 0 else math.nan,
            "total_otps": tokens / wall, "output_tokens": tokens}
        for name, values in (("ttft", ttft), ("latency", latency)):
            row[f"{name}_avg"] = sum(values) / len(values) if values else math.nan
            for q in (50, 90, 99):
                row[f"{name}_p{q}"] = _pct(values, q)
        return row

    def to_pandas(self) -> pd.DataFrame:
        """A row per request (start, ttft, latency, output_tokens, error)."""
        return pd.DataFrame([vars(s) for s in self.samples],
                            columns=["start", "ttft", "latency", "output_tokens", "error"])


@dataclass
class StressTestResult:
    """The rounds of a stress test; ``to_pandas()`` is a row per round. In a notebook with
    ``%load_ext qfnb`` it shows as the table and a chart of latency and throughput by users."""

    target: str
    rounds: list[RoundStats] = field(default_factory=list)
    stopped: str | None = None  # why multi_stress_test stopped before its last round

    def to_pandas(self) -> pd.DataFrame:
        return pd.DataFrame([r.summary() for r in self.rounds])

    def __add__(self, other: StressTestResult) -> StressTestResult:
        return StressTestResult(self.target, [*self.rounds, *other.rounds], other.stopped or self.stopped)

    def _repr_html_(self) -> str:
        note = f"<p>stopped: {escape(self.stopped)}</p>" if self.stopped else ""
        table: str = self.to_pandas().round(3).to_html(index=False)
        return clean(f"<p>stress test of {escape(self.target)}</p>" + table + note)

    def __repr__(self) -> str:
        return f"StressTestResult({self.target}, {len(self.rounds)} rounds)\n{self.to_pandas().round(3)}"


def _check(users: int | None, workers: int, spawn_rate: float | None, model: str | None, endpoint: str | None,
           model_type: str) -> str:
    """The checked arguments' call kind (``chat``/``completion``); errors name the argument."""
    if users is None or isinstance(users, bool) or not isinstance(users, int) or users < 1:
        raise ValidationError("users", f"must be an integer >= 1, got {users!r}")
    if workers < 1:
        raise ValidationError("workers", f"must be >= 1, got {workers!r}")
    if spawn_rate is not None and spawn_rate <= 0:
        raise ValidationError("spawn_rate", f"must be > 0, got {spawn_rate!r}")
    if model is not None and endpoint is not None:
        raise ValidationError("endpoint", "give model= or endpoint=, not both")
    kind = MODEL_TYPES.get(model_type.lower())
    if kind is None:
        raise ValidationError("model_type", f"must be ChatCompletion or Completions, got {model_type!r}")
    return kind


async def _one(client: Any, kind: str, prompt: str, params: Mapping[str, Any], t0: float) -> RequestSample:
    start = time.perf_counter()
    first: float | None = None
    tokens = 0
    try:
        if kind == "chat":
            stream = await client.ado(messages=[{"role": "user", "content": prompt}], stream=True, **params)
        else:
            stream = await client.ado(prompt=prompt, stream=True, **params)
        async for chunk in stream:
            if first is None and chunk.get("result"):
                first = time.perf_counter() - start
            usage = chunk.get("usage") or {}
            tokens = int(usage.get("completion_tokens") or tokens)
    except QfnbError as exc:
        return RequestSample(start - t0, first, time.perf_counter() - start, 0, f"{type(exc).__name__}: {exc}")
    return RequestSample(start - t0, first, time.perf_counter() - start, tokens)


async def arun_round(prompts: Sequence[str], *, users: int, kind: str, client: Any, params: Mapping[str, Any],
                     spawn_rate: float | None = None, runtime: float = 0.0) -> RoundStats:
    """Send every prompt once, ``users`` at a time (each user starting ``1/spawn_rate`` s after the
    last), stopping early after ``runtime`` seconds (0: no limit)."""
    t0 = time.perf_counter()
    samples: list[RequestSample] = []
    queue = iter(prompts)

    async def user(k: int) -> None:
        if spawn_rate:
            await asyncio.sleep(k / spawn_rate)
        for prompt in queue:
            if runtime and time.perf_counter() - t0 >= runtime:
                return
            samples.append(await _one(client, kind, prompt, params, t0))

    with cache_mode("refresh"):
        await asyncio.gather(*(user(k) for k in range(users)))
    samples.sort(key=lambda s: s.start)
    return RoundStats(users, time.perf_counter() - t0, tuple(samples))


async def astress(ds: DatasetView, *, users_per_round: Sequence[int], model: str | None, endpoint: str | None,
                  model_type: str, hyperparameters: Mapping[str, Any] | None, spawn_rate: float | None,
                  runtime: str | float, workers: int = 1, prompt_column: str = "prompt",
                  first_latency_threshold: float | None = None, round_latency_threshold: float | None = None,
                  success_rate_threshold: float | None = None,
                  ignored: Mapping[str, Any] | None = None) -> StressTestResult:
    """Rounds at each number of users; stops early once a round passes a threshold (multi_stress_test's).
    ``ignored``: the official keywords qfnb has no use for (locust's), named in one warning."""
    for each in users_per_round or (None,):  # none at all is refused as users=None
        kind = _check(each, workers, spawn_rate, model, endpoint, model_type)
    seconds = parse_runtime(runtime)
    if ignored:
        logger.warning("the stress test ignores %s (locust's options; qfnb drives the users itself)",
                       ", ".join(sorted(ignored)))
    await ds.afetch()
    prompts = prompts_of(ds, prompt_column)
    client = (ChatCompletion if kind == "chat" else Completion)(model=model, endpoint=endpoint)
    result = StressTestResult(endpoint or model or "the default model")
    for users in users_per_round:
        stats = await arun_round(prompts, users=users, kind=kind, client=client, params=dict(hyperparameters or {}),
                                 spawn_rate=spawn_rate, runtime=seconds)
        result.rounds.append(stats)
        result.stopped = _threshold_passed(stats.summary(), first_latency_threshold, round_latency_threshold,
                                           success_rate_threshold)
        if result.stopped:
            break
    return result


def _threshold_passed(row: Mapping[str, float | int], first_latency: float | None, round_latency: float | None,
                      success_rate: float | None) -> str | None:
    if first_latency is not None and row["ttft_avg"] > first_latency:
        return f"at {row['users']} users the mean time to first token {row['ttft_avg']:.3f} s > {first_latency} s"
    if round_latency is not None and row["latency_avg"] > round_latency:
        return f"at {row['users']} users the mean latency {row['latency_avg']:.3f} s > {round_latency} s"
    if success_rate is not None and row["success_rate"] < success_rate:
        return f"at {row['users']} users the success rate {row['success_rate']:.3f} < {success_rate}"
    return None
