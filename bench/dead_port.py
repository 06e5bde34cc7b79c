"""Connection attempts per second that a ``batch_do`` makes at a port where nothing listens.

Usage: ``python bench/dead_port.py [--seconds 5] [--workers 64]``. A 300-prompt batch is sent to
a closed loopback port through qfnb's real transport (counted by a wrapper) for ``--seconds``;
the script prints the attempts per second (issue 26 measured about 70 before the shared backoff).
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=64)
    args = parser.parse_args()

    from qfnb._core.config import Config
    from qfnb._core.http.client import default_transport
    from qfnb._core.transport import Transport
    from qfnb.resources.inference.chat import ChatCompletion

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    real = default_transport(Config.from_env({}, base_url=base, access_token="t"))

    class Counting(Transport):
        attempts = 0

        async def send(self, request: Any) -> Any:
            Counting.attempts += 1
            return await real.send(request)

        async def stream(self, request: Any) -> Any:
            Counting.attempts += 1
            return await real.stream(request)

    config = Config.from_env({}, base_url=base, access_token="t", transport=Counting())
    chat = ChatCompletion(endpoint="m", config=config)
    future = chat.batch_do([[{"role": "user", "content": f"p{i}"}] for i in range(300)], worker_num=args.workers)
    start = time.monotonic()
    time.sleep(args.seconds)
    rate = Counting.attempts / (time.monotonic() - start)
    print(f"{Counting.attempts} connection attempts in {args.seconds:.0f} s: {rate:.1f} per second")
    del future
    os._exit(0)  # the batch would retry for its whole budget; nothing to clean up here


if __name__ == "__main__":
    main()
