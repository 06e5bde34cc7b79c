"""The official commands on qfnb's parser: :func:`add_parsers`, the global credential options, and
:func:`run` (a :class:`~qfnb.common.cli._shared.CliError` or a qfnb error: one line on stderr, exit 1)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from qfnb.common.cli import inference, openai_adapter, platform, servers
from qfnb.common.cli._shared import CliError
from qfnb.protocol.version import __version__

#: the official global options and the environment variables they set
GLOBAL_OPTIONS = {"access_key": "QIANFAN_ACCESS_KEY", "secret_key": "QIANFAN_SECRET_KEY",
                  "ak": "QIANFAN_AK", "sk": "QIANFAN_SK"}
#: a long-running server's credentials never come from argv: ``ps`` shows it to every user while the
#: server runs, and ``--detach`` starts the server again with the same argv
ARGV_CREDENTIAL = ("{option} is refused for `qfnb {command}`: argv shows in `ps` to every user of this machine "
                   "for as long as the server runs. Export ${env} instead (with no QIANFAN_* credentials set, "
                   "the server uses the local platform's)")
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {**inference.COMMANDS, **platform.COMMANDS}
SERVERS: dict[str, Callable[[argparse.Namespace, Sequence[str]], int]] = {"openai": openai_adapter.openai,
                                                                           "proxy": servers.proxy}


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """``--access-key/--secret-key/--ak/--sk``, ``--log-level``, ``--enable-traceback``, ``--version``,
    given before the command (``qfnb --ak ... chat``), as the official CLI takes them."""
    group = parser.add_argument_group("credentials (default: the QIANFAN_* environment, else the local platform)")
    group.add_argument("--access-key", dest="g_access_key", help="IAM access key")
    group.add_argument("--secret-key", dest="g_secret_key", help="IAM secret key")
    group.add_argument("--ak", dest="g_ak", help="API key of a Qianfan app")
    group.add_argument("--sk", dest="g_sk", help="secret key of a Qianfan app")
    parser.add_argument("--log-level", dest="g_log_level", default="WARN",
                        choices=["DEBUG", "INFO", "WARN", "ERROR", "TRACE"], help="log level (default WARN)")
    parser.add_argument("--enable-traceback", dest="g_traceback", action="store_true",
                        help="print the traceback of an error")
    parser.add_argument("--version", "-v", action="version", version=__version__, help="print the version")


def apply_global_options(args: argparse.Namespace) -> None:
    """The global credentials go to the environment, where qfnb's config reads them."""
    for name, variable in GLOBAL_OPTIONS.items():
        value = getattr(args, f"g_{name}", None)
        if value:
            os.environ[variable] = value
    level = getattr(args, "g_log_level", "WARN")
    logging.basicConfig(level={"TRACE": "DEBUG", "WARN": "WARNING"}.get(level, level),
                        format="%(levelname)s %(name)s: %(message)s")


def refuse_argv_credentials(args: argparse.Namespace) -> None:
    """A server (``openai``, ``proxy``) given a global credential option: refused, naming it."""
    for name, variable in GLOBAL_OPTIONS.items():
        if getattr(args, f"g_{name}", None):
            raise CliError(ARGV_CREDENTIAL.format(option="--" + name.replace("_", "-"), command=args.command,
                                                  env=variable))


def add_parsers(sub: Any) -> None:
    inference.add_parsers(sub)
    platform.add_parsers(sub)
    servers.add_parsers(sub)


def handles(command: str) -> bool:
    return command in COMMANDS or command in SERVERS


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run an official command; ``argv`` is the command line (``--detach`` re-runs it)."""
    from qfnb._core.errors import QfnbError  # deferred: `qfnb --help` does without it (1 module)

    try:
        if args.command in SERVERS:
            refuse_argv_credentials(args)  # before they reach the environment
            apply_global_options(args)
            return SERVERS[args.command](args, argv)
        apply_global_options(args)
        return COMMANDS[args.command](args)
    except (CliError, QfnbError, ValueError, OSError) as exc:
        if getattr(args, "g_traceback", False):
            raise
        print(f"qfnb {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
