"""``%qfcache`` and ``%qfusage``: the response cache and the usage ledger in the notebook.

Loading the extension turns the cache on for this kernel's calls (``%qfcache off`` turns it off),
so Restart & Run All replays answers instead of asking again, and it tags every call with the
cell that made it. (A replayed answer's badge is :func:`qfnb.notebook.chat.answer.cached_badge`.)
"""

from __future__ import annotations

import base64
import logging
import re
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from qfnb import usage
from qfnb._core.record import ledger
from qfnb.notebook._ipython import HTML, display
from qfnb.notebook.arguments import without_comment
from qfnb.notebook.render import charts
from qfnb.notebook.render.theme import BORDER, TEXT, TEXT_MUTED
from qfnb.resources.safe_html import clean, escape

log = logging.getLogger("qfnb.notebook.ledger.usage")

_BUDGET = re.compile(r"^(?:¥|yuan:?)?\s*([0-9]+(?:\.[0-9]+)?)\s*(yuan|元|¥)?$|^([0-9_]+)\s*(?:tokens?|t)$", re.I)


def parse_budget(text: str) -> dict[str, Any]:
    """``¥5`` / ``5 yuan`` → ``{"yuan": 5.0}``; ``20000 tokens`` → ``{"tokens": 20000}``."""
    found = _BUDGET.match(text.strip())
    if found is None:
        raise UsageError(f"--budget takes an amount like ¥5, 5yuan or 20000tokens, got {text!r}")
    if found.group(3) is not None:
        return {"tokens": int(found.group(3).replace("_", ""))}
    return {"yuan": float(found.group(1))}


def _stats_html() -> str:
    s = usage.cache_stats()
    rows = [("mode", usage.cache()), ("answers stored", f"{s.entries:,}"),
            ("size", f"{s.bytes / 1e6:.1f} MB of {s.max_bytes / 1e6:.0f} MB"),
            ("replays", f"{s.hits:,}"), ("tokens saved", f"{s.saved_tokens:,}")]
    cells = "".join(f'<tr><td style="color:{TEXT_MUTED};padding:1px 10px 1px 0">{k}</td>'
                    f'<td style="color:{TEXT}">{escape(str(v))}</td></tr>' for k, v in rows)
    return f'<table class="qfnb-cache-stats" style="border-top:1px solid {BORDER}">{cells}</table>'


#: the token kinds the chart stacks: the summary's column, and its label
_KINDS = {"prompt_tokens": "prompt", "completion_tokens": "completion", "trained_tokens": "trained",
          "saved_tokens": "saved by the cache"}


def chart_html(table: Any, by: str) -> str:
    """The summary's tokens as stacked bars, one per row of ``table`` (an inline PNG)."""
    data = {str(group): {label: float(row[col]) if row[col] == row[col] else 0.0 for col, label in _KINDS.items()}
            for group, row in table.iterrows()}
    png = base64.b64encode(charts.usage_bars(data, title=f"tokens by {by}")).decode()
    return f'<img class="qfnb-usage-chart" alt="tokens by {escape(by)}" src="data:image/png;base64,{png}"/>'


#: latency sums each call's own time: concurrent calls overlap, so it is not the wall time
LATENCY_NOTE = "latency_s sums each call's latency (calls made at once overlap: more than the wall time)"
#: how the table is shown: seconds to 0.1, yuan to 0.0001 (a ledger sum read 15.756008)
ROUNDING = {"latency_s": 1, "cost_yuan": 4, "real_time_yuan": 4, "cloud_equivalent_yuan": 4}


def scope_line(everyone: bool) -> str:
    """What a ``%qfusage`` table covers, said above it (a restart starts a new session)."""
    if everyone:
        return f"every session in this data dir's ledger · cache hits count as saved, not spent · {LATENCY_NOTE}"
    return ("this kernel session · --all for everything (a restarted kernel starts a new session) · "
            f"cache hits count as saved, not spent · {LATENCY_NOTE}")


