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
    total: int = 0  # tests run (a skipped one not counted)
    failed: int = 0
    skipped: int = 0
    errors: int = 0  # the file not importing, or a test's setup or teardown raising
    failures: dict[str, str] = field(default_factory=dict)  # test name -> reason

    @property
    def counts(self) -> str:
        """``passed/failed/skipped/errors``."""
        return f"{self.passed}/{self.failed}/{self.skipped}/{self.errors}"


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


def _count(res: FileResult, case: ET.Element, name: str) -> None:
    """One test's outcome into its file's counts."""
    failure, error = case.find("failure"), case.find("error")
    if case.find("skipped") is not None:
        res.skipped += 1
        return
    res.total += 1
    if failure is None and error is None:
        res.passed += 1
        return
    if failure is not None:
        res.failed += 1
    else:
        res.errors += 1
    res.failures[name] = _reason(failure if failure is not None else error)  # type: ignore[arg-type]


def parse_junit(xml: Path, files: list[str]) -> list[FileResult]:
    """Per-file counts; a file that failed to import counts no test and one reason."""
    results = {f: FileResult(f) for f in files}
    if not xml.exists():  # pytest stopped before collecting (e.g. conftest import)
        reason = _log_reason(xml.with_suffix(".log"))
        for res in results.values():
            res.errors = 1
            res.failures["<conftest>"] = reason
        return list(results.values())
    mods = sorted(((_module(f), f) for f in files), key=lambda m: -len(m[0]))
    seen: set[str] = set()
    for case in ET.parse(xml).iter("testcase"):
        cls, name = case.get("classname", ""), case.get("name", "")
        full = f"{cls}.{name}" if cls else name
        owner = next((f for m, f in mods if full == m or full.startswith(m + ".")), None)
        if owner is None:
            continue
        res = results[owner]
        failure, error = case.find("failure"), case.find("error")
        if not cls and (failure is not None or error is not None):  # collection error of the whole file
            res.errors += 1
            res.failures["<import>"] = _reason(error if error is not None else failure)  # type: ignore[arg-type]
            continue
        if full in seen:  # a failed test whose teardown raised too: pytest writes it twice
            if error is not None and res.failed:
                res.failed, res.errors = res.failed - 1, res.errors + 1
            continue
        seen.add(full)
        _count(res, case, name)
    return list(results.values())


def render(files: list[str], runs: dict[str, list[FileResult]]) -> str:
    """The table (per run: passed/failed/skipped/errors; the tests of the file) and each run's
    remaining failures."""
    by = {label: {r.file: r for r in rs} for label, rs in runs.items()}
    official, qfnb = by.get("official", {}), by.get("qfnb", {})
    lines = [f"{'file':<34} {'official p/f/s/e':>16} {'qfnb p/f/s/e':>14} {'tests':>6}"]
    totals = {label: FileResult("TOTAL") for label in ("official", "qfnb")}
    most = 0
    for f in files:
        o, q = official.get(f) or FileResult(f), qfnb.get(f) or FileResult(f)
        tests = max(o.total + o.skipped, q.total + q.skipped)
        most += tests
        for label, res in (("official", o), ("qfnb", q)):
            for name in ("passed", "failed", "skipped", "errors"):
                setattr(totals[label], name, getattr(totals[label], name) + getattr(res, name))
        lines.append(f"{f:<34} {o.counts:>16} {q.counts:>14} {tests:>6}")
    lines.append(f"{'TOTAL':<34} {totals['official'].counts:>16} {totals['qfnb'].counts:>14} {most:>6}")
    for label, table in (("official", official), ("qfnb", qfnb)):
        bad = [(f, n, r) for f in files if f in table for n, r in table[f].failures.items()]
        if bad:
            lines.append(f"\n{label} failures ({len(bad)}):")
            lines += [f"  {f}::{n}: {r}" for f, n, r in bad]
    return "\n".join(lines) + "\n"
