"""The CLI replay bench's parts that need neither the official venv nor a platform: how it finds the
documented examples and fills their placeholders, and how it judges two outcomes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "conformance"))

from cli_replay import (  # the bench folder is on the path (above)
    QUESTION,
    Outcome,
    compare,
    compare_help,
    examples_from_markdown,
    examples_from_notebook,
    expand,
)

DOC = """Intro `qianfan chat --list-model` and `qianfan.ChatCompletion()` (a Python call, not a command).

```console
$ qianfan trainer [finetune|postpretrain|dpo] [OPTIONS]
```

1. pip install qianfan
2. qianfan proxy

```shell
export OPENAI_API_KEY=x
qianfan api raw.console --route /v2/model --action DescribeSystemModelSets --data {}
```
"""


def test_examples_are_found_in_code_blocks_numbered_steps_and_inline_code() -> None:
    lines = [e.line for e in examples_from_markdown(DOC, "docs/x.md")]
    assert lines == ["chat --list-model", "trainer [finetune|postpretrain|dpo] [OPTIONS]", "proxy",
                     "api raw.console --route /v2/model --action DescribeSystemModelSets --data {}"]
    notebook = {"cells": [{"cell_type": "code", "source": ["!qianfan trainer finetune -l\n"]},
                          {"cell_type": "code", "source": ['server = sp.Popen("qianfan openai -p 8001", shell=True)']},
                          {"cell_type": "markdown", "source": ["run `qianfan openai` first"]}]}
    assert [e.line for e in examples_from_notebook(json.dumps(notebook), "nb.ipynb")] == [
        "trainer finetune -l", "openai -p 8001", "openai"]


def test_usage_lines_are_filled_and_alternatives_expanded() -> None:
    assert expand("trainer [finetune|postpretrain|dpo] [OPTIONS]") == [
        "trainer finetune", "trainer postpretrain", "trainer dpo"]
    assert expand("completion [OPTIONS] PROMPTS...") == [f"completion '{QUESTION}'"]
    assert expand("dataset save [OPTIONS] SRC [DST]") == ["dataset save qa.jsonl saved.jsonl"]
    assert expand("[OPTIONS] COMMAND [ARGS]...") == [""]


def test_outcomes_are_judged_by_what_happened_not_by_the_exit_status_alone() -> None:
    answered = Outcome(0, "Model response:\nThe capital of France is Paris.")
    assert compare(answered, Outcome(0, "The capital of France is Paris.")).startswith("match: same text")
    assert compare(answered, Outcome(0, "Rome.")).startswith("differs: qfnb printed 'Rome.'")
    # the official CLI prints many errors and exits 0: still a refusal
    official_error = Outcome(0, "ERROR: api return error, code: 3")
    assert compare(official_error, Outcome(1, "qfnb api: error code 3")) == \
        "match: both refuse (the official CLI exits 0 on this error); qfnb: qfnb api: error code 3"
    assert compare(answered, Outcome(1, "qfnb chat: boom")) == "differs: qfnb refused: qfnb chat: boom"
    assert compare(Outcome(0, "", {".jsonl": "3 rows"}), Outcome(0, "", {})).startswith("differs: files")


def test_help_is_judged_by_the_commands_it_lists_and_files_by_their_rows() -> None:
    official = "Usage: qianfan dataset [OPTIONS] COMMAND [ARGS]...\nCommands\ndownload   Download.\ninsight   Insight."
    assert compare_help(official, "usage: qfnb dataset [-h] {download,insight} ...") == \
        "match: both print help, the same commands"
    assert compare_help(official, "usage: qfnb dataset [-h] {download} ...") == "differs: help without insight"
    same = {".jsonl": "3 rows"}
    assert compare(Outcome(0, "SUCCESS: saved", same), Outcome(0, "saved", same)) == f"match: same files {same}"
    assert compare(Outcome(0, "", same), Outcome(0, "", {".jsonl": "2 rows"})).startswith("differs: files")
