"""One ``mypy --strict`` run for all the typing tests (a run checks qfnb's modules the files import:
a few seconds each, and five tests used to start one each).

The run checks the ``check_*.py`` files and the tests' probes (written next to the result) together;
each test reads the lines about its own file. Under xdist the first worker to ask runs it and the
others read its result (a lock file in the session's shared temporary dir)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MYPY = ("-m", "mypy", "--strict", "--warn-unused-ignores", "--follow-imports=silent", "--no-incremental")
CHECKS = ("tests/typing/check_calls.py", "tests/typing/check_answers.py", "tests/typing/check_seed_paths.py")

#: files that show what mypy reports on purpose (never run): what ``reveal_type`` names, and an ``Any``
#: that ``assert_type`` refuses
PROBES = {
    "probe_reveal.py": "from qfnb import ChatCompletion\nfrom qfnb.resources import FineTune\n"
                       "reveal_type(ChatCompletion().do([]).parsed.result)\n"
                       "reveal_type(ChatCompletion().do([]).parsed)\n"
                       "reveal_type(FineTune.V2.task_detail(task_id='t').parsed.result.run_status)\n"
                       "reveal_type(FineTune.V2.task_detail(task_id='t').parsed)\n",
    "probe_untyped.py": "from typing import assert_type\nfrom qfnb._core.http.response import QfResponse\n"
                        "import qfnb.resources\n"
                        "assert_type(qfnb.resources.NoSuchConsole.list(), QfResponse)\n",
}


class MypyReport:
    """The shared run's exit status and output; ``lines(name)``: its lines about one checked file."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    def lines(self, name: str) -> list[str]:
        """mypy's lines about the file ``name`` (a path under the root, or a probe's name)."""
        base = Path(name).name
        return [line for line in self.stdout.splitlines() if Path(line.split(":", 1)[0]).name == base]

    def check(self, name: str) -> str:
        """Why ``name`` does not pass (its error lines, or mypy's crash), or ``""`` when it does."""
        if self.returncode not in (0, 1) or ("Found" not in self.stdout and "Success" not in self.stdout):
            return f"mypy did not finish ({self.returncode}):\n{self.stdout}{self.stderr}"
        return "\n".join(line for line in self.lines(name) if ": error:" in line)


def _run(folder: Path) -> MypyReport:
    probes = []
    for name, text in PROBES.items():
        (folder / name).write_text(text, encoding="utf-8")
        probes.append(str(folder / name))
    done = subprocess.run([sys.executable, *MYPY, *CHECKS, *probes], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    return MypyReport(done.returncode, done.stdout, done.stderr)


def shared_mypy(tmp_path_factory: pytest.TempPathFactory) -> MypyReport:
    """The session's one mypy run (run on the first call, under xdist by the first worker)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the workers' common dir
    folder = shared / "typing-mypy"
    folder.mkdir(exist_ok=True)
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = folder / "report.json"
        if saved.exists():
            return MypyReport(**json.loads(saved.read_text(encoding="utf-8")))
        report = _run(folder)
        saved.write_text(json.dumps(vars(report)), encoding="utf-8")
        return report

