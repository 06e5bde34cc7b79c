"""The ``qfnb`` command (also installed as ``qianfan``): ``serve`` (the local platform),
``start``/``status``/``stop`` (its daemon), ``models``, and the official SDK's commands
(``chat``, ``dataset``, ``trainer``, ... from :mod:`qfnb.common.cli`)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfnb import cli_models
from qfnb.common.cli import main as official
from qfnb.common.cli._shared import CliError
from qfnb.protocol.platform.netguard import is_loopback

if TYPE_CHECKING:
    from qfnb.local.engines.api import RegistryLike
    from qfnb.local.engines.options import EngineOptions
    from qfnb.local.settings import Settings
    from qfnb.protocol.platform.daemon import DaemonStatus



#: the platform's credentials a hand-run ``qfnb serve`` takes, and the global option that gives each
#: (its variable: ``official.GLOBAL_OPTIONS``)
_SERVE_CREDENTIALS = {"api_key": "ak", "secret_key": "sk", "access_key": "access_key", "iam_secret_key": "secret_key"}
#: where else a server reads its credentials than the environment (added to an argv refusal)
_CREDENTIALS_FILE = {"serve": "; or keep them in <data dir>/credentials.json (mode 0600), which qfnb serve reads "
                              "and generates when absent"}
#: where ``qfnb mcp --http`` reads its key (else ``--key-file``, else the generated one)
MCP_KEY_ENV = "QFNB_MCP_KEY"
#: what a non-loopback bind asks of the keys it is given
MIN_SECRET_CHARS, MIN_SECRET_DISTINCT, MIN_KEY_CHARS = 24, 10, 8


def public_bind_problem(given: dict[str, str | None]) -> str | None:
    """Why the given keys may not guard a non-loopback address (None: they may)."""
    if not (given["access_key"] and given["iam_secret_key"]):
        return "a non-loopback address needs an access key and secret key (QIANFAN_ACCESS_KEY/QIANFAN_SECRET_KEY)"
    for name, option in (("access_key", "QIANFAN_ACCESS_KEY"), ("api_key", "QIANFAN_AK")):
        value = given[name]
        if value and len(value) < MIN_KEY_CHARS:
            return f"{option} is too short for a non-loopback address (at least {MIN_KEY_CHARS} characters)"
    for name, option in (("iam_secret_key", "QIANFAN_SECRET_KEY"), ("secret_key", "QIANFAN_SK")):
        value = given[name]
        if value and (len(value) < MIN_SECRET_CHARS or len(set(value)) < MIN_SECRET_DISTINCT):
            return (f"{option} is too weak for a non-loopback address (at least {MIN_SECRET_CHARS} characters, "
                    f"{MIN_SECRET_DISTINCT} different ones)")
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=Path(sys.argv[0]).name if sys.argv[0].endswith("qianfan") else "qfnb",
                                     description="qfnb: the Qianfan platform in Jupyter")
    official.add_global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the local Qianfan-compatible platform")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8866, help="port (default 8866; 0 picks a free one)")
    serve.add_argument("--data-dir", type=Path, default=None, help="state dir (default $QFNB_DATA_DIR or ~/.qfnb)")
    for option in ("--ak", "--sk", "--access-key", "--secret-key"):  # refused: argv shows in `ps`
        serve.add_argument(option, help=argparse.SUPPRESS)
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--daemon", action="store_true",
                       help="run as the data dir's shared background service (write runtime.json; what "
                            "qfnb starts by itself when no credentials are configured)")
    serve.add_argument("--engine", action="append", default=[], metavar="NAME=URL",
                       help="serve model NAME with an OpenAI-compatible engine at URL (vLLM, llama.cpp's "
                            "server, Ollama), e.g. --engine Qwen2.5-7B=http://gpu-box:8000/v1 (repeatable; "
                            "also $QFNB_ENGINES as a JSON object)")
    serve.add_argument("--slots", type=int, default=None,
                       help="parallel requests per local engine (default: 4 per core, 4-16; $QFNB_ENGINE_SLOTS)")
    serve.add_argument("--idle-stop", type=float, default=None, metavar="SECONDS",
                       help="stop a local engine unused this long (default 600; $QFNB_ENGINE_IDLE_SECONDS)")
    # for tests and custom engines: a ``module:callable`` returning the engine registry, and the
    # argv prefix that runs one training task
    serve.add_argument("--registry", help=argparse.SUPPRESS)
    serve.add_argument("--worker-command", help=argparse.SUPPRESS)
    for name, text in (("start", "start the data dir's background platform (if none runs) and print where it is"),
                       ("status", "show the background platform of a data dir"),
                       ("stop", "stop the background platform of a data dir")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--data-dir", type=Path, default=None, help="state dir (default $QFNB_DATA_DIR or ~/.qfnb)")
        if name == "stop":
            cmd.add_argument("--force", action="store_true", help="stop even while fine-tunes or evaluations run")

    mcp = sub.add_parser("mcp", help="serve the platform's abilities (chat, embeddings, rerank, datasets, "
                                     "evaluations) as an MCP server, over stdio or streamable HTTP")
    mcp.add_argument("--http", action="store_true", help="streamable HTTP at http://HOST:PORT/mcp instead of stdio")
    mcp.add_argument("--host", default="127.0.0.1", help="loopback address to bind with --http (default 127.0.0.1)")
    mcp.add_argument("--port", type=int, default=8765, help="port with --http (default 8765)")
    mcp.add_argument("--key-file", type=Path, default=None,
                     help="a 0600 file holding the key clients send with --http as Authorization: Bearer "
                          "(default $QFNB_MCP_KEY, else one generated into <data dir>/adapters/mcp.key, printed once)")

    cli_models.add_parser(sub)
    official.add_parsers(sub)
    return parser


def refuse_argv_secrets(args: argparse.Namespace) -> str | None:
    """Why a long-running server (``serve``, ``mcp``) may not start with a credential on argv (``ps``
    shows it to every user for the server's whole life), naming the option; None when none is given."""
    try:
        official.refuse_argv_credentials(args)
    except CliError as exc:
        return str(exc) + _CREDENTIALS_FILE.get(args.command, "")
    for option in _SERVE_CREDENTIALS.values():
        if getattr(args, option, None):
            return official.ARGV_CREDENTIAL.format(option="--" + option.replace("_", "-"), command=args.command,
                                                   env=official.GLOBAL_OPTIONS[option]) + _CREDENTIALS_FILE["serve"]
    return None


def mcp_serve(args: argparse.Namespace) -> int:
    """``qfnb mcp``: the MCP server until stopped; over HTTP only loopback, and only with its key."""
    if args.http and not is_loopback(args.host):
        print(f"qfnb mcp: --host {args.host} is not a loopback address; the MCP server binds only loopback "
              "addresses (127.0.0.1, ::1, localhost)", file=sys.stderr)
        return 2
    try:
        from qfnb.agents import mcp_server  # deferred: the mcp package is an extra, and `qfnb --help` skips it
    except ImportError as exc:
        print(f"qfnb mcp needs the mcp package: pip install 'qfnb[mcp]' ({exc})", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    if not args.http:
        mcp_server.serve()
        return 0
    import uvicorn

    from qfnb.common.cli import adapter_guard  # deferred: `qfnb --help` does without it

    try:
        key, created = adapter_guard.adapter_secret("mcp", MCP_KEY_ENV, args.key_file)
    except CliError as exc:
        print(f"qfnb mcp: {exc}", file=sys.stderr)
        return 2
    app = adapter_guard.RequestGuard(mcp_server.http_app(args.host), refusal=_mcp_refusal,
                                     key_ok=adapter_guard.bearer_key(key))
    where = f"http://{args.host}:{args.port}/mcp"
    shown = (f"key {key} (kept in {created}, mode 0600; printed this once)" if created else
             f"the key in {args.key_file}" if args.key_file else f"the key in ${MCP_KEY_ENV}" if os.environ.get(
                 MCP_KEY_ENV) else "the key in <data dir>/adapters/mcp.key")
    print(f"qfnb MCP server at {where}: clients send Authorization: Bearer <{shown}>", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _mcp_refusal(status: int, code: str, message: str) -> dict[str, Any]:
    """A refused MCP request as a JSON-RPC error (what an MCP client reads)."""
    return {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": f"{code}: {message}"}}


def _load_registry(spec: str | None) -> RegistryLike | None:
    """``--registry module:factory``: the registry the factory makes (None: the real engines)."""
    if not spec:
        return None
    import importlib

    module, _, attr = spec.partition(":")
    factory: Callable[[], RegistryLike] = getattr(importlib.import_module(module), attr)
    return factory()


def _engine_options(args: argparse.Namespace, options: EngineOptions) -> EngineOptions:
    """The environment's engine options with ``--engine``, ``--slots`` and ``--idle-stop`` applied."""
    from qfnb.local.engines.registry import parse_external  # deferred: loads httpx (`qfnb --help` does not)

    external = dict(options.external)
    for item in args.engine:
        name, sep, url = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--engine takes NAME=URL, got {item!r}")
        external.update(parse_external({name.strip(): url.strip()}))
    changes: dict[str, Any] = {"external": external}
    if args.slots is not None:
        if args.slots < 1:
            raise ValueError(f"--slots must be at least 1, got {args.slots}")
        changes["slots"] = args.slots
    if args.idle_stop is not None:
        changes["idle_seconds"] = args.idle_stop
    return dataclasses.replace(options, **changes)


def _human_bytes(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def start(args: argparse.Namespace) -> int:
    # deferred: loads the daemon's client (`qfnb --help` does not)
    from qfnb._core.backend.daemon import DaemonError, ensure_daemon

    try:
        platform = ensure_daemon(args.data_dir)
    except DaemonError as exc:
        print(f"qfnb: {exc}", file=sys.stderr)
        return 1
    print(f"qfnb local platform {platform.version} at {platform.base_url} (pid {platform.pid}, data in "
          f"{platform.data_dir})")
    return 0


def _answered(info: DaemonStatus) -> str:
    """``qfnb status``' answered calls: their total and each model's."""
    if not info.answered_calls:
        return "none since it started"
    return (f"{sum(info.answered_calls.values())} since it started ("
            + ", ".join(f"{m} {n}" for m, n in sorted(info.answered_calls.items())) + ")")


def status(args: argparse.Namespace) -> int:
    from qfnb._core.backend.daemon import daemon_status  # deferred: loads the daemon's client (`qfnb --help` does not)

    info = daemon_status(args.data_dir)
    if info is None:
        print("qfnb: no local platform is running for this data dir")
        return 3
    jobs = ", ".join(f"{j.kind} {j.id} ({j.status})" for j in info.jobs_running) or "none"
    engines = ", ".join(f"{e.model} {e.state} ({e.busy}/{e.slots} busy, {e.queued} queued)"
                        for e in info.engines) or "none running"
    calls = (f"{info.model_calls_total} since it started ("
             + ", ".join(f"{m} {n}" for m, n in sorted(info.model_calls.items())) + ")"
             if info.model_calls else "none since it started")
    print(f"url            {info.url}\nOpenAI API     base_url {info.url.rstrip('/')}/v1 (/v2 serves the same); "
          "a client with its key: qfnb.openai_client(), the key alone: "
          "python -c 'import qfnb; print(qfnb.openai_client().api_key)'\n"
          f"pid            {info.pid}\nversion        {info.version}\n"
          f"uptime         {info.uptime_seconds:.0f} s\ndata dir       {info.data_dir}\n"
          f"models loaded  {', '.join(info.models_loaded) or 'none'}\n"
          f"engines        {engines}\n"
          f"jobs running   {jobs}\n"
          f"answered calls {_answered(info)}: as the ledger (%qfusage) and /metrics' 2xx requests count them\n"
          f"model calls    {calls}: requests an engine admitted, each try of a retried call counted "
          "(/metrics counts each HTTP request by status: docs/observability.md)\n"
          f"memory         {_human_bytes(info.memory_bytes)} (+ {_human_bytes(info.child_memory_bytes)} "
          "in engines and workers)")
    return 0


def stop(args: argparse.Namespace) -> int:
    from qfnb._core.backend import DaemonError  # deferred: as the daemon's client below
    from qfnb._core.backend.daemon import stop_daemon  # deferred: loads the daemon's client (`qfnb --help` does not)

    try:
        result = stop_daemon(args.data_dir, force=args.force)
    except (DaemonError, ConnectionError, OSError) as exc:  # one line, never a traceback
        print(f"qfnb: could not stop the local platform: {exc}", file=sys.stderr)
        return 1
    if result.get("running"):
        jobs = ", ".join(j["id"] for j in result.get("jobsRunning", []))
        print(f"qfnb: not stopping: work is running ({jobs}); `qfnb stop --force` stops it too", file=sys.stderr)
        return 1
    print("qfnb: stopped the local platform" if result.get("stopped") else "qfnb: no local platform was running")
    return 0


def serve(args: argparse.Namespace) -> int:

    os.umask(0o077)  # everything the platform writes (state, logs, job folders, objects) is private
    import shlex

    from qfnb.local.settings import Settings, default_data_dir  # deferred: loads httpx (`qfnb --help` does not)

    data_dir = (args.data_dir or default_data_dir()).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # the daemon serves 127.0.0.1 with the data dir's own keys, which its clients read from there
    settings = Settings.from_env(data_dir=data_dir) if args.daemon else _foreground_settings(args, data_dir)
    if settings is None:
        return 2
    if args.worker_command:
        settings = dataclasses.replace(settings, worker_command=tuple(shlex.split(args.worker_command)))
    try:
        settings = dataclasses.replace(settings, engine_options=_engine_options(args, settings.engine_options))
    except ValueError as exc:
        print(f"qfnb serve: {exc}", file=sys.stderr)
        return 2
    registry = _load_registry(args.registry)
    if args.daemon:
        from qfnb.local.server import daemon  # deferred: loads pydantic and starlette (`qfnb --help` does not)

        return daemon.run(settings, port=args.port, registry=registry, log_level=args.log_level)

    from qfnb.local.server.app import create_app  # deferred: loads pydantic and starlette (`qfnb --help` does not)
    from qfnb.local.server.middleware.guard import host_guard  # deferred: loads starlette (`qfnb --help` does not)
    from qfnb.local.server.quiet import QuietServer, platform_config  # deferred: loads uvicorn

    app = create_app(settings, registry)
    # on a loopback address, as the daemon: only a loopback Host/Origin may call it (DNS rebinding, web pages);
    # on a network address: no web page may
    server = QuietServer(platform_config(host_guard(app, args.host), args.log_level))
    try:
        server.run(sockets=[args.socket])
    finally:
        args.socket.close()
    return 0


def _foreground_settings(args: argparse.Namespace, data_dir: Path) -> Settings | None:
    """Settings of a hand-run ``qfnb serve``, after printing where it listens (None: refused)."""
    from qfnb.local.server import listen  # deferred: `qfnb --help` does without it (3 modules)
    from qfnb.local.settings import Credentials, Settings  # deferred: loads httpx (`qfnb --help` does not)

    given = {key: os.environ.get(official.GLOBAL_OPTIONS[option]) for key, option in _SERVE_CREDENTIALS.items()}
    if not is_loopback(args.host):
        problem = public_bind_problem(given)
        if problem:
            print(f"refusing to listen on {args.host}: {problem}", file=sys.stderr)
            return None
    path = data_dir / "credentials.json"
    stored, created = Credentials.create_if_absent(path)
    generated = [k for k, v in given.items() if not v]
    creds = Credentials(**{k: v or getattr(stored, k) for k, v in given.items()})
    try:  # bound once here and served by uvicorn: the printed port is the one served
        args.socket = listen.bind(args.host, args.port)
    except OSError as exc:
        print(f"qfnb serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return None
    host = f"[{args.host}]" if ":" in args.host else args.host
    base = f"http://{host}:{listen.bound_port(args.socket)}"
    print(f"qfnb local platform on {base} (data in {data_dir})")
    print(f"  export QIANFAN_BASE_URL={base} QIANFAN_CONSOLE_API_BASE_URL={base} QIANFAN_IAM_BASE_URL={base}")
    if generated and created:  # generated keys are shown once, when they are created; given ones never
        print(f"  new credentials, kept in {path} (mode 0600); this is the only time they are printed:")
        variables = {k: official.GLOBAL_OPTIONS[option] for k, option in _SERVE_CREDENTIALS.items()}
        print("  export " + " ".join(f"{variables[k]}={getattr(creds, k)}" for k in generated))
    elif generated:
        print(f"  credentials: {path} (mode 0600)")
    sys.stdout.flush()
    return Settings.from_env(data_dir=data_dir, credentials=creds)


def _group_named(parser: argparse.ArgumentParser, words: Sequence[str]) -> argparse.ArgumentParser | None:
    """The parser ``words`` name when it is a group of commands (``qfnb``, ``qfnb dataset``), else None."""
    for word in words:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or word not in sub.choices:
            return None
        parser = sub.choices[word]
    return parser if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions) else None


def _one_line_warnings() -> None:
    """Show the local platform's model-substitution warning as one ``qfnb:`` line on stderr."""
    import warnings

    # deferred: `qfnb --help` skips the client's http rooms
    from qfnb._core.http.recording.substitution import LocalModelWarning

    shown = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        if issubclass(category, LocalModelWarning):
            print(f"qfnb: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    group = _group_named(parser, argv)
    if group is not None:  # a group with no command shows its help, as the official CLI does
        group.print_help()
        return 0
    args = parser.parse_args(argv)
    _one_line_warnings()
    if official.handles(args.command):
        return official.run(args, argv)
    if args.command in ("serve", "mcp"):
        refused = refuse_argv_secrets(args)
        if refused:
            print(f"qfnb {args.command}: {refused}", file=sys.stderr)
            return 2

    commands = {"serve": serve, "start": start, "status": status, "stop": stop, "models": cli_models.run,
                "mcp": mcp_serve}
    return commands[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
