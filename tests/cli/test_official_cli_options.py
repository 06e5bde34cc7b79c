"""Every option (and choice) the official CLI's reference documents is accepted by qfnb's parser for
the same command. The list (``official_cli_options.json``) is written from the official
``docs/cli.md`` (0.4.12.3) by ``bench/conformance/cli_options.py``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from qfnb.cli import build_parser

DOCUMENTED: dict[str, dict[str, list[str]]] = json.loads(
    (Path(__file__).parent / "official_cli_options.json").read_text("utf-8"))
#: documented options qfnb leaves out, and why
LEFT_OUT = {("", "--install-shell-autocomplete"): "typer's shell completion (argparse has none built in)",
            ("", "--show-shell-autocomplete"): "typer's shell completion"}


def _parser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in command.split():
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return parser


@pytest.mark.parametrize("command", sorted(DOCUMENTED))
def test_the_documented_options_are_accepted(command: str) -> None:
    actions = {s: a for a in _parser(command)._actions for s in a.option_strings}
    missing = [o for o in DOCUMENTED[command] if o not in actions and (command, o) not in LEFT_OUT]
    assert not missing, f"qfnb {command} lacks the official options {missing}"
    for option, choices in DOCUMENTED[command].items():
        if choices:
            accepted = actions[option].choices or ()
            assert set(choices) <= set(accepted), f"qfnb {command} {option}: {set(choices) - set(accepted)}"


def test_the_list_covers_the_documented_commands() -> None:
    assert {"chat", "completion", "txt2img", "plugin", "dataset save", "trainer finetune", "trainer dpo",
            "evaluation run", "openai", "api raw.console"} <= set(DOCUMENTED)
