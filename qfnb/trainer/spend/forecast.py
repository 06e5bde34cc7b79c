"""``%qftrain --forecast``: what a fine-tune will take, said before it starts.

* **Training tokens**: each row of the training file (``{prompt, response}``, or a list of turns)
  counted by the base model's own tokenizer as the platform renders it (:func:`count_conversations`),
  each capped at ``max_seq_len``, times the rows trained on: every epoch's rows less the held-out
  split (drawn at random, so taken off at the mean row length), or ``max_steps`` batches.
* **Steps**: ``epochs x ceil(trained rows / batch size)`` (more passes where ``min_steps`` asks for more
  steps: PostPretrain's default), or ``max_steps``.
* **RFT** (``train_mode="RFT"``): each step samples ``group_size`` answers of at most ``max_new_tokens`` to
  each of its prompts and trains on them: the tokens are the prompts' (counted as above) plus the sampled
  ones, ``group_size x (prompt + max_new_tokens)`` a prompt trained on (an upper bound: answers may end
  sooner), the sampled tokens shown apart.
* **Time**: this machine's recorded fine-tunes of the base (their ``fine-tune`` ledger rows: tokens
  trained and wall seconds), fitted as fixed seconds plus seconds per token; "no recorded runs" without.
* **Price**: the price table's fine-tune price of the base on the cloud, where it has one (it says
  when it has none); a local fine-tune costs ¥0.

:meth:`TrainForecast.check_budget` refuses the run when its tokens or price exceed what the active
budget has left; :meth:`TrainForecast.versus` puts a finished run beside the forecast.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfnb._core.config import Config, resolve_config
from qfnb._core.errors import ValidationError
from qfnb._core.record.budget import active_budget
from qfnb._core.record.ledger import UsageRow, default_ledger
from qfnb._core.record.prices import prices
from qfnb._core.runtime import sync
from qfnb.protocol.console import train_formats
from qfnb.protocol.console.train_modes import MODE_TABLE, mode_row
from qfnb.protocol.console.training import run_epochs
from qfnb.resources.forecast_result import duration, forecast_html, forecast_text
from qfnb.resources.forecasting import count_conversations, estimate_conversations

from ..settings.train_config import TrainConfig

__all__ = ["TrainForecast", "aforecast_training", "forecast_training"]

#: the most recent recorded fine-tunes the speed is measured on
_RUNS = 10
#: seconds per trained token of each train mode against SFT's (its row's ``cost``), estimated from the passes a
#: step runs (not measured: bench/train_modes.py's per-step times were noise-dominated on the shared 2-core machine)
MODE_COST: dict[str, float] = {m.name: m.cost for m in MODE_TABLE.values()}


def _turns(obj: Any, where: str) -> list[dict[str, str]]:
    """A training row as chat turns, its answer last (the platform's SFT format: ``response`` nested as ``[["…"]]``)."""
    rows = obj if isinstance(obj, list) else [obj]
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise ValidationError("dataset", f"{where}: expected an object {{prompt, response}} or a list of them")
    turns: list[dict[str, str]] = []
    system = rows[0].get("system")
    if isinstance(system, str) and system:
        turns.append({"role": "system", "content": system})
    for row in rows:
        answer = row.get("response")
        while isinstance(answer, list) and answer:
            answer = answer[0]
        if not isinstance(row.get("prompt"), str) or not isinstance(answer, str):
            raise ValidationError("dataset", f"{where}: a row needs a prompt and a response")
        turns += [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": answer}]
    return turns


def read_rows(path: Path, train_mode: str = "SFT") -> list[list[list[dict[str, str]]]]:
    """The training file's rows, each as the conversations a step processes for it (``.jsonl``, or
    ``.json`` holding a list; a ``.txt`` file for PostPretrain): SFT's conversation; DPO's prompt with
    the chosen and with the rejected answer; KTO's prompt with its answer; a PostPretrain text; an RFT
    prompt."""
    if mode_row(train_mode).records:
        try:
            records = train_formats.parse_file(train_mode, path, path.name)
        except train_formats.FormatError as exc:
            raise ValidationError("dataset", str(exc)) from None
        return [_sequences(r) for r in records]
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValidationError("dataset", f"{path.name}: expected a list of rows")
        return [[_turns(item, f"{path.name} row {i + 1}")] for i, item in enumerate(items)]
    return [[_turns(json.loads(line), f"{path.name} line {i + 1}")] for i, line in enumerate(text.splitlines())
            if line.strip()]


def _sequences(record: train_formats.Record) -> list[list[dict[str, str]]]:
    """The conversations one record of another train mode makes the model process."""
    if isinstance(record, train_formats.Pair):
        return [[*record.messages, {"role": "assistant", "content": answer}]
                for answer in (record.chosen, record.rejected)]
    if isinstance(record, train_formats.Judged):
        return [[*record.messages, {"role": "assistant", "content": record.answer}]]
    if isinstance(record, train_formats.Text):
        return [[{"role": "user", "content": record.text}]]
    return [list(record.messages)]


@dataclass(frozen=True)
class TrainForecast:
    """What a fine-tune of ``base`` on ``rows`` rows will take (see the module's docstring)."""

    base: str
    platform: str
    rows: int
    trained_rows: int
    steps: int
    tokens: int
    token_source: str
    seconds: float | None
    speed_source: str
    yuan: float | None
    price_source: str
    since: float = 0.0
    #: the train mode (qfnb.protocol.console.train_formats.MODES)
    mode: str = "SFT"
    #: what a budget says of the run ("" where none is set or it fits)
    verdict: str = ""
    #: a RFT run's: the most tokens it samples (answers x max new tokens x prompts trained on)
    sampled: int = 0

    def table(self) -> list[tuple[str, str, str]]:
        held = self.rows - self.trained_rows
        price = ("¥0" if self.platform == "local" else "no price" if self.yuan is None else f"~¥{self.yuan:.4f}")
        return [("training tokens", f"~{self.tokens:,}", self.token_source),
                *([("sampled tokens", f"≤{self.sampled:,}", "RFT's answers, included above")] if self.sampled else []),
                ("steps", f"{self.steps:,}", f"{self.trained_rows:,} rows trained on ({held:,} held out)"),
                ("time", f"~{duration(self.seconds)}" if self.seconds is not None else "no recorded runs",
                 self.speed_source),
                ("price", price, self.price_source),
                *([("budget", "refuses this run", self.verdict)] if self.verdict else [])]

    @property
    def title(self) -> str:
        what = "fine-tune" if mode_row(self.mode).default else f"{self.mode} fine-tune"
        return f"Forecast: {what} of {self.base} ({self.platform}) on {self.rows:,} rows"

    def __repr__(self) -> str:
        return forecast_text(self.title, self.table(), (16, 22))

    def _repr_html_(self) -> str:
        return forecast_html(self.title, self.table())

    def check_budget(self, what: str = "this fine-tune") -> None:
        """Raise :class:`~qfnb.usage.BudgetExceeded`, with the figures, when the forecast's tokens (or price)
        exceed what the active budget has left; nothing is held."""
        held = active_budget()
        if held is not None:
            held.release(held.reserve(self.tokens, self.yuan or 0.0,
                                      what=f"{what} (forecast: {self.tokens:,} training tokens on {self.base})"))

    def versus(self, *, task_id: str | None, steps: int | None, seconds: float) -> str:
        """The finished run beside the forecast: its trained tokens (the ledger's row of its task), steps, time."""
        rows = [r for r in default_ledger().rows(since=self.since)
                if r.api == "fine-tune" and (task_id is None or r.job == f"fine-tune {task_id}")]
        tokens = sum(r.trained_tokens for r in rows)

        def share(actual: float, forecast: float | None) -> str:
            return f" ({actual / forecast:.0%} of forecast)" if forecast else ""

        got = f"{tokens:,}{share(tokens, self.tokens)}" if tokens else "not reported"
        return (f"forecast vs actual: training tokens ~{self.tokens:,} → {got} · steps {self.steps:,} → "
                f"{steps if steps is not None else '?'} · time "
                f"{duration(self.seconds) if self.seconds is not None else 'no record'} → "
                f"{duration(seconds)}{share(seconds, self.seconds)}")


def _fine_tunes(base: str, platform: str) -> list[UsageRow]:
    return [r for r in default_ledger().rows() if r.api == "fine-tune" and r.platform == platform and
            r.model.lower() == base.lower() and not r.cache_hit and r.latency_s > 0 and r.trained_tokens > 0][-_RUNS:]


def _seconds(tokens: int, runs: Sequence[UsageRow]) -> tuple[float | None, str, str]:
    """Seconds for ``tokens`` from recorded runs: a fit of fixed seconds plus seconds per token (3 runs or
    more, when both are positive), else their mean rate."""
    if not runs:
        return None, "", ""
    per_token, fixed = sum(r.latency_s for r in runs) / sum(r.trained_tokens for r in runs), 0.0
    if len(runs) >= 3:
        import numpy as np  # deferred: loads numpy (`import qfnb` does not)

        a = np.array([[1.0, r.trained_tokens] for r in runs])
        fit, *_ = np.linalg.lstsq(a, np.array([r.latency_s for r in runs]), rcond=None)
        if fit[0] > 0 and fit[1] > 0:
            fixed, per_token = float(fit[0]), float(fit[1])
    how = f"{1 / per_token:,.0f} tokens/s" + (f" after {duration(fixed)} of start-up" if fixed else "")
    return fixed + tokens * per_token, how, f"{len(runs)} recorded fine-tune{'s' * (len(runs) != 1)}"


def _sampled(prompts: int, mean: float, how: str, group: int, new: int) -> tuple[int, int, str]:
    """A RFT run's sampled tokens (``group`` answers of at most ``new`` tokens a prompt), its training tokens (each
    answer trained with its prompt) and what they are."""
    return (prompts * group * new, round(prompts * group * (mean + new)),
            f"{prompts:,} prompts x {group} answers x ({mean:,.0f} prompt tokens, {how}, + at most {new} sampled)")


async def aforecast_training(dataset: str | Path, *, base: str, epochs: float | None = None,
                             batch_size: float | None = None, max_steps: float | None = None,
                             max_seq_len: float | None = None, eval_split: int | None = None,
                             config: Config | None = None, train_mode: str = "SFT", group_size: int | None = None,
                             max_new_tokens: int | None = None, min_steps: int | None = None) -> TrainForecast:
    """See :func:`forecast_training`."""
    path = Path(dataset).expanduser()
    if not path.is_file():
        raise ValidationError("dataset", f"--forecast counts the rows of a training file; {dataset} is not one "
                                         "(a platform dataset's rows are not read here)")
    cfg = resolve_config(config)
    row = mode_row(train_mode, "train_mode")
    mode = row.name
    rows = await asyncio.to_thread(read_rows, path, mode)
    if not rows:
        raise ValidationError("dataset", f"{path.name} has no rows")
    defaults = row.defaults(base)  # what the platform fills in for this mode on this base (its own row first)
    epochs = epochs or defaults["epoch"]
    batch = int(batch_size or defaults["batchSize"])
    cap = int(max_seq_len or defaults["maxSeqLen"])
    split = TrainConfig().trainset_rate if eval_split is None else eval_split
    conversations = [c for row in rows for c in row]
    try:
        flat, served, how = await count_conversations(conversations, base, cfg)
    except Exception as exc:  # the platform cannot tokenize for this base: an estimate, said so
        flat = estimate_conversations(conversations)
        served, how = base, f"estimated: the platform could not count with {base}'s tokenizer ({exc})"
    counts, at = [], 0
    for seqs in rows:  # a row's tokens: every sequence it makes the model process, each at most max_seq_len
        counts.append(sum(flat[at:at + len(seqs)]) if row.packed else sum(min(c, cap) for c in flat[at:at + len(seqs)]))
        at += len(seqs)
    if row.packed:  # the texts are packed into max_seq_len blocks: a block is a row
        held_texts = len(counts) * split // 100
        total = sum(counts) - (sum(counts) * held_texts // len(counts) if counts else 0)
        counts = [cap] * max(1, math.ceil(total / cap))
        split = 0
    n = len(counts)
    trained = n - n * split // 100
    mean = sum(counts) / n
    if min_steps is None:  # the platform's default for the mode (PostPretrain's small corpus: more passes)
        min_steps = int(defaults.get("minSteps", 0))
    steps, rows_trained = _schedule(trained, batch, epochs, max_steps, min_steps)
    tokens = round(rows_trained * mean)
    source = f"{rows_trained:,} rows x {mean:,.0f} tokens a row, {how}, each at most {cap:,}" + row.tokens
    sampled, tokens, source = (_sampled(rows_trained, mean, how, int(group_size or defaults["groupSize"]),
                                        int(max_new_tokens or defaults["maxNewTokens"])) if row.rewarded
                               else (0, tokens, source))
    platform = "local" if cfg.embedded else "cloud"
    runs = _fine_tunes(base, platform) or _fine_tunes(served, platform)
    seconds, rate, of = _seconds(tokens, runs)
    speed = f"{of} of {base} on this machine: {rate}" if runs else f"no recorded runs of {base} on this machine"
    if seconds is not None and not row.default:  # the recorded pace is an SFT token's; this mode's costs more
        seconds *= row.cost
        speed += f", x{row.cost:g} for a {mode} token (estimated from its passes)"
    table = prices()
    if platform == "local":
        yuan, price_source = 0.0, "local fine-tune"
    elif base.lower() in table.training:
        yuan = tokens * table.training[base.lower()] / table.per_tokens
        price_source = f"fine-tune price of {table.date}"
    else:
        yuan, price_source = None, f"the price table of {table.date} has no fine-tune price for {base}"
    return TrainForecast(base=base, platform=platform, rows=n, mode=mode, trained_rows=trained, steps=steps,
                         tokens=tokens, token_source=source, seconds=seconds, speed_source=speed, yuan=yuan,
                         price_source=price_source, since=time.time(), sampled=sampled)


def _schedule(trained: int, batch: int, epochs: float, max_steps: float | None, min_steps: int) -> tuple[int, int]:
    """``(steps, rows trained)`` of a run over ``trained`` rows: ``max_steps`` batches, else ``epochs`` passes
    (more where ``min_steps`` asks for more steps)."""
    per_epoch = math.ceil(trained / batch)
    if max_steps is not None:
        steps = int(max_steps)
        return steps, steps // per_epoch * trained + min(steps % per_epoch * batch, trained)
    epochs = run_epochs(epochs, per_epoch, min_steps)
    steps = math.ceil(epochs * per_epoch)
    return steps, min(steps * batch, math.ceil(epochs * trained))


def forecast_training(dataset: str | Path, *, base: str, epochs: float | None = None,
                      batch_size: float | None = None, max_steps: float | None = None,
                      max_seq_len: float | None = None, eval_split: int | None = None,
                      config: Config | None = None, train_mode: str = "SFT", group_size: int | None = None,
                      max_new_tokens: int | None = None, min_steps: int | None = None) -> TrainForecast:
    """What fine-tuning ``base`` on the training file ``dataset`` will take: training tokens counted by the
    base's tokenizer (a RFT run's sampled answers included), steps, time from this machine's recorded
    fine-tunes, and price where the table has one; ``train_mode`` reads the file in that mode's format and
    counts what its steps process. Nothing is trained; counting spends no budget."""
    return sync.run(aforecast_training(dataset, base=base, epochs=epochs, batch_size=batch_size, max_steps=max_steps,
                                       max_seq_len=max_seq_len, eval_split=eval_split, config=config,
                                       train_mode=train_mode, group_size=group_size, max_new_tokens=max_new_tokens,
                                       min_steps=min_steps))
