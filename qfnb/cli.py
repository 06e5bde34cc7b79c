"""``qfnb serve``: run the local platform as a standalone server."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qfnb", description="qfnb: the Qianfan platform in Jupyter")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the local Qianfan-compatible platform")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8866, help="port (default 8866; 0 picks a free one)")
    serve.add_argument("--data-dir", type=Path, default=None, help="state dir (default $QFNB_DATA_DIR or ~/.qfnb)")
    serve.add_argument("--ak", help="OAuth API key (default $QIANFAN_AK)")
    serve.add_argument("--sk", help="OAuth secret key (default $QIANFAN_SK)")
    serve.add_argument("--access-key", help="IAM access key (default $QIANFAN_ACCESS_KEY)")
    serve.add_argument("--secret-key", help="IAM secret key (default $QIANFAN_SECRET_KEY)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from qfnb.local.app import create_app
    from qfnb.local.embedded import free_port
    from qfnb.local.settings import Credentials, Settings, default_data_dir

    env = os.environ
    given = {"api_key": args.ak or env.get("QIANFAN_AK"), "secret_key": args.sk or env.get("QIANFAN_SK"),
             "access_key": args.access_key or env.get("QIANFAN_ACCESS_KEY"),
             "iam_secret_key": args.secret_key or env.get("QIANFAN_SECRET_KEY")}
    if not is_loopback(args.host) and not (given["access_key"] and given["iam_secret_key"]):
        print(f"refusing to listen on {args.host}: a non-loopback address needs an access key and secret key "
              "(--access-key/--secret-key or QIANFAN_ACCESS_KEY/QIANFAN_SECRET_KEY)", file=sys.stderr)
        return 2
    data_dir = (args.data_dir or default_data_dir()).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    stored = Credentials.load_or_create(data_dir / "credentials.json")
    generated = [k for k, v in given.items() if not v]
    creds = Credentials(**{k: v or getattr(stored, k) for k, v in given.items()})
    port = args.port or free_port(args.host)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = f"http://{args.host}:{port}"
    print(f"qfnb local platform on {base} (data in {data_dir})")
    print(f"  export QIANFAN_BASE_URL={base} QIANFAN_CONSOLE_API_BASE_URL={base} QIANFAN_IAM_BASE_URL={base}")
    if generated:
        print(f"  credentials from {data_dir / 'credentials.json'} (mode 0600):")
        print(f"  export QIANFAN_AK={creds.api_key} QIANFAN_SK={creds.secret_key}")
        print(f"  export QIANFAN_ACCESS_KEY={creds.access_key} QIANFAN_SECRET_KEY={creds.iam_secret_key}")
    sys.stdout.flush()
    settings = Settings.from_env(data_dir=data_dir, credentials=creds)
    uvicorn.run(create_app(settings), host=args.host, port=port, log_level=args.log_level, access_log=False)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
