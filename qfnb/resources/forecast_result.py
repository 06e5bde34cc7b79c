"""A forecast's figures (:class:`Forecast`), the budget check made on them before a run's first call
(:func:`check_budget`), and a finished run read from the usage ledger against them
(:class:`ForecastCheck`), each as text and HTML. :mod:`qfnb.resources.forecasting` makes forecasts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from qfnb._core.http.recording.recorded import generates
from qfnb._core.record.budget import BudgetExceeded, active_budget
from qfnb._core.record.ledger import SESSION, default_ledger, in_part
from qfnb._core.record.prices import worst_yuan
from qfnb.resources.safe_html import escape

__all__ = ["Forecast", "ForecastCheck", "check_budget", "duration", "forecast_html", "forecast_text"]


@dataclass(frozen=True)
class ForecastCheck:
    """A finished run against its forecast: tokens and seconds, forecast and actual."""

    forecast: Forecast
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    calls: int
    replayed: int = 0
    #: the ledger rows of batch jobs among ``calls`` (one a job, whatever its rows)
    batch_jobs: int = 0

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
        tag, f = self.forecast.tag, self.forecast
        of = f" of {tag}" if tag and tag.lower() not in {f.model.lower(), f.asked.lower()} else ""
        head = (f"Forecast vs actual{of} ({self.what}"
                + (f", {self.replayed:,} replayed from the cache" if self.replayed else "") + ")")
        return "\n".join([head, *(f"  {a:<14}{b:>28}  →  {c}" for a, b, c in self.rows())])

    @property
    def what(self) -> str:
        """What ran, in the forecast's own unit: ``200 rows`` of a batch job (its ledger row is one for
        the whole job), ``12 calls`` of a live run."""
        if self.batch_jobs:
            rows = self.forecast.calls
            jobs = f"{self.batch_jobs:,} batch job{'s' * (self.batch_jobs != 1)}"
            return f"{rows:,} row{'s' * (rows != 1)} in {jobs}"
        return f"{self.calls:,} call{'s' * (self.calls != 1)}"

    def _repr_html_(self) -> str:
        cells = "".join(f"<tr><th style='text-align:left'>{escape(a)}</th>"
                        f"<td style='white-space:nowrap'>{escape(b)}</td>"
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
    #: an estimated input count's upper bound (None: counted by the model's tokenizer)
    input_high: int | None = None
    #: answers already known (stored, or in the response cache): no call, no token, no time
    known: int = 0
    known_source: str = ""
    #: the run's name for these calls (an evaluation's model or prompt variant): ``against`` reads its calls only
    tag: str = ""
    #: what a budget says of the run ("" where none is set or it fits)
    verdict: str = ""
    #: the ledger's job names of the run's calls where they are known (its batch task's): ``against`` reads those
    jobs: tuple[str, ...] = ()

    @property
    def total_expected(self) -> int | None:
        return None if self.output_expected is None else self.input_tokens + self.output_expected

    @property
    def total_high(self) -> int:
        """The forecast's upper bound on tokens (what a budget is checked against)."""
        return (self.input_high if self.input_high is not None else self.input_tokens) + self.output_high

    def check_budget(self, what: str = "this run") -> None:
        """Raise :class:`~qfnb.usage.BudgetExceeded`, with the figures, when the forecast's upper bound
        exceeds what the active budget has left (:func:`check_budget`)."""
        check_budget([self], what)

    def against(self, *, since: float, seconds: float, session: str = SESSION) -> ForecastCheck:
        """The run that began at ``since`` (``time.time()``) and took ``seconds``, read from the
        ledger (this session's generating calls to this model since then), against this forecast."""
        names = {self.model.lower(), self.asked.lower()} - {""}
        rows = [r for r in default_ledger().rows(since=since, session=session)
                if (generates(r.api) or r.api == "batch-job") and {r.model.lower(), r.asked.lower()} & names
                and (r.job in self.jobs if self.jobs else not self.tag or in_part(r.job, self.tag))]
        return ForecastCheck(self, prompt_tokens=sum(r.prompt_tokens for r in rows),
                             completion_tokens=sum(r.completion_tokens for r in rows), seconds=seconds,
                             calls=len(rows), replayed=sum(r.cache_hit for r in rows),
                             batch_jobs=sum(r.api == "batch-job" for r in rows))

    def rows(self) -> list[tuple[str, str, str]]:
        out = self.output_expected
        if out is None:
            output = f"up to {self.output_high:,}"
        else:
            output = f"~{out:,} ({self.output_low:,}–{self.output_high:,})"
        if self.platform == "local":
            price = "¥0"
        elif self.yuan_high is None:
            price = "no list price"
        elif self.yuan_expected is None:  # no expectation yet: the bound a budget holds, at the same price
            price = f"up to ¥{self.yuan_high:.4f}"
        else:
            price = f"~¥{self.yuan_expected:.4f} (up to ¥{self.yuan_high:.4f})"
        if self.eta_s is None:  # no expectation: with a speed on record, the range's upper end
            eta = f"up to {duration(self.eta_high_s)}" if self.eta_high_s is not None else "no record"
        else:
            eta = f"~{duration(self.eta_s)} ({duration(self.eta_low_s or 0.0)}–{duration(self.eta_high_s or 0.0)})"
        inputs = (f"~{self.input_tokens:,} (up to {self.input_high:,})" if self.input_high is not None
                  else f"{self.input_tokens:,}")
        known = [("known answers", f"{self.known:,}", self.known_source)] if self.known else []
        verdict = [("budget", "refuses this run", self.verdict)] if self.verdict else []
        return [*known, ("input tokens", inputs, self.input_source),
                ("output tokens", output, self.output_source),
                ("price", price, self.price_source),
                ("ETA", eta, self.speed_source),
                ("upper bound", f"{self.total_high:,} tokens", "what a budget is checked against"), *verdict]

    @property
    def title(self) -> str:
        tag = f" as {self.tag}" if self.tag and self.tag != self.model else ""
        head = f"Forecast: {self.calls:,} call{'s' * (self.calls != 1)} to {self.model}{tag} ({self.platform})"
        return head + (f" · {self.known:,} of {self.calls + self.known:,} answers known: 0 calls" if self.known else "")

    def __repr__(self) -> str:
        return forecast_text(self.title, self.rows(), (14, 28))

    def _repr_html_(self) -> str:
        return forecast_html(self.title, self.rows())


