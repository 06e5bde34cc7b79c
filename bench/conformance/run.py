"""Conformance bench: the official ``qianfan`` SDK's own unit tests, run against qfnb.

Usage::

    python bench/conformance/run.py [--snapshot PATH] [--files chat_completion_test.py ...]

``--snapshot`` is a checkout (or bare git dir) of github baidubce/bce-qianfan-sdk;
by default ``$QFNB_CONFORMANCE_SNAPSHOT`` or the bare mirror under ``/work/.mirror`` is used and the tag
``py/v0.4.12.3`` (the PyPI 0.4.12.3 release) is exported from it. The bench keeps
its own venv (``~/.cache/qfnb/conformance-venv``) holding the official SDK of that
release and the official ``poetry.lock`` pins of the test tools, then runs the
chosen official test files twice against the official Flask mock: once with the
official SDK, once with ``qianfan`` aliased to this checkout's ``qfnb``. Nothing
of the official tests is copied into this repository.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from report import FileResult, parse_junit, render

LOG = logging.getLogger("conformance")
TAG = "py/v0.4.12.3"
SDK = "qianfan==0.4.12.3"
HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = Path(os.environ.get("QFNB_CONFORMANCE_CACHE", Path.home() / ".cache/qfnb"))
DEFAULT_MIRROR = Path(os.environ.get("QFNB_CONFORMANCE_SNAPSHOT", "/work/.mirror/baidubce+bce-qianfan-sdk/repo"))
# Test tools and the libraries the official tests or mock import, pinned as the
# official poetry.lock pins them (the newest lock entry where it lists several).
LOCK_PINS = (
    "pytest", "pytest-asyncio", "pytest-mock", "flask", "werkzeug", "itsdangerous",
    "jinja2", "markupsafe", "click", "aiolimiter", "requests", "tenacity",
    "pyarrow", "numpy", "aiohttp", "filelock", "ijson", "tabulate", "python-dateutil",
    # the official CLI (cli_replay.py): with today's typer its main module does not import
    # (`Option() got an unexpected keyword argument 'click_type'`); its server commands need fastapi
    "typer", "rich", "prompt-toolkit", "pyyaml", "fastapi", "starlette", "uvicorn",
)  # fmt: skip
DEFAULT_FILES = (
    "chat_completion_test.py", "chat_completion_v2_test.py", "completion_test.py",
    "embedding_test.py", "plugin_test.py", "text2image_test.py", "image2text_test.py",
    "reranker_test.py", "tokenizer_test.py", "finetune_test.py", "model_test.py",
    "service_test.py", "data_api_test.py", "trainer_test.py",
    "dataset/data_source_test.py", "dataset/dataset_test.py", "dataset/table_test.py",
)  # fmt: skip


def snapshot_root(arg: str | None) -> Path:
    """The ``python/`` folder of the official repository at the tag."""
    src = Path(arg) if arg else DEFAULT_MIRROR
    if (src / "python/qianfan/tests").is_dir():
        return src / "python"
    if (src / "qianfan/tests").is_dir():
        return src
    commit = subprocess.run(
        ["git", "--git-dir", str(src), "rev-parse", TAG + "^{commit}"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    out = CACHE / "conformance-src" / commit
    if not (out / "python/qianfan/tests").is_dir():
        out.mkdir(parents=True, exist_ok=True)
        archive = subprocess.Popen(
            ["git", "--git-dir", str(src), "archive", commit, "python"],
            stdout=subprocess.PIPE,
        )
        subprocess.run(["tar", "-x", "-C", str(out)], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise SystemExit(f"git archive of {TAG} failed in {src}")
    return out / "python"


def lock_pins(root: Path) -> list[str]:
    """``name==version`` for LOCK_PINS, read from the official poetry.lock."""
    lock = tomllib.loads((root / "poetry.lock").read_text(encoding="utf-8"))
    found: dict[str, list[str]] = {}
    for pkg in lock["package"]:
        if pkg["name"] in LOCK_PINS:
            found.setdefault(pkg["name"], []).append(pkg["version"])
    return [f"{n}=={max(v, key=_version_key)}" for n, v in sorted(found.items())]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def qfnb_requirements() -> list[str]:
    """qfnb's own runtime dependencies (qfnb itself comes from PYTHONPATH)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return list(project["project"]["dependencies"])


def ensure_venv(root: Path) -> Path:
    """Create the bench venv, or bring it to a changed requirement set; returns its python."""
    venv = CACHE / "conformance-venv"
    python = venv / "bin/python"
    reqs = [SDK, *lock_pins(root), *qfnb_requirements()]
    stamp = venv / "requirements.txt"
    if python.exists() and stamp.exists() and stamp.read_text(encoding="utf-8") == "\n".join(reqs):
        return python
    LOG.info("%s %s (%d requirements)", "updating" if python.exists() else "building", venv, len(reqs))
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *reqs], check=True)
    stamp.write_text("\n".join(reqs), encoding="utf-8")
    return python


