"""How long one request with a long chat history holds the engine, and how long a small request
sent beside it waits for its first token (issue 26, item 1).

Usage: ``python bench/long_history.py [--messages 819] [--delay 5]``. Starts a daemon on a
temporary data dir (the real engines), sends ``--messages`` alternating one-word turns with
``max_output_tokens`` 2, and ``--delay`` seconds later a streamed 3-token request; prints the long
request's time and answer, and the small request's wait for its first token, both in seconds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=819)
    parser.add_argument("--delay", type=float, default=5.0)
    parser.add_argument("--model", default="qwen2_5_coder_0_5b_instruct")
    args = parser.parse_args()

    import httpx

    from qfnb._core.backend.daemon import ensure_daemon, stop_daemon

    data_dir = Path(tempfile.mkdtemp(prefix="qfnb-long-history-"))
    platform = ensure_daemon(data_dir)
    try:
        client = httpx.Client(base_url=platform.base_url, timeout=900)
        token = client.post("/oauth/2.0/token", params={"grant_type": "client_credentials",
                                                        "client_id": platform.api_key,
                                                        "client_secret": platform.secret_key}).json()["access_token"]
        url = f"/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/{args.model}"
        warm = client.post(url, params={"access_token": token},
                           json={"messages": [{"role": "user", "content": "hi"}], "max_output_tokens": 2})
        assert "result" in warm.json(), warm.text
        history = [{"role": "user" if i % 2 == 0 else "assistant", "content": "hi"} for i in range(args.messages)]
        if history[-1]["role"] != "user":
            history.append({"role": "user", "content": "hi"})
        long_result: dict[str, object] = {}

        def long_call() -> None:
            start = time.monotonic()
            resp = client.post(url, params={"access_token": token},
                               json={"messages": history, "max_output_tokens": 2})
            long_result.update(seconds=time.monotonic() - start, body=resp.json())

        worker = threading.Thread(target=long_call)
        worker.start()
        time.sleep(args.delay)
        sent = time.monotonic()
        first: float | None = None
        with client.stream("POST", url, params={"access_token": token},
                           json={"messages": [{"role": "user", "content": "Say hello"}], "max_output_tokens": 3,
                                 "stream": True}) as resp:
            for line in resp.iter_lines():
                if line.startswith("data:") and first is None:
                    first = time.monotonic() - sent
        worker.join()
        body = long_result["body"]
        summary = {k: v for k, v in body.items() if k in ("error_code", "error_msg", "usage")} \
            if isinstance(body, dict) else body
        print(json.dumps({"messages": len(history), "long_request_seconds": round(float(long_result["seconds"]), 1),
                          "long_answer": summary,
                          "small_request_first_token_seconds": None if first is None else round(first, 2)}))
    finally:
        stop_daemon(data_dir, force=True)


if __name__ == "__main__":
    main()