def forecast_text(title: str, rows: Sequence[tuple[str, str, str]], widths: tuple[int, int]) -> str:
    """A forecast's table as plain text: the title, then a line a figure, its first two columns
    padded to ``widths``."""
    first, second = widths
    return "\n".join([title, *(f"  {a:<{first}}{b:<{second}} {c}" for a, b, c in rows)])


def forecast_html(title: str, rows: Sequence[tuple[str, str, str]]) -> str:
    """A forecast's table (figure, value, where it came from), every text escaped."""
    cells = "".join(f"<tr><th style='text-align:left'>{escape(a)}</th>"
                    f"<td style='white-space:nowrap'>{escape(b)}</td>"
                    f"<td style='opacity:.75'>{escape(c)}</td></tr>" for a, b, c in rows)
    return (f"<table class='qfnb-forecast'><caption style='text-align:left'><b>{escape(title)}</b>"
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
            inputs = sum(f.total_high - f.output_high for f in forecasts)
            outputs = sum(f.output_high for f in forecasts)
            raise BudgetExceeded(
                f"forecast: {what} may use up to {high:,} tokens ({inputs:,} input + up to {outputs:,} output over "
                f"{calls:,} calls to {models}) and the token budget has {max(left, 0):,} of {held.tokens:,} left; "
                "nothing was sent (qfnb.usage.budget(tokens=...) raises it, --limit runs fewer items)")
    for f in forecasts:  # a cloud model with no price: refused under a ¥ budget, naming it (UnpricedModel)
        if f.yuan_high is None and f.platform != "local":
            worst_yuan(f.model, f.total_high - f.output_high, f.output_high, local=False)
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