def run_pytest(python: Path, root: Path, files: list[str], alias: bool, out: Path) -> None:
    """One pytest run of the official files; results land in ``out`` (JUnit XML)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("QFNB_DATA_DIR", None)
    for key in [k for k in env if k.startswith("QIANFAN_")]:
        env.pop(key)
    args = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--continue-on-collection-errors",
            f"--junitxml={out}"]
    if alias:
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO)])
        env["QFNB_CONFORMANCE_ROOT"] = str(root)
        args += ["-p", "qfnb_alias"]
    with tempfile.TemporaryDirectory(prefix="qfnb-conf-home-") as home:
        env["HOME"] = home  # neither SDK reads or writes the user's own config
        env["QFNB_DATA_DIR"] = os.path.join(home, "qfnb")
        args += [f"qianfan/tests/{f}" for f in files]
        LOG.info("running %s tests (%s)", "qfnb" if alias else "official", len(files))
        with out.with_suffix(".log").open("w", encoding="utf-8") as log:
            subprocess.run(args, cwd=root, env=env, check=False, stdout=log, stderr=log)


def run_everyday(python: Path, root: Path) -> str:
    """Send the everyday calls (``everyday.py``) with both SDKs; a table of where they differ."""
    outcomes: dict[str, dict[str, dict[str, object]]] = {}
    for label, alias in (("official", False), ("qfnb", True)):
        env = {k: v for k, v in os.environ.items() if not k.startswith("QIANFAN_") and k != "PYTHONPATH"}
        env.update(QFNB_CONFORMANCE_ROOT=str(root), PYTHONPATH=os.pathsep.join([str(HERE), str(REPO)]))
        if alias:
            env["QFNB_CONFORMANCE_ALIAS"] = "1"
        with tempfile.TemporaryDirectory(prefix="qfnb-conf-home-") as home:
            env.update(HOME=home, QFNB_DATA_DIR=os.path.join(home, "qfnb"))
            done = subprocess.run([str(python), str(HERE / "everyday.py")], cwd=root, env=env, check=False,
                                  capture_output=True, text=True, timeout=600)
        lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
        outcomes[label] = {x.pop("call"): x for x in lines}
    names = list(outcomes["official"]) or list(outcomes["qfnb"])
    out = [f"\neveryday calls ({len(names)}): same / differ"]
    same = 0
    for name in names:
        o, q = outcomes["official"].get(name), outcomes["qfnb"].get(name)
        if o == q:
            same += 1
            continue
        out.append(f"  {name}:\n    official: {json.dumps(o, ensure_ascii=False)[:300]}"
                   f"\n    qfnb:     {json.dumps(q, ensure_ascii=False)[:300]}")
    out.insert(1, f"  {same} the same, {len(names) - same} different")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--snapshot", help="checkout or bare git dir of bce-qianfan-sdk")
    parser.add_argument("--files", nargs="*", default=list(DEFAULT_FILES))
    parser.add_argument("--all", action="store_true", help="every *_test.py of the official suite")
    parser.add_argument("--skip-official", action="store_true", help="qfnb run only")
    parser.add_argument("--junit-dir", help="keep the JUnit XML files here")
    parser.add_argument("--everyday", action="store_true", help="also compare the everyday calls")
    parser.add_argument("--everyday-only", action="store_true", help="only compare the everyday calls")
    ns = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = snapshot_root(ns.snapshot)
    if ns.all:
        tests = root / "qianfan/tests"
        ns.files = [*DEFAULT_FILES, *sorted(p.relative_to(tests).as_posix() for p in tests.rglob("*_test.py")
                                           if p.relative_to(tests).as_posix() not in DEFAULT_FILES)]
    python = ensure_venv(root)
    if ns.everyday_only:
        sys.stdout.write(run_everyday(python, root))
        return
    outdir = Path(ns.junit_dir or tempfile.mkdtemp(prefix="qfnb-conformance-"))
    outdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[FileResult]] = {}
    for label, alias in (("official", False), ("qfnb", True)):
        if label == "official" and ns.skip_official:
            continue
        xml = outdir / f"{label}.xml"
        run_pytest(python, root, ns.files, alias, xml)
        results[label] = parse_junit(xml, ns.files)
    sys.stdout.write(render(ns.files, results))
    if ns.everyday:
        sys.stdout.write(run_everyday(python, root))


if __name__ == "__main__":
    main()
