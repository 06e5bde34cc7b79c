"""What every official command shares: the model options, checked JSON, errors and output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any

from qfnb.common.cli.sampling_flags import SAMPLING_FLAGS

#: an official ``--x / --no-x`` flag, off by default
FLAG: dict[str, Any] = {"action": argparse.BooleanOptionalAction, "default": False}


class CliError(Exception):
    """A problem the user can fix; printed as ``qfnb <command>: <message>``, exit status 1."""


def json_object(option: str, text: str | None) -> dict[str, Any]:
    """``text`` parsed as a JSON object, or a :class:`CliError` naming ``option``."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CliError(f"{option} must be a JSON object, got {type(value).__name__}")
    return value


def add_target(parser: argparse.ArgumentParser, what: str, *, many: bool = False) -> None:
    """``--model`` / ``--endpoint`` (``many``: comma-separated lists, as the official ``chat``)."""
    split = " Use comma(,) to split multiple." if many else ""
    parser.add_argument("--model", default=None,
                        help=f"model name of the {what} model (default: the platform's).{split}")
    parser.add_argument("--endpoint", default=None,
                        help=f"endpoint of the {what} model; overrides --model.{split}")


def add_sampling(parser: argparse.ArgumentParser, *, top_k: bool = False) -> None:
    """The official model arguments every chat-like command takes."""
    group = parser.add_argument_group("model arguments (some are not supported by every model)")
    for flag, field, kind, text in SAMPLING_FLAGS:
        if field != "top_k" or top_k:
            group.add_argument(flag, dest=field, type=kind, help=text)
    group.add_argument("--system", help="persona setting for the model")
    group.add_argument("--stop", help="stop words, comma-separated")


def add_search_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("search")
    group.add_argument("--disable-search", action=argparse.BooleanOptionalAction, default=None,
                       help="disable search")
    group.add_argument("--enable-citation", action=argparse.BooleanOptionalAction, default=None,
                       help="enable citation")


#: the official CLI's request fields that v1 chat's spec does not declare (sent as given)
CLI_ONLY_FIELDS = ("appid", "preemptible")


def sampling_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The model arguments given: each flag named after a field v1 chat takes (the spec's,
    ``V1_CHAT_FIELDS``) or one of :data:`CLI_ONLY_FIELDS` (none set: an empty dict, so the model's
    defaults apply). ``--stop`` is split here, ``--extra-parameters`` read as JSON by the command."""
    # deferred: loads pydantic (`qfnb --help` does not)
    from qfnb.protocol.wires.qianfan.inference import V1_CHAT_FIELDS

    names = [n for n in (*V1_CHAT_FIELDS, *CLI_ONLY_FIELDS) if n not in ("stop", "extra_parameters")]
    kwargs = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    if getattr(args, "stop", None):
        kwargs["stop"] = [s for s in args.stop.split(",") if s]
    return kwargs


def split_list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def emit(text: str) -> None:
    """A piece of an answer on stdout, at once (streaming output)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def read_messages(multi_line: bool, prompt: str = "> ") -> Iterable[str]:
    """User messages from stdin: one per line, or (``multi_line``) blocks ended by an empty line.
    A terminal shows ``prompt``; a pipe feeds its lines silently, as a script would."""
    interactive = sys.stdin.isatty()
    block: list[str] = []
    while True:
        if interactive and not block:
            emit(prompt)
        line = sys.stdin.readline()
        if not line:
            if block:
                yield "\n".join(block)
            return
        line = line.rstrip("\n")
        if not multi_line:
            if line.strip():
                yield line.strip()
            continue
        if line.strip():
            block.append(line)
        elif block:
            yield "\n".join(block)
            block = []
