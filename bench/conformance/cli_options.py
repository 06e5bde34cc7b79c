"""Write ``tests/cli/official_cli_options.json``: every option the official CLI's reference
(``docs/cli.md`` of bce-qianfan-sdk at ``py/v0.4.12.3``) documents, by command, which
``tests/cli/test_official_cli_options.py`` requires qfnb's parser to accept.

    .venv/bin/python bench/conformance/cli_options.py PATH/TO/official/docs/cli.md
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent.parent / "tests/cli/official_cli_options.json"
USAGE = re.compile(r"^\$ qianfan (.*?)\s*\[OPTIONS\]")
OPTION = re.compile(r"^\* `([^`]+)`")


def commands(usage: str) -> list[str]:
    """``trainer [finetune|postpretrain|dpo]`` -> the three commands; ``chat`` -> ``chat``."""
    alternatives = re.search(r"\[([a-z|]+)\]", usage)
    if alternatives is None:
        return [usage.strip()]
    head = usage[:alternatives.start()].strip()
    return [f"{head} {name}".strip() for name in alternatives.group(1).split("|")]


def options(spec: str) -> list[str]:
    """``--multi-line / --no-multi-line`` -> both; ``--trainer-pipeline-file,-f TEXT`` -> both."""
    return [t for t in re.split(r"[\s,/]+", spec) if t.startswith("-") and t not in ("--help", "-h")] \
        if not spec.startswith("--host") else [t for t in re.split(r"[\s,/]+", spec) if t.startswith("-")]


def parse(text: str) -> dict[str, dict[str, list[str]]]:
    """``{command: {option: its documented choices ([] for a free value or a flag)}}``."""
    found: dict[str, dict[str, list[str]]] = {}
    current = [""]
    for line in text.splitlines():
        usage = USAGE.match(line)
        if usage:
            current = commands(usage.group(1).replace("COMMAND [ARGS]...", ""))
            continue
        option = OPTION.match(line)
        if option and option.group(1).startswith("-"):
            choices = re.search(r"\[([a-z_0-9|]+)\]", option.group(1))
            for command in current:
                for name in options(option.group(1).split("[")[0]):
                    found.setdefault(command, {})[name] = choices.group(1).split("|") if choices else []
    return found


def main() -> int:
    text = Path(sys.argv[1]).read_text(encoding="utf-8")
    OUT.write_text(json.dumps(parse(text), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
