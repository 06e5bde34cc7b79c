"""``qianfan`` in qfnb's venv is qfnb's CLI (issue 43: the official package's script had taken the
name and crashed with typer's ``click_type`` error while the README says qfnb is "also installed
as qianfan"). The official SDK comes only with the dev extra (the conformance tests run it)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_venvs_qianfan_runs_qfnbs_cli() -> None:
    script = Path(sys.executable).with_name("qianfan")
    assert script.exists()
    assert "qfnb.cli" in script.read_text(encoding="utf-8"), "the official package's script owns `qianfan`"
    ours = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    qfnb = subprocess.run([str(script.with_name("qfnb")), "--help"], capture_output=True, text=True, timeout=120)
    assert ours.returncode == 0 and "click_type" not in ours.stderr, ours.stderr[-500:]
    def words(text: str) -> list[str]:
        return text.replace("qianfan", "qfnb").split()

    assert ours.stdout.startswith("usage: qianfan") and words(ours.stdout) == words(qfnb.stdout)


def test_only_the_dev_extra_brings_the_official_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"]["qianfan"] == "qfnb.cli:main"
    assert not any(d.startswith("qianfan") for d in project["dependencies"])
    extras = project["optional-dependencies"]
    with_official = {name for name, deps in extras.items() if any(d.startswith("qianfan") for d in deps)}
    assert with_official == {"bench"}
    reaching = {name for name, deps in extras.items() if "qfnb[bench]" in deps}
    assert reaching == {"dev"} and "qfnb[dev]" not in extras["all"]
    assert 'grep -q "qfnb.cli" "$VENV/bin/qianfan"' in (ROOT / "scripts" / "bootstrap.sh").read_text()


def test_python_dash_m_qfnb_is_the_command_line() -> None:
    """``python -m qfnb`` (a venv whose scripts are not on the path) runs what ``qfnb`` runs."""
    by_module = subprocess.run([sys.executable, "-m", "qfnb", "--help"], capture_output=True, text=True, timeout=120)
    by_script = subprocess.run([str(Path(sys.executable).with_name("qfnb")), "--help"], capture_output=True, text=True,
                               timeout=120)
    assert by_module.returncode == 0, by_module.stderr[-500:]
    assert by_module.stdout.startswith("usage: qfnb") and by_module.stdout == by_script.stdout
