"""Extracting the official SDK docs' python blocks and applying the documented mechanical edits.

The edits, and only these: ``qianfan`` -> ``qfnb``; placeholder ids (``"amv-xx"``, ``5862``...)
-> ids the test created on the local platform (given as Python expressions over ``SEED_IDS``);
top-level ``await`` compiled with ``PyCF_ALLOW_TOP_LEVEL_AWAIT`` and run on an event loop;
``input()`` replaced by a scripted user who types twice and then ends the conversation.
"""

from __future__ import annotations

import ast
import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FENCE = re.compile(r"```python\n(.*?)```", re.S)


@dataclass
class Block:
    seed: str  # "003"
    index: int  # 1-based within its seed
    source: str

    @property
    def id(self) -> str:
        return f"{self.seed}#{self.index}"


@dataclass
class Seeds:
    root: Path
    blocks: list[Block] = field(default_factory=list)
    text: dict[str, str] = field(default_factory=dict)


def seeds_dir(repo_root: Path) -> Path:
    """``<repo root>/../shared/seeds`` (the shared seed docs beside the checkout), or
    ``$QFNB_SEEDS_DIR`` where set (a worktree elsewhere)."""
    import os

    given = os.environ.get("QFNB_SEEDS_DIR")
    return Path(given) if given else repo_root.parent / "shared" / "seeds"


def load(root: Path) -> Seeds:
    out = Seeds(root)
    for path in sorted(root.glob("[0-9][0-9][0-9]_*.txt")):
        seed = path.name[:3]
        text = path.read_text(encoding="utf-8")
        out.text[seed] = text
        for i, m in enumerate(FENCE.finditer(text), 1):
            out.blocks.append(Block(seed, i, m.group(1)))
    return out


def to_qfnb(source: str) -> str:
    """The import edit: every ``qianfan`` module reference becomes ``qfnb``."""
    return re.sub(r"\bqianfan\b(?=[.\s]|$)", "qfnb", source, flags=re.M)


def edit(source: str, placeholders: dict[str, str]) -> str:
    out = to_qfnb(source)
    for literal, expr in placeholders.items():
        out = out.replace(literal, expr)
    return out


class EndOfConversation(Exception):
    """The scripted user stopped typing (ends the seed's ``while True: input()`` loop)."""


def scripted_input(lines: list[str]) -> Any:
    it = iter(lines)

    def _input(prompt: str = "") -> str:
        try:
            return next(it)
        except StopIteration:
            raise EndOfConversation from None

    return _input


def placeholders(ids: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Per seed: literal placeholder in the docs -> the id the fixture created (as Python)."""
    vid, mid, did = repr(ids["version_id"]), repr(ids["model_id"]), repr(ids["dataset_id"])
    meta = f'{{"taskId": {ids["task_id"]!r}, "iterationId": {ids["job_id"]!r}}}'
    return {
        "000": {'"amv-xxx"': vid, '"amv-xx"': vid, '"ds-xxx"': did, '"ds-xx"': did},
        "001": {"model_id = 5862": f"model_id = {mid}", "model_version_id = 5659": f"model_version_id = {vid}",
                '{"taskId": 9220, "iterationId": 5234}': meta, '"modelId": 2259': f'"modelId": {mid}',
                '"modelId": 2258': f'"modelId": {mid}', '"modelVersionId": 2744': f'"modelVersionId": {vid}',
                '"modelVersionId": 2743': f'"modelVersionId": {vid}', "14666": did,
                "eval_id=14670": "eval_id=SEED_EVAL_ID"},
        "002": {'"id": 1234': f'"id": {did}', "model_id = 5862": f"model_id = {mid}",
                "model_version_id = 5659": f"model_version_id = {vid}",
                '{"taskId": 9220, "iterationId": 5234}': meta, "model_id=123": f"model_id={mid}",
                "model_version_id=456": f"model_version_id={vid}", "id = 2047": f"id = {ids['service_id']!r}"},
        "003": {'"your_custom_endpoint"': repr(ids["endpoint"])},
        # a custom embedding endpoint: the platform's own embedder's
        "003#4": {'"your_custom_endpoint"': repr("tiny-embed")},
    }


def run(source: str, namespace: dict[str, Any]) -> None:
    """Run a block in ``namespace``; top-level ``await`` runs on a fresh event loop."""
    code = compile(source, "<seed block>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)  # the seed docs' own examples, run as a test
    if asyncio.iscoroutine(result):
        asyncio.run(result)
