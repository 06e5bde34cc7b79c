"""README "A taste": every snippet runs, pasted in order into a fresh IPython shell, against the
local platform's app with engine doubles (chat answers echo the prompt; training is the fast
stand-in worker) on 127.0.0.1, through the real client stack."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qfnb.dataset.demo import HELD_OUT, demo_qa, demo_rows
from tests.fakes.local_platform import FakeRegistry, served_platform

ROOT = Path(__file__).resolve().parents[2]


def taste_snippets() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## A taste", 1)[1].split("\n## ", 1)[0]
    return [m.group(2) for m in re.finditer(r"```(python|)\n(.*?)```", section, re.S)]


@pytest.fixture
def readme_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRegistry]:
    aliases = {"ernie-lite-8k": "Tiny-Chat", "gemma-3-270m": "Tiny-Chat"}  # the README's names
    with served_platform(tmp_path / "data", aliases=aliases) as served:
        served.set_env(monkeypatch)
        monkeypatch.chdir(tmp_path)
        yield served.registry


def test_readme_taste_snippets_run_in_order(ip: Any, readme_platform: FakeRegistry) -> None:
    snippets = taste_snippets()
    assert len(snippets) == 4 and snippets[2].startswith("%%qfchat")
    ns_before = set(ip.user_ns)
    for i, code in enumerate(snippets):
        result = ip.run_cell(code)
        assert result.success, f"README snippet {i + 1} failed: {result.error_in_exec or result.error_before_exec}"
    assert {"topic", "questions", "trainer", "tuned"} <= set(ip.user_ns) - ns_before
    assert Path("answers.jsonl").exists()
    # the %%qfchat prompt was sent with {topic} filled in and the JSON braces as written
    sent = [c for engine in readme_platform.engines.values() for c in engine.calls]
    prompts = [str(c) for c in sent]
    assert any("Explain LoRA fine-tuning in two sentences" in p and '{"summary": "..."}' in p for p in prompts)
    assert ip.user_ns["trainer"].output["service_endpoint"]


def test_demo_split_holds_out_whole_questions() -> None:
    train, test = demo_rows("train"), demo_rows("test")
    assert len(demo_rows("all")) == 60 and len(test) == len(HELD_OUT) == 8
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}, "no test question is trained on"
    assert len(train) + sum(1 for r in demo_rows("all") if r["prompt"] in HELD_OUT) == 60
    assert demo_qa("test").read_text(encoding="utf-8").count("\n") == 8 and demo_qa().name == "demo_sft.jsonl"
    with pytest.raises(ValueError, match="split must be"):
        demo_qa("validation")  # type: ignore[arg-type]
