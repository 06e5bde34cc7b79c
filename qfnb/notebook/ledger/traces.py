"""``%qftrace``: the local platform's calls as a waterfall (model, tokens, latency, time to first
token, prompt-cache hit), read from the data dir's trace table; no tracing server to install. The
tool calls an agent ran and the evaluation items are there too, and a call made inside one is
marked ``↳`` under it.

``%qftrace`` shows this kernel session's last 20 calls, ``%qftrace 50`` its last 50, ``%qftrace
--cell 7`` the calls cell 7 made, ``--all`` every session's (also scripts and other tools'),
``--slowest`` the slowest first (every batch row is a span: a Ray or cloud batch's rows too). The
view is HTML (theme colours, light and dark) and returns the :class:`TraceView` (its ``spans``).
"""

from __future__ import annotations

from dataclasses import dataclass

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from qfnb._core.record import ledger
from qfnb._core.record.traces import ROW_ATTRIBUTE, read_spans
from qfnb.notebook.arguments import TraceArgs, without_comment
from qfnb.notebook.render.theme import BORDER, CELL, NUM_CELL, TEXT, TEXT_MUTED
from qfnb.protocol.platform.traces import CallSpan
from qfnb.resources.safe_html import clean, escape

__all__ = ["TraceMagics", "TraceView", "parse_line"]

#: how many of the last spans ``--slowest`` looks through
SLOWEST_OF = 10_000
#: the bar of a call's time, and of its wait for the first token (theme colours)
BAR = "var(--jp-brand-color1, #1976d2)"
WAIT = "var(--jp-brand-color3, #bbdefb)"


def parse_line(line: str) -> TraceArgs:
    """``[N] [--cell N] [--all]`` as typed arguments; a UsageError naming what is wrong."""
    words, last, cell, everyone, slowest = without_comment(line).split(), 20, None, False, False
    while words:
        word = words.pop(0)
        if word == "--all":
            everyone = True
        elif word == "--slowest":
            slowest = True
        elif word == "--cell":
            if not words or not words[0].isdigit():
                raise UsageError("%qftrace --cell takes a cell's number (its execution count), e.g. --cell 7")
            cell = int(words.pop(0))
        elif word.isdigit() and int(word) > 0:
            last = int(word)
        else:
            raise UsageError(f"%qftrace: unknown option {word!r} (a count of calls, --cell N, --all, --slowest)")
    return TraceArgs(last=last, cell=cell, everyone=everyone, slowest=slowest)


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _label(s: CallSpan) -> str:
    """What a span was: a platform call's operation and route, a tool call, an evaluation item."""
    if not s.client_side:
        return f"{s.operation} {s.route}"
    found = s.attributes()
    if (row := found.get(ROW_ATTRIBUTE)) is not None:  # a row of a batch run on Ray or the cloud
        return f"{s.operation} {s.route} row {row}"
    if s.operation == "batch":
        return f"batch job on {s.route.removesuffix(' batch')} · {found.get('qfnb.batch.rows', 0)} rows"
    index = found.get("qfnb.eval.index")
    return f"{s.operation} item {index}" if index is not None else s.operation


def _cost(s: CallSpan) -> str:
    """A span's cost word: the cloud's batch rows are billed there (``%qfusage`` prices them), the
    rest ran on engines of this machine or cluster."""
    return "cloud (%qfusage)" if s.route == "cloud batch" else "¥0 (local)"


@dataclass(frozen=True)
class TraceView:
    """Spans as a waterfall table: each call's bar placed on one time axis, its first-token wait shaded."""

    spans: tuple[CallSpan, ...]
    scope: str = ""

    def _repr_html_(self) -> str:
        head = f'<div class="qfnb-trace-scope" style="color:{TEXT_MUTED}">{escape(self.scope)}</div>'
        if not self.spans:
            return clean(head + f'<div class="qfnb-trace-empty" style="color:{TEXT_MUTED}">no calls traced yet</div>')
        start = min(s.started for s in self.spans)
        width = max(s.started + s.duration_s for s in self.spans) - start or 1.0
        columns = ("call", "model · tool", "cell", "in", "out", "latency", "first token", "cache", "cost", "")
        header = "".join(f'<th style="{NUM_CELL if 3 <= i <= 8 else CELL}">{c}</th>' for i, c in enumerate(columns))
        shown = {s.span_id for s in self.spans}
        rows = "".join(self._row(s, start, width, nested=s.parent_id in shown) for s in self.spans)
        total_in, total_out = sum(s.input_tokens for s in self.spans), sum(s.output_tokens for s in self.spans)
        foot = (f'<div class="qfnb-trace-total" style="color:{TEXT_MUTED}">{len(self.spans):,} calls · '
                f'{total_in:,} tokens in · {total_out:,} out · over {_ms(width)}</div>')
        return clean(f'{head}<table class="qfnb-trace" style="border-collapse:collapse;color:{TEXT}">'
                     f"<thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>{foot}")

    @staticmethod
    def _row(s: CallSpan, start: float, width: float, *, nested: bool = False) -> str:
        left, span = 100 * (s.started - start) / width, max(0.5, 100 * s.duration_s / width)
        wait = 0.0 if s.ttft_s is None or not s.duration_s else min(100.0, 100 * s.ttft_s / s.duration_s)
        bar = (f'<div style="position:relative;width:240px;height:10px;border-left:1px solid {BORDER}">'
               f'<div title="{escape(_ms(s.duration_s))}" style="position:absolute;left:{left:.2f}%;'
               f'width:{span:.2f}%;height:10px;background:{BAR};border-radius:2px">'
               f'<div style="width:{wait:.1f}%;height:10px;background:{WAIT};border-radius:2px 0 0 2px"></div>'
               "</div></div>")
        cache = f"{s.cached_tokens:,} cached" if s.cached_tokens else ""
        failed = "" if s.status < 400 else f" · {s.status}"
        cells = [(CELL, ("↳ " if nested else "") + escape(_label(s) + failed)), (CELL, escape(s.model)),
                 (CELL, "" if s.cell is None else str(s.cell)), (NUM_CELL, f"{s.input_tokens:,}"),
                 (NUM_CELL, f"{s.output_tokens + s.trained_tokens:,}"), (NUM_CELL, _ms(s.duration_s)),
                 (NUM_CELL, _ms(s.ttft_s)), (NUM_CELL, cache), (NUM_CELL, _cost(s)), (CELL, bar)]
        return "<tr>" + "".join(f'<td style="{style}">{text}</td>' for style, text in cells) + "</tr>"


@magics_class
class TraceMagics(Magics):
    """``%qftrace``."""

    @line_magic
    def qftrace(self, line: str) -> TraceView:
        """``%qftrace [N] [--cell N] [--all] [--slowest]``: the local platform's last N calls of this kernel
        session (20), one cell's, or every session's (``--all``), as a waterfall."""
        args = parse_line(line)
        session = None if args.everyone else ledger.SESSION
        if args.slowest:  # every row of every batch is a span: the slowest ones, whatever else ran since
            spans = sorted(read_spans(last=SLOWEST_OF, session=session, cell=args.cell), key=lambda s: -s.duration_s)
            spans = spans[:args.last]
        else:
            spans = read_spans(last=args.last, session=session, cell=args.cell)
        scope = ("every session" if args.everyone else "this kernel session") + (
            f" · cell {args.cell}" if args.cell is not None else "") + (
            f" · the {args.last} slowest of the last {SLOWEST_OF:,} calls" if args.slowest
            else f" · last {args.last} calls")
        return TraceView(tuple(spans), scope)
