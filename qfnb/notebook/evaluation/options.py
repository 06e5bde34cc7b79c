"""The options of ``%qfeval`` beyond the run itself: ``--recorded`` sources, the judge guardrail and
``--batch``'s ``--target``, checked before any model is called (problems raise :class:`EvalArgsError`
naming the option)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qfnb.protocol.console.textmetrics import as_text
from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.platform.targets import TargetError
from qfnb.resources.targets import JobTarget, parse_target

#: qfnb's errors that name the field at fault (``field``): ``ValidationError`` is a ``ProtocolError``
FIELD_ERRORS = (ProtocolError, TargetError)


class EvalArgsError(ValueError):
    """A bad ``%qfeval`` argument, found before any model is called."""


def reason(exc: Exception) -> str:
    """The message of a qfnb error that names its field (a ``ValidationError``, a target's error) without
    its ``field: `` prefix."""
    text, name = str(exc), exc.field if isinstance(exc, FIELD_ERRORS) else None
    return text[len(name) + 2:] if name and text.startswith(f"{name}: ") else text


def batch_target(given: str | None) -> JobTarget | None:
    """``--target`` (else ``QFNB_TARGET``): where ``--batch``'s jobs run, parsed before anything is sent."""
    try:
        return parse_target(given, field="--target")
    except ValueError as exc:
        raise EvalArgsError(str(exc)) from None


def check_judges(judges: Sequence[Any], llms: Mapping[str, Any], recorded: Mapping[str, Any]) -> None:
    """A judge must not be one of the candidates (before any model is called)."""
    # deferred: these load pandas (`%load_ext qfnb` does not)
    from qfnb.evaluation.evaluators.judge import LocalJudgeEvaluator
    from qfnb.evaluation.evaluators.pairwise import PairwiseJudge, check_not_candidate
    from qfnb.evaluation.llm import PromptVariant, as_target, target_identity

    candidates: list[tuple[str, str | None]] = [
        (tag, target_identity(as_target(llm, tag))) for tag, llm in llms.items()]
    # a prompt variant's model answers too: it must not judge its own answers under another prompt
    candidates += [(tag, target_identity(as_target(llm.model, tag))) for tag, llm in llms.items()
                   if isinstance(llm, PromptVariant)]
    candidates += [(tag, None) for tag in recorded]
    for judge in judges:
        if isinstance(judge, LocalJudgeEvaluator | PairwiseJudge):
            try:
                check_not_candidate(judge, candidates)
            except ValueError as exc:
                raise EvalArgsError(f"--judge/--pairwise: {reason(exc)}") from None


def parse_recorded(words: Sequence[str]) -> dict[str, str]:
    """``TAG=SOURCE`` (or a bare column name, its own tag) -> ``{tag: source}``."""
    out: dict[str, str] = {}
    for word in words:
        tag, sep, src = word.partition("=")
        tag, src = (tag.strip(), src.strip()) if sep else (word, word)
        if not tag or not src:
            raise EvalArgsError(f"--recorded: {word!r} should be TAG=COLUMN_OR_FILE or a column name")
        if tag in out:
            raise EvalArgsError(f"--recorded: {tag!r} given more than once")
        out[tag] = src
    return out


def check_recorded(recorded: dict[str, str], dataset: Any, limit: int | None,
                   namespace: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Each source is a dataset column, a notebook variable (what ``%qfbatch`` returned, its
    ``-o`` BatchJob, a DataFrame, a list of answers) or an existing file (a clear error if none)."""
    if not recorded:
        return {}
    from qfnb.evaluation.data import to_frame  # deferred: loads pandas (`%load_ext qfnb` does not)

    source = to_frame(dataset)
    columns = list(source.columns)
    out: dict[str, Any] = {}
    for tag, src in recorded.items():
        if src in columns:  # the answers themselves: the frame the run sees has no such column
            out[tag] = [as_text(v) for v in source[src]][:limit]
            continue
        if namespace is not None and src.isidentifier() and src in namespace:
            out[tag] = namespace[src]
            continue
        path = Path(src).expanduser()
        if not path.exists():
            raise EvalArgsError(f"--recorded: {src!r} is neither a dataset column ({columns}), a notebook "
                                "variable nor a file")
        out[tag] = path
    return out


#: ``a=P1,b=P2``: a comma starts the next variant only before ``NAME=`` (a template may hold commas)
_NEXT_VARIANT = re.compile(r",(?=\s*[A-Za-z_][\w.-]*\s*=)")


def parse_prompts(values: Sequence[str] | None, namespace: Mapping[str, Any]) -> dict[str, str]:
    """``--prompts NAME=PROMPT,...`` -> ``{name: prompt text}``. A PROMPT is a notebook variable holding
    a string, a file (its text), or a template string with ``{input}``; anything else is an error."""
    out: dict[str, str] = {}
    for value in values or []:
        for word in _NEXT_VARIANT.split(value):
            name, sep, src = (part.strip() for part in word.partition("="))
            if not sep or not name or not src:
                raise EvalArgsError(f"--prompts: {word.strip()!r} should be NAME=PROMPT (a variable, a file, or "
                                    "a template with {input})")
            if name in out:
                raise EvalArgsError(f"--prompts: {name!r} given more than once")
            out[name] = _prompt_text(name, src, namespace)
    if len(out) == 1:
        raise EvalArgsError("--prompts compares prompts: give at least two (NAME=PROMPT,NAME=PROMPT)")
    return out


def _prompt_text(name: str, src: str, namespace: Mapping[str, Any]) -> str:
    if src.isidentifier() and src in namespace:
        value = namespace[src]
        if not isinstance(value, str) or not value.strip():
            raise EvalArgsError(f"--prompts: {name}={src}: the variable holds a {type(value).__name__}, not a "
                                "prompt string")
        return value
    if "{input}" in src:
        return src
    path = Path(src).expanduser()
    if path.is_file():
        text = path.read_text(encoding="utf-8").strip()
        if not text:
            raise EvalArgsError(f"--prompts: {name}={src}: the file is empty")
        return text
    raise EvalArgsError(f"--prompts: {name}={src}: neither a notebook variable, a file, nor a template with "
                        "{input}")
