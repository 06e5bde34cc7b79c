"""Forecasts that count what is known (issue 58): answers ``%qfeval``'s store holds are no calls, each
``--prompts`` variant is compared with its own calls, a refused run shows its forecast, and
``--dry-run`` shows it without running (the local platform's app with engine doubles, in process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qfnb.notebook.errors import QfnbCellError
from tests.fakes.local_platform import FakeRegistry, ServedPlatform

ROWS = [{"prompt": p, "response": [["x"]]} for p in ("hello", "two words", "third", "a fourth one")]


@pytest.fixture
def platform(local_platform: ServedPlatform, monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    local_platform.set_env(monkeypatch, QIANFAN_LLM_API_RETRY_COUNT="1")
    return local_platform.registry


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


def calls(registry: FakeRegistry) -> int:
    return sum(len(engine.calls) for engine in registry.engines.values())


def shown(ip) -> list[str]:  # type: ignore[no-untyped-def]
    return [o["data"].get("text/plain", "") for o in ip.display_pub.outputs]


def test_stored_answers_are_no_calls_and_a_dry_run_asks_nothing(ip, platform, data_file, own_record_dir) -> None:  # type: ignore[no-untyped-def]
    line = f"--models Tiny-Chat --dataset {data_file} --metrics exact_match --max-tokens 8"
    ip.run_line_magic("qfeval", line + " --limit 2")  # two answers now in the answer store
    made = calls(platform)
    assert made == 2
    ip.display_pub.outputs.clear()
    assert ip.run_line_magic("qfeval", line + " --dry-run") is None
    assert calls(platform) == made  # a dry run asks no model
    text = shown(ip)
    assert len(text) == 1 and text[0].startswith("Forecast: 2 calls to Tiny-Chat")
    assert "2 of 4 answers known: 0 calls" in text[0] and "2 stored" in text[0]

    report = ip.run_line_magic("qfeval", line + " --forecast")
    (check,) = report.forecast
    assert check.forecast.calls == 2 and check.forecast.known == 2 and check.calls == 2  # the two not stored
    assert calls(platform) == made + 2


def test_each_prompt_variant_is_compared_with_its_own_calls(ip, platform, data_file, own_record_dir) -> None:  # type: ignore[no-untyped-def]
    report = ip.run_line_magic("qfeval", f"--prompts 'a=A: {{input}},b=B: {{input}} please' --model Tiny-Chat "
                                         f"--dataset {data_file} --metrics exact_match --max-tokens 8 --forecast")
    a, b = report.forecast
    assert a.forecast.tag == "a" and b.forecast.tag == "b"
    assert a.calls == b.calls == 4  # each variant's own 4 calls, not both variants' 8
    assert b.prompt_tokens > a.prompt_tokens  # b's prompts are longer: its own rows, not a's
    assert repr(a).startswith("Forecast vs actual of a (4 calls)")


def test_a_refused_run_shows_its_forecast_and_a_dry_run_says_it_would_be_refused(ip, platform, data_file,  # type: ignore[no-untyped-def]
                                                                                   own_record_dir) -> None:
    from qfnb._core.record.budget import budget

    budget(tokens=20)  # 4 items x up to 8 tokens, with their prompts, are more than 20
    line = f"--models Tiny-Chat --dataset {data_file} --metrics exact_match --max-tokens 8"
    with pytest.raises(QfnbCellError, match="may use up to") as err:
        ip.run_line_magic("qfeval", line)  # no --forecast: shown all the same, with the budget's line
    assert err.value.title == "qfeval refused: over budget"
    (table,) = shown(ip)
    assert table.startswith("Forecast: 4 calls to Tiny-Chat") and "budget" in table and "refuses this run" in table
    ip.display_pub.outputs.clear()
    assert ip.run_line_magic("qfeval", line + " --dry-run") is None  # said, not raised
    assert "refuses this run" in shown(ip)[0]
    assert calls(platform) == 0