@magics_class
class UsageMagics(Magics):
    """``%qfcache`` and ``%qfusage``."""

    @line_magic
    def qfcache(self, line: str) -> Any:
        """``%qfcache [on|off|clear|stats]``: the response cache of this kernel.

        ``on`` (the default once ``%load_ext qfnb`` ran): identical requests answer from the
        cache, each with a "↺ cached" badge; ``off``: every call asks the model; ``clear``:
        forget every stored answer; ``stats`` (or nothing): what is stored and what it saved.
        A single cell asks again with ``--fresh`` (``%%qfchat --fresh``).
        """
        word = without_comment(line).strip().lower() or "stats"
        if word in ("on", "off"):
            usage.cache(word)
            print(f"qfnb response cache: {word}")
            return None
        if word == "clear":
            print(f"qfnb response cache: forgot {usage.clear_cache():,} answers")
            return None
        if word == "stats":
            display(HTML(clean(_stats_html())))
            return None
        raise UsageError(f"%qfcache takes on, off, clear or stats, got {line.strip()!r}")

    @line_magic
    def qfusage(self, line: str) -> Any:
        """``%qfusage [--by cell|model|session|job|day] [--all] [--budget ¥5|20000tokens|off]``.

        What this session's calls used (``--all``: every session in the ledger), grouped, with
        cost at the dated Qianfan list prices (local models: ¥0, beside what the same tokens
        would cost on the cloud) and the cache's savings; returns the DataFrame.
        """
        args = without_comment(line).split()
        by, everyone, limit = "model", False, None
        while args:
            word = args.pop(0)
            if word == "--by" and args:
                by = args.pop(0)
            elif word == "--all":
                everyone = True
            elif word == "--budget" and args:
                limit = " ".join(args)
                args = []
            else:
                raise UsageError(f"%qfusage: unknown option {word!r} (--by, --all, --budget)")
        if limit is not None:
            if limit.strip().lower() in ("off", "none"):
                usage.clear_budget()
                print("qfnb budget: off")
            else:
                print(str(usage.budget(**parse_budget(limit))))
            return None
        if by not in usage.GROUPS:
            raise UsageError(f"--by takes one of {', '.join(usage.GROUPS)}, got {by!r}")
        from qfnb.notebook.ledger.usage_view import UsageTable, headline  # deferred: loads pandas

        table = usage.summary(by=by, session=None if everyone else ledger.SESSION)
        table = UsageTable(table.round({k: v for k, v in ROUNDING.items() if k in table.columns}))
        if (b := usage.active_budget()) is not None:
            print(str(b))
        head = f'<div class="qfnb-usage-headline" style="font-weight:600">{escape(headline(table))}</div>'
        scope = f'<div class="qfnb-usage-scope" style="color:{TEXT_MUTED}">{escape(usage_line(table, everyone))}</div>'
        display(HTML(clean(head + scope + (chart_html(table, by) if not table.empty else ""))))
        return table


def usage_line(table: Any, everyone: bool) -> str:
    """The line above ``%qfusage``'s table: the session's calls, the scope, what batch prices saved."""
    line = scope_line(everyone)
    if not everyone and (found := usage.figures(0.0).line()):  # the session's calls, as a bar says them
        line = f"{found} · {line}"
    if (saving := batch_saving(table)) is not None:
        line = f"{line} · {saving}"
    return line


def batch_saving(table: Any) -> str | None:
    """What the batch price saved, when some rows were billed at it: ``¥cost instead of ¥real-time``."""
    if table.empty or "real_time_yuan" not in table.columns:
        return None
    cost, real_time = table["cost_yuan"].sum(min_count=1), table["real_time_yuan"].sum(min_count=1)
    if not (real_time > cost >= 0):  # NaN (unpriced) compares false too
        return None
    return (f"batch jobs at the batch price: ¥{cost:.4f} in all, instead of ¥{real_time:.4f} in real time "
            f"(saved ¥{real_time - cost:.4f})")


def visible_count(ipython: Any, info: Any) -> int | None:
    """The ``In[n]`` of the cell about to run, as the front end shows it.

    ``pre_run_cell`` is no place to read ``execution_count``: IPython 9 counts the cell before the
    event (the hook saw 9 in a cell shown as ``[8]``), IPython 8 after it. Both store a cell's input
    in the history under its number right after the event, so a stored cell's number is the
    history's length then; a cell run without history keeps the count it found.
    """
    history = getattr(getattr(ipython, "history_manager", None), "input_hist_raw", None)
    if getattr(info, "store_history", False) and isinstance(history, list):
        return len(history)
    count = getattr(ipython, "execution_count", None)
    return count if isinstance(count, int) else None


def register(ipython: Any) -> None:
    """Register the magics, tag calls with their cell and turn the cache on for this kernel."""
    ipython.register_magics(UsageMagics)

    def pre_run_cell(info: Any) -> None:
        ledger.set_cell(visible_count(ipython, info))

    ipython.events.register("pre_run_cell", pre_run_cell)
    usage.cache("on")
