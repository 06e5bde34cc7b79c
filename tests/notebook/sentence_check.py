"""Is a report's comparison sentence true? Checked against the report's own metrics table, which
the evaluators computed (the mean of each model's per-item scores), not the comparison code.

For ``A beats B on M by +d (95% CI +l…+h, k/n items better, p=…)``: ``d`` is the table's
``mean(A, M) - mean(B, M)`` (to the sentence's rounding), the CI lies above 0 and holds ``d``,
``0 < k <= n`` and ``p < 0.05``; mirrored for "is worse than"; for "no detectable difference"
the difference matches and the CI spans 0.
"""

from __future__ import annotations

import re

NUM = r"([+\-\u2212]?\d+(?:\.\d+)?)"
BEATS = re.compile(rf"^(\S+) (beats|is worse than) (\S+) on (\S+) by {NUM} \(\d+% CI {NUM}\u2026{NUM}, "
                   rf"(\d+)/(\d+) items (?:better|worse)[^)]*?p=([<\d.e\-]+)")
#: a metric whose table value is corpus-level (BLEU): the report says which item means it compared
ITEM_MEANS = re.compile(r"^(\S+): compared item by item, on the mean of per-item scores "
                        r"\((\S+) ([\d.]+), (\S+) ([\d.]+)\)")
NO_DIFF = re.compile(rf"^(\S+) vs (\S+) on (\S+): no detectable difference \({NUM}, \d+% CI {NUM}\u2026{NUM} spans 0")


def _f(text: str) -> float:
    return float(text.replace("\u2212", "-"))


def _tolerance(text: str) -> float:
    digits = len(text.partition(".")[2])
    return 0.6 * 10 ** -digits + 1e-4  # the sentence rounds; the table shows 4 decimals


def metrics_table(report: str) -> dict[str, dict[str, float]]:
    """``{model: {metric: mean}}`` from the text report's table (``Evaluation — N model(s)``)."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Evaluation"))
    header = lines[start + 1].split()
    table: dict[str, dict[str, float]] = {}
    for line in lines[start + 2:]:
        cells = line.split()
        if len(cells) == 1 and not table:  # the index's name ("llm") under the header
            continue
        if len(cells) != len(header) + 1:
            break
        try:
            table[cells[0]] = {m: float(v) for m, v in zip(header, cells[1:], strict=True)}
        except ValueError:
            break
    return table


def _with_item_means(table: dict[str, dict[str, float]], report: str) -> dict[str, dict[str, float]]:
    """The report's own note on a corpus-level metric: its sentences compare these item means."""
    for line in report.splitlines():
        if (m := ITEM_MEANS.match(line)) is not None:
            metric, a, mean_a, b, mean_b = m.groups()
            table.setdefault(a, {})[metric], table.setdefault(b, {})[metric] = float(mean_a), float(mean_b)
    return table


def false_claims(report: str) -> list[str]:
    """Every comparison sentence of ``report`` that its table contradicts (empty: all true), or
    a note that the report has no sentence at all."""
    table = _with_item_means(metrics_table(report), report)
    problems: list[str] = []
    sentences = 0
    for line in report.splitlines():
        if (m := BEATS.match(line)) is not None:
            sentences += 1
            a, how, b, metric, d, low, high, k, n, p = m.groups()
            diff, lo, hi = _f(d), _f(low), _f(high)
            true_diff = table[a][metric] - table[b][metric]
            sign = 1 if how == "beats" else -1
            if abs(diff - true_diff) > _tolerance(d):
                problems.append(f"{line!r}: the table's difference is {true_diff:+.4f}")
            if not (sign * diff > 0 and (lo > 0 if sign > 0 else hi < 0) and lo <= diff <= hi):
                problems.append(f"{line!r}: the CI does not support '{how}'")
            if not 0 < int(k) <= int(n) or float(p.lstrip("<")) >= 0.05:
                problems.append(f"{line!r}: counts or p do not support '{how}'")
        elif (m := NO_DIFF.match(line)) is not None:
            sentences += 1
            a, b, metric, d, low, high = m.groups()
            true_diff = table[a][metric] - table[b][metric]
            if abs(_f(d) - true_diff) > _tolerance(d) or not _f(low) <= 0 <= _f(high):
                problems.append(f"{line!r}: the table's difference is {true_diff:+.4f}")
    if not sentences:
        problems.append("no comparison sentence in the report")
    return problems
