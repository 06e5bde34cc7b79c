"""The public names the official SDK's docs (``../shared/seeds``) use exist in qfnb.

Collected by reading the docs: every dotted ``qianfan.…`` reference, every
``from qianfan… import …``, and for each ``class qianfan.….X`` of the API reference its
documented methods and properties. Each must resolve on ``qfnb`` (same path, ``qianfan`` ->
``qfnb``); a missing one fails, naming it.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import seedblocks  # noqa: E402

SEEDS_DIR = seedblocks.seeds_dir(HERE.parents[1])
if not SEEDS_DIR.is_dir():
    pytest.skip(f"the official SDK's docs are not beside this checkout ({SEEDS_DIR} is absent)",
                allow_module_level=True)
TEXT = "\n".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS_DIR.glob("[0-9][0-9][0-9]_*.txt")))

#: documented names qfnb does not have yet, with why (xfail while missing; a name listed here
#: that exists fails the test, so the list cannot go stale). Empty: every documented name exists.
KNOWN_GAPS: dict[str, str] = {}


def documented_names(text: str) -> list[str]:
    names: set[str] = set()
    for m in re.finditer(r"\bqianfan((?:\.[A-Za-z_]\w*)+)", text):
        names.add("qfnb" + m.group(1))
    for m in re.finditer(r"from qianfan((?:\.\w+)*) import ([\w, ]+)", text):
        names.update(f"qfnb{m.group(1)}.{n.strip()}" for n in m.group(2).split(",") if n.strip())
    current: str | None = None
    for line in text.splitlines():
        cls = re.match(r"- class qianfan([\w.]+)[(\[]", line)
        if cls:
            current = "qfnb" + cls.group(1)
            continue
        if current is None:
            continue
        member = (re.match(r"- (?:async |classmethod |abstract )*([a-z_]\w*)\(", line)
                  or re.match(r"- property ([a-z_]\w*)", line))
        if member:
            names.add(f"{current}.{member.group(1)}")
    return sorted(names)


def resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


NAMES = documented_names(TEXT)


def test_the_docs_document_enough_names() -> None:
    assert len(NAMES) > 60, NAMES  # the reading above still understands the docs


@pytest.mark.parametrize("dotted", NAMES)
def test_documented_name_exists_in_qfnb(dotted: str) -> None:
    try:
        resolve(dotted)
    except (ImportError, AttributeError) as exc:
        if dotted in KNOWN_GAPS:
            pytest.xfail(KNOWN_GAPS[dotted])
        pytest.fail(f"{dotted} is documented by the official SDK but missing in qfnb: {exc}")
    assert dotted not in KNOWN_GAPS, f"{dotted} exists now: drop it from KNOWN_GAPS"


# ---- signatures: the documented parameters, in the documented order ---------------------------

#: documented callables whose signature qfnb deliberately differs on, with why
#: documented signatures qfnb does not follow, and why
_MODEL_ORDER = ("the docs list Model(id, version_id, task_id, job_id); the PyPI release the official test suite "
           "judges (0.4.12.3) takes Model(set_id, id, task_id, job_id, name), and qfnb follows the release "
           "(docs/conformance.md); version_id is accepted by keyword, as every seed example passes it")
SIGNATURE_GAPS: dict[str, str] = {"qfnb.trainer.Model": _MODEL_ORDER, "qfnb.trainer.model.Model": _MODEL_ORDER}


def _split_params(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def documented_signatures(text: str) -> dict[str, list[str]]:
    """``{"qfnb.trainer.LLMFinetune": ["train_type", "dataset", ..., "**kwargs"], ...}`` for
    every documented class constructor, function and class method that lists its parameters."""
    sigs: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        cls = re.match(r"- class qianfan([\w.]+)(?:\((.*)\))?(?:\[source\])?$", line)
        if cls:
            current = "qfnb" + cls.group(1)
            if cls.group(2) is not None:
                sigs[current] = [p.split(":")[0].split("=")[0].strip() for p in _split_params(cls.group(2))]
            continue
        func = re.match(r"- qianfan([\w.]+)\((.*?)\) [\w\[\], .]+(?:\[source\])?$", line)
        if func:
            sigs["qfnb" + func.group(1)] = [p.split(":")[0].split("=")[0].strip()
                                            for p in _split_params(func.group(2))]
            continue
        # a member may follow the class's "Bases:" text on the same line (the docs lost a newline)
        meth = re.search(r"(?:^|[\]`])- (?:abstract )?([a-z_]\w*)\((.*?)\) [\w\[\], .]+(?:\[source\])?$", line)
        if meth and current:
            sigs[f"{current}.{meth.group(1)}"] = [p.split(":")[0].split("=")[0].strip()
                                                  for p in _split_params(meth.group(2))]
    return {k: [p for p in v if p and p not in ("self", "cls", "*")] for k, v in sigs.items()}


SIGNATURES = documented_signatures(TEXT)


def test_the_docs_document_signatures() -> None:
    assert len(SIGNATURES) > 20 and SIGNATURES["qfnb.trainer.base.BaseAction"] == [
        "id", "name", "event_handler", "**kwargs"]


@pytest.mark.parametrize("dotted", sorted(SIGNATURES))
def test_documented_signature_is_accepted(dotted: str) -> None:
    """Every documented parameter exists under its name; the documented positional order is
    qfnb's; a documented ``**kwargs`` is accepted (pydantic models: the documented fields)."""
    import inspect

    from pydantic import BaseModel

    obj = resolve(dotted)
    documented = SIGNATURES[dotted]
    if isinstance(obj, type) and issubclass(obj, BaseModel):
        missing = [p for p in documented if not p.startswith("*") and p not in obj.model_fields]
        assert not missing, f"{dotted} lacks the documented fields {missing}"
        return
    params = inspect.signature(obj).parameters
    ours = [n for n, p in params.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and n not in ("self", "cls")]  # a method looked up on its class
    named = [p for p in documented if not p.startswith("*")]
    problems = [f"no parameter {p!r}" for p in named if p not in params]
    positional = [p for p in named if p in ours]
    if positional != ours[:len(positional)]:
        problems.append(f"positional order {ours} differs from the documented {named}")
    if "**kwargs" in documented and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        problems.append("no **kwargs")
    if problems and dotted in SIGNATURE_GAPS:
        pytest.xfail(SIGNATURE_GAPS[dotted])
    assert not problems, f"{dotted}{inspect.signature(obj)}: " + "; ".join(problems)
    assert dotted not in SIGNATURE_GAPS, f"{dotted} matches now: drop it from SIGNATURE_GAPS"
