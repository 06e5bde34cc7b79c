"""Conformance bench: the official ``qianfan`` CLI's documented examples, replayed with ``qfnb``.

Usage::

    .venv/bin/python bench/conformance/cli_replay.py [--snapshot PATH] [--only WORD] [--keep DIR]

The examples are read at run time from the official repository at ``py/v0.4.12.3`` (the same
snapshot ``run.py`` uses): every ``qianfan ...`` line of a code block and every inline
``qianfan <command> ...`` in ``docs/*.md``, and every ``!qianfan ...`` / ``"qianfan ..."`` in the
cookbook notebooks. A usage line's placeholders (``[OPTIONS]``, ``PROMPT``, ``DATASET`` ...) are
filled with the values in ``FILL``. Nothing of the official docs is copied into this repository.

Each example runs twice against one local platform this bench starts (``qfnb serve`` on 127.0.0.1,
a temporary data dir, real models): once with the official CLI (``qianfan`` 0.4.12.3 in the bench's
venv, with the typer/click/rich pins of its own ``poetry.lock``), once with this checkout's
``python -m qfnb.cli``. Both get the platform as the official CLI's users configure it
(``QIANFAN_BASE_URL`` / ``QIANFAN_CONSOLE_API_BASE_URL`` / ``QIANFAN_IAM_BASE_URL`` and the keys), a
fresh ``HOME`` and their own working directory. Interactive commands get their turns on stdin.
A table compares the outcome (answered or refused, and the exit status), the text both printed
(qfnb's lines must appear in the official output), and the files each wrote.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from run import DEFAULT_MIRROR, REPO, TAG, ensure_venv, snapshot_root

LOG = logging.getLogger("cli_replay")
COMMANDS = ("chat", "completion", "txt2img", "embedding", "plugin", "dataset", "trainer", "evaluation", "api",
            "cache", "openai", "proxy")
_CMD = "|".join(COMMANDS)
BLOCK_LINE = re.compile(r"^\s*(?:\$\s*|!)?qianfan(?:\s+(.*?))?\s*$")
INLINE = re.compile(rf"`qianfan ((?:{_CMD})\b[^`]*)`")
QUOTED = re.compile(rf"""(?:!|["'])qianfan ((?:{_CMD})\b[^"'\\\n]*)""")
STEP = re.compile(rf"^\s*\d+\.\s+qianfan ((?:{_CMD})\b.*?)\s*$")  # "3. qianfan proxy", a numbered step
FENCE = re.compile(r"^```(\w*)\s*$")
QUESTION = "What is the capital of France? Answer in one short sentence."
#: a usage line's placeholders, and what the bench puts there ({...}: filled per run)
FILL = {
    "[OPTIONS]": "", "COMMAND [ARGS]...": "", "PROMPTS...": shlex.quote(QUESTION),
    "PROMPT": shlex.quote("a red apple on a white table"), "DATASET_FILE": "qa.jsonl", "DATASET_ID": "{dataset}",
    "DATASET": "qa.jsonl", "SRC [DST]": "qa.jsonl saved.jsonl", "PATH [DST]": "qa.jsonl {dataset}",
    "MODELS...": "{model_version}", "xx.json": "job.json",
}
#: examples the local platform cannot answer for the official CLI, and why
CLOUD_ONLY = {
    "dataset upload": "the official CLI uploads to BOS at {region}.bcebos.com (a fixed cloud host)",
    "plugin": "plugins are cloud services (EB plugins, BOS uploads); the local platform has none",
    "dataset insight": "the official command opens a Streamlit web app (interactive); qfnb prints the statistics",
}
#: where the official CLI is wrong, and qfnb does the right thing instead
OFFICIAL_BUGS = {
    "proxy": "the official proxy's default --access-token '' still asks every call for ?access_token= "
             "(401 NO_ACCESS_TOKEN); qfnb's asks for one only when one is set",
    "dataset predict": "without --reference-column (documented as optional) the official command stops at "
                       "'no reference column has been set' and exits 0; qfnb predicts",
    "trainer info": "with neither --trainer-id nor --task-id the official command prints nothing and exits 0; "
                    "qfnb says what is missing",
}
#: long jobs: both running them to the end is the match (the official prints the pipeline's result, qfnb the
#: progress of each action)
JOBS = ("trainer finetune", "trainer postpretrain", "trainer dpo", "trainer run")
#: the official CLI's sampled commands, given its documented --temperature near 0 so both answers are greedy
DETERMINISTIC = {"chat": ["--temperature", "0.01"], "completion": ["--temperature", "0.01"]}
ROWS = [{"prompt": q, "response": a} for q, a in (("What is 2+2?", "4"), ("What is the capital of Italy?", "Rome"),
                                                  ("Name a primary colour.", "Red"))]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
OFFICIAL_LOG = re.compile(r"^\[(?:WARNING|ERROR|INFO|DEBUG)\]\[|^\[\d\d/\d\d/\d\d|^\s*(?:WARNING|INFO)\s")


@dataclass
class Example:
    source: str
    line: str  # as documented, without the leading ``qianfan``

    @property
    def command(self) -> str:
        words = [w for w in self.line.split() if not w.startswith("-")]
        return " ".join(words[:2]) if words[:1] in (["dataset"], ["trainer"], ["evaluation"], ["api"]) else \
            " ".join(words[:1])


@dataclass
class Outcome:
    rc: int | None
    out: str
    files: dict[str, str] = field(default_factory=dict)
    served: dict[str, Any] | None = None

    @property
    def refused(self) -> bool:
        """Failed, by exit status or (the official CLI exits 0 after many errors) by an ``ERROR:`` line."""
        return self.rc != 0 or any(line.startswith("ERROR:") for line in self.out.splitlines())


# ---- the examples ------------------------------------------------------------------------------------------

def examples_from_markdown(text: str, source: str) -> list[Example]:
    """``qianfan ...`` lines in code blocks, numbered steps ``3. qianfan proxy``, and inline
    ``qianfan <command> ...`` spans."""
    found: list[Example] = []
    in_block = False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            in_block = not in_block
            continue
        if in_block:
            match = BLOCK_LINE.match(line)
            if match:
                found.append(Example(source, (match.group(1) or "").strip()))
        else:
            step = STEP.match(line)
            found += [Example(source, step.group(1))] if step else \
                [Example(source, m.group(1).strip()) for m in INLINE.finditer(line)]
    return found


def examples_from_notebook(text: str, source: str) -> list[Example]:
    """Shell escapes (``!qianfan ...``) and command strings (``"qianfan openai -p 8001"``) of a notebook."""
    found: list[Example] = []
    for cell in json.loads(text).get("cells", []):
        body = "".join(cell.get("source", []))
        if cell.get("cell_type") == "markdown":
            found += examples_from_markdown(body, source)
        else:
            found += [Example(source, m.group(1).strip()) for m in QUOTED.finditer(body)]
    return found


def official_examples(mirror: Path) -> list[Example]:
    """Every documented example at the tag, in order, each command line once."""
    listed = subprocess.run(["git", "--git-dir", str(mirror), "grep", "-IlE", rf"qianfan ({_CMD})|\$ qianfan", TAG,
                             "--", "docs", "cookbook"], capture_output=True, text=True, check=False).stdout
    found: list[Example] = []
    for name in sorted(p.split(":", 1)[1] for p in listed.split()):
        text = git_show(mirror, name)
        found += examples_from_notebook(text, name) if name.endswith(".ipynb") else examples_from_markdown(text, name)
    seen: set[str] = set()
    unique = []
    for example in found:
        for line in expand(example.line):
            if line not in seen:
                seen.add(line)
                unique.append(Example(example.source, line))
    return unique


def expand(line: str) -> list[str]:
    """A usage line's alternatives (``trainer [finetune|postpretrain|dpo]``) and placeholders filled."""
    alternatives = re.search(r"\[([a-z]+(?:\|[a-z]+)+)\]", line)
    if alternatives:
        return [x for name in alternatives.group(1).split("|")
                for x in expand(line[:alternatives.start()] + name + line[alternatives.end():])]
    for placeholder in sorted(FILL, key=len, reverse=True):
        line = line.replace(placeholder, FILL[placeholder])
    return [" ".join(line.split())]


def git_show(mirror: Path, path: str) -> str:
    return subprocess.run(["git", "--git-dir", str(mirror), "show", f"{TAG}:{path}"], capture_output=True,
                          check=True).stdout.decode("utf-8", "replace")


# ---- the platform ------------------------------------------------------------------------------------------

class Platform:
    """``qfnb serve`` on 127.0.0.1 with a temporary data dir; stopped (by its pid) on exit."""

    def __init__(self, data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QIANFAN_")}
        env.update(QFNB_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, "-m", "qfnb.cli", "serve", "--port", "0"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(REPO))
        self.url = ""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            found = re.search(r"QIANFAN_BASE_URL=(http://127\.0\.0\.1:\d+)", line)
            if found:
                self.url = found.group(1)
                break
        if not self.url:
            raise SystemExit("qfnb serve printed no URL")
        self.creds = json.loads((data_dir / "credentials.json").read_text("utf-8"))

    def env(self, home: Path) -> dict[str, str]:
        """What a user of the official CLI exports for this platform, with ``home`` as HOME."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QIANFAN_", "QFNB_")) and k != "PYTHONPATH"}
        env.update(QIANFAN_BASE_URL=self.url, QIANFAN_CONSOLE_API_BASE_URL=self.url, QIANFAN_IAM_BASE_URL=self.url,
                   QIANFAN_AK=self.creds["api_key"], QIANFAN_SK=self.creds["secret_key"],
                   QIANFAN_ACCESS_KEY=self.creds["access_key"], QIANFAN_SECRET_KEY=self.creds["iam_secret_key"],
                   QFNB_BOS_ENDPOINT=self.url + "/bos", HOME=str(home), QIANFAN_CACHE_DIR=str(home / "cache"),
                   QFNB_DATA_DIR=str(home / "qfnb"), COLUMNS="200", TERM="dumb", NO_COLOR="1")
        return env

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- running one example -----------------------------------------------------------------------------------

@dataclass
class Side:
    label: str
    argv0: list[str]
    env: dict[str, str]


def run_example(side: Side, args: list[str], cwd: Path, timeout: float) -> Outcome:
    cwd.mkdir(parents=True, exist_ok=True)
    if args[:1] in (["openai"], ["proxy"]):
        return run_server(side, args, cwd, timeout)
    interactive = args[:1] in (["chat"], ["plugin"]) or (args[:1] == ["completion"] and len(positional(args)) < 2)
    stdin = f"{QUESTION}\n/exit\n" if interactive else ""
    try:
        done = subprocess.run([*side.argv0, *args], input=stdin, capture_output=True, text=True, env=side.env,
                              cwd=cwd, timeout=timeout, check=False)
        rc, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out = None, _text(exc.stdout) + _text(exc.stderr) + f"\n(timed out after {timeout:.0f} s)"
    (cwd / "output.txt").write_text(out, "utf-8")
    return Outcome(rc, clean(out), written(cwd))


def positional(args: list[str]) -> list[str]:
    return [a for a in args if not a.startswith("-")]


def run_server(side: Side, args: list[str], cwd: Path, timeout: float) -> Outcome:
    """Start the server on 127.0.0.1 and a free port, send it one documented request, stop it."""
    args = [a for a in args if a not in ("-d", "--detach")]
    ports: dict[str, int] = {}
    if args[0] == "openai":
        ports["base"] = free_port()
        args = [*_drop_option(args, ("-p", "--port")), "--host", "127.0.0.1", "--port", str(ports["base"])]
    else:
        ports = {"base": free_port(), "console": free_port()}
        args = [*args, "--host", "127.0.0.1", "-b", str(ports["base"]), "-c", str(ports["console"])]
    log = (cwd / "server.log").open("w")
    proc = subprocess.Popen([*side.argv0, *args], env=side.env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    served: dict[str, Any] = {}
    try:
        if not wait_port(ports["base"], proc, 60):
            return Outcome(proc.wait(5) if proc.poll() is not None else None, clean((cwd / "server.log").read_text()))
        served = probe(args[0], ports)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the group this bench started (the official proxy forks two)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    return Outcome(0 if served else None, clean((cwd / "server.log").read_text()), served=served)


def _drop_option(args: list[str], names: tuple[str, ...]) -> list[str]:
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        else:
            out.append(arg)
    return out


def wait_port(port: int, proc: subprocess.Popen[Any], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.2)
    return False


def probe(command: str, ports: dict[str, int]) -> dict[str, Any]:
    """One request as the docs' client sends it; the status, the answer's keys and its text."""
    if command == "openai":
        body = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": QUESTION}], "temperature": 0.01}
        status, answer = post(f"http://127.0.0.1:{ports['base']}/v1/chat/completions", body)
        text = ((answer.get("choices") or [{}])[0].get("message") or {}).get("content") if status == 200 else None
    else:
        body = {"messages": [{"role": "user", "content": QUESTION}], "temperature": 0.01}
        status, answer = post(f"http://127.0.0.1:{ports['base']}/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/"
                              "ernie-lite-8k", body)
        text = answer.get("result")
    return {"status": status, "keys": sorted(answer), "text": text}


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _text(value: bytes | str | None) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value or ""


def clean(text: str) -> str:
    """Terminal output as plain lines: no colours, carriage returns, box drawing or the official log lines."""
    text = ANSI.sub("", text).replace("\r", "\n")
    lines = [re.sub(r"[\u2500-\u257f]", " ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line and not OFFICIAL_LOG.search(line))


def written(cwd: Path) -> dict[str, str]:
    """The files a command wrote in its directory: ``{suffix: what is in it}``."""
    out = {}
    for path in sorted(cwd.iterdir()):
        if path.name in ("qa.jsonl", "job.json", "assets", "server.log", "output.txt") or path.is_dir():
            continue
        if path.suffix == ".jsonl":
            rows = [json.loads(x) for x in path.read_text("utf-8").splitlines() if x.strip()]
            first = rows[0] if rows else None
            shape = ",".join(sorted(first)) if isinstance(first, dict) else type(first).__name__
            out[path.suffix] = f"{len(rows)} rows of {shape}"
        elif path.suffix in (".jpg", ".png"):
            out[path.suffix] = image_size(path)
        else:
            out[path.suffix] = f"{path.stat().st_size} bytes"
    return out


def image_size(path: Path) -> str:
    try:
        from PIL import Image

        with Image.open(path) as image:
            return f"image {image.size[0]}x{image.size[1]}"
    except Exception as exc:  # what is wrong with it is the finding
        return f"not an image ({type(exc).__name__})"


# ---- comparing ---------------------------------------------------------------------------------------------

def compare_served(official: dict[str, Any], qfnb: dict[str, Any]) -> str:
    """Two servers' answers to the same request: status and fields, then the text."""
    if official.get("status") != qfnb.get("status") or official.get("keys") != qfnb.get("keys"):
        return (f"differs: served {official.get('status')} {official.get('keys')} vs {qfnb.get('status')} "
                f"{qfnb.get('keys')}")
    return "match: " + ("same answer" if official.get("text") == qfnb.get("text") else "same shape (status, fields)")


def compare(official: Outcome, qfnb: Outcome) -> str:
    """``match``/``differs``, with why."""
    if official.served is not None or qfnb.served is not None:
        return compare_served(official.served or {}, qfnb.served or {})
    late = [label for label, o in (("official", official), ("qfnb", qfnb)) if o.rc is None]
    if late:
        return f"timeout: {' and '.join(late)} did not finish (--timeout)"
    if official.refused != qfnb.refused:
        return "differs: " + ("official refused, qfnb answered" if official.refused else "qfnb refused: "
                              + first_error(qfnb.out))
    if official.refused:
        note = " (the official CLI exits 0 on this error)" if official.rc == 0 else ""
        return f"match: both refuse{note}; qfnb: {first_error(qfnb.out)}"
    if official.files != qfnb.files:
        return f"differs: files {official.files} vs {qfnb.files}"
    if official.files:  # what a file-writing command is for; its status line is wording
        return f"match: same files {qfnb.files}"
    if "Usage: qianfan" in official.out:
        return compare_help(official.out, qfnb.out)
    missing = [line for line in qfnb.out.splitlines() if line not in official.out]
    if not missing:
        return "match: same text" if qfnb.out.strip() else "match: same (no text)"
    if set(re.findall(r"\w+", qfnb.out)) <= set(re.findall(r"\w+", official.out)):
        return "match: same values (laid out differently)"
    return f"differs: qfnb printed {missing[0][:60]!r}, not in the official output"


def compare_help(official: str, qfnb: str) -> str:
    """Two help texts (typer's and argparse's): the subcommands each lists."""
    lines = official.split("Commands", 1)[1].splitlines() if "Commands" in official else []
    listed = {line.split()[0] for line in lines if line.split()}
    choices = re.search(r"\{([a-z0-9.,_-]+)\}", qfnb)
    ours = set(choices.group(1).split(",")) if choices else set()
    if not listed:
        return "match: both print help"
    lacking = sorted(listed - ours)
    return "match: both print help, the same commands" if not lacking else \
        f"differs: help without {', '.join(lacking)}"


def first_error(text: str) -> str:
    lines = [x for x in text.splitlines() if x.strip()]
    return (lines[-1] if lines else "(nothing printed)")[:110]


# ---- the bench ---------------------------------------------------------------------------------------------

def prepare(work: Path, mirror: Path, sides: list[Side], platform: Platform) -> dict[str, str]:
    """The files the filled examples name, and a platform dataset; returns the per-run fills."""
    (work / "qa.jsonl").write_text("".join(json.dumps([{"prompt": r["prompt"], "response": [[r["response"]]]}],
                                                      ensure_ascii=False) + "\n" for r in ROWS), "utf-8")
    (work / "assets").mkdir(exist_ok=True)
    (work / "assets/openai_conf.yaml").write_text(git_show(mirror, "cookbook/assets/openai_conf.yaml"), "utf-8")
    qfnb = sides[1]
    up = subprocess.run([*qfnb.argv0, "dataset", "upload", str(work / "qa.jsonl"), "--dataset-name", "replay"],
                        env=qfnb.env, capture_output=True, text=True, check=True, timeout=300)
    dataset = up.stdout.strip().rsplit(" ", 1)[-1]
    job = json.loads(git_show(mirror, "docs/trainer_ppl_file_tmpl.json"))
    for action in job["actions"]:
        if action["type"] == "LoadDataSetAction":
            action["datasets"]["versions"][0]["versionId"] = dataset.removeprefix("qianfan://")
    (work / "job.json").write_text(json.dumps(job, ensure_ascii=False, indent=1), "utf-8")
    return {"{dataset}": dataset, "{model_version}": "amv-local"}


def stage(work: Path, cwd: Path) -> None:
    """The example's directory holds the prepared files, as the docs' reader's would."""
    cwd.mkdir(parents=True, exist_ok=True)
    for name in ("qa.jsonl", "job.json", "assets"):
        target = cwd / name
        if not target.exists():
            target.symlink_to(work / name)


def replay(examples: list[Example], sides: list[Side], work: Path, fills: dict[str, str],
           timeout: float) -> Iterator[tuple[Example, str, Outcome | None, Outcome | None, str]]:
    for n, example in enumerate(examples):
        line = example.line
        for key, value in fills.items():
            line = line.replace(key, value)
        skip = next((why for prefix, why in CLOUD_ONLY.items() if example.command == prefix), None)
        if skip:
            yield example, line, None, None, f"skipped: {skip}"
            continue
        args = shlex.split(line)
        if "--list-model" not in args and "-l" not in args:
            args += DETERMINISTIC.get(example.command, [])
            line = " ".join(shlex.quote(a) for a in args)
        results = []
        for side in sides:
            cwd = work / f"{n:02d}-{side.label}"
            stage(work, cwd)
            LOG.info("%s: qianfan %s", side.label, line)
            results.append(run_example(side, args, cwd, timeout))
        verdict = compare(results[0], results[1])
        if verdict.startswith("differs: qfnb printed") and example.command in JOBS:
            verdict = "match: both ran the job to the end (each reports it its own way)"
        elif verdict.startswith("differs") and example.command in OFFICIAL_BUGS:
            verdict = f"differs: official bug: {OFFICIAL_BUGS[example.command]} ({verdict[9:]})"
        yield example, line, results[0], results[1], verdict


def render(rows: list[tuple[Example, str, Outcome | None, Outcome | None, str]]) -> str:
    def rc(o: Outcome | None) -> str:
        if o is None:
            return "-"
        return "served" if o.served else ("timeout" if o.rc is None else str(o.rc))

    width = min(60, max(len(r[1]) for r in rows) + 8)
    out = [f"{'example (qianfan ...)':<{width}} {'official':>8} {'qfnb':>6}  verdict"]
    for _, line, official, qfnb, verdict in rows:
        shown = line if len(line) <= width - 1 else line[:width - 4] + "..."
        out.append(f"{shown:<{width}} {rc(official):>8} {rc(qfnb):>6}  {verdict}")
    counts = {k: sum(r[4].startswith(k) for r in rows) for k in ("match", "differs", "skipped", "timeout")}
    out.append(f"\n{len(rows)} examples: {counts['match']} match, {counts['differs']} differ "
               f"({sum('official bug' in r[4] for r in rows)} of them official bugs), {counts['skipped']} skipped, "
               f"{counts['timeout']} timed out")
    sources = sorted({r[0].source for r in rows})
    out.append("from: " + ", ".join(sources))
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--snapshot", help="bare git dir of bce-qianfan-sdk (default: the mirror run.py uses)")
    parser.add_argument("--only", action="append", default=[], help="replay the examples containing this text")
    parser.add_argument("--keep", type=Path, help="work here and keep each run's directory and output")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per command (default 300)")
    parser.add_argument("--list", action="store_true", help="print the examples found and exit")
    parser.add_argument("--extra", action="append", default=[],
                        help="also replay this command line, not one of the docs' (without the leading 'qianfan')")
    ns = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    mirror = Path(ns.snapshot) if ns.snapshot else DEFAULT_MIRROR
    examples = official_examples(mirror)
    if ns.only:
        examples = [e for e in examples if any(word in e.line for word in ns.only)]
    examples += [Example("--extra", line) for line in ns.extra]
    if ns.list:
        sys.stdout.write("".join(f"qianfan {e.line}    ({e.source})\n" for e in examples))
        return
    python = ensure_venv(snapshot_root(str(mirror)))
    work = ns.keep or Path(tempfile.mkdtemp(prefix="qfnb-cli-replay-"))
    work.mkdir(parents=True, exist_ok=True)
    platform = Platform(work / "platform")
    try:
        sides = [Side("official", [str(python.parent / "qianfan")], platform.env(work / "home-official")),
                 Side("qfnb", [sys.executable, "-m", "qfnb.cli"], {**platform.env(work / "home-qfnb"),
                                                                   "PYTHONPATH": str(REPO)})]
        fills = prepare(work, mirror, sides, platform)
        rows = list(replay(examples, sides, work, fills, ns.timeout))
    finally:
        platform.stop()
    sys.stdout.write(render(rows))
    for _, line, official, qfnb, verdict in rows:
        if verdict.startswith("differs") and official and qfnb:
            sys.stdout.write(f"\n--- qianfan {line}\n  official: {official.out[-400:]!r}\n"
                             f"  qfnb:     {qfnb.out[-400:]!r}\n")


if __name__ == "__main__":
    main()
