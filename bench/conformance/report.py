"""Reads the JUnit XML of a conformance run and renders the per-file table."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

_EXC = re.compile(r"^E\s+([A-Za-z_][\w.]*(Error|Exception|Exit|Warning|Failed)\b.*)$")


@dataclass
class FileResult:
    """Outcome of one official test file in one run."""

    file: str
    passed: int = 0
    total: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # test name -> reason


def _module(file: str) -> str:
    return "qianfan.tests." + file.removesuffix(".py").replace("/", ".")


def _reason(node: ET.Element) -> str:
    """One line: the exception type and the first line of its message."""
    text = node.text or ""
    for line in text.splitlines():
        match = _EXC.match(line.strip())
        if match:
            return match.group(1)[:200]
    message = (node.get("message") or "").strip().splitlines()
    return (message[0] if message else "failed")[:200]


def _log_reason(log: Path) -> str:
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    found = [m.group(1) for m in (_EXC.match(x.strip()) for x in lines) if m]
    return found[-1][:200] if found else "pytest produced no report"


def parse_junit(xml: Path, files: list[str]) -> list[FileResult]:
    """Per-file counts; a file that failed to import counts no test and one reason."""
    results = {f: FileResult(f) for f in files}
    if not xml.exists():  # pytest stopped before collecting (e.g. conftest import)
        reason = _log_reason(xml.with_suffix(".log"))
        for res in results.values():
            res.failures["<conftest>"] = reason
        return list(results.values())
    mods = sorted(((_module(f), f) for f in files), key=lambda m: -len(m[0]))
    for case in ET.parse(xml).iter("testcase"):
        cls, name = case.get("classname", ""), case.get("name", "")
        full = f"{cls}.{name}" if cls else name
        owner = next((f for m, f in mods if full == m or full.startswith(m + ".")), None)
        if owner is None:
            continue
        res = results[owner]
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if not cls and bad is not None:  # collection error of the whole file
            res.failures["<import>"] = _reason(bad)
            continue
        if case.find("skipped") is not None:
            continue
        res.total += 1
        if bad is None:
            res.passed += 1
        else:
            res.failures[name] = _reason(bad)
    return list(results.values())


def render(files: list[str], runs: dict[str, list[FileResult]]) -> str:
    """The table (official passed, qfnb passed, total) and qfnb's remaining failures."""
    by = {label: {r.file: r for r in rs} for label, rs in runs.items()}
    official, qfnb = by.get("official", {}), by.get("qfnb", {})
    lines = [f"{'file':<34} {'official':>8} {'qfnb':>6} {'total':>6}"]
    sums = [0, 0, 0]
    for f in files:
        o, q = official.get(f), qfnb.get(f)
        total = max(o.total if o else 0, q.total if q else 0)
        row = [o.passed if o else 0, q.passed if q else 0, total]
        sums = [a + b for a, b in zip(sums, row, strict=True)]
        lines.append(f"{f:<34} {row[0]:>8} {row[1]:>6} {row[2]:>6}")
    lines.append(f"{'TOTAL':<34} {sums[0]:>8} {sums[1]:>6} {sums[2]:>6}")
    for label, table in (("official", official), ("qfnb", qfnb)):
        bad = [(f, n, r) for f in files if f in table for n, r in table[f].failures.items()]
        if bad:
            lines.append(f"\n{label} failures ({len(bad)}):")
            lines += [f"  {f}::{n}: {r}" for f, n, r in bad]
    return "\n".join(lines) + "\n"
