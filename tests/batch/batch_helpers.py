"""Helpers for batch-inference tests: a served platform whose console requests are recorded,
input files in the local BOS, waiting on a task (by polling its state, not by wall-clock bounds),
and a job's runner run in-process with its peak memory traced."""

from __future__ import annotations

import asyncio
import json
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from platform_helpers import CREDS, Signer

from qfnb.local.domain.batch import rows as batch_rows
from qfnb.local.domain.batch.runner import Paths, Runner


class Recorder:
    """ASGI wrapper noting ``(Action, Referer, body)`` of each ``/v2/batchinference`` request."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, []  # type: ignore[var-annotated]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v2/batchinference":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
        self.calls.append((query.get("Action"), headers.get("referer"), json.loads(b"".join(chunks) or b"{}")))
        body = b"".join(chunks)
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def put_object(base: str, bucket: str, key: str, lines: list[Any], auth: Any = None) -> str:
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    resp = httpx.put(f"{base}/bos/{bucket}/{key}", content=text.encode(), auth=auth or Signer())
    assert resp.status_code == 200, resp.text
    return f"bos:/{bucket}/{key}"


def get_object(base: str, uri: str, auth: Any = None) -> list[dict[str, Any]]:
    resp = httpx.get(base + "/bos/" + uri[len("bos:/"):].lstrip("/"), auth=auth or Signer())
    if resp.status_code == 404:
        return []
    return [json.loads(line) for line in resp.text.splitlines() if line.strip()]


def console(base: str, action: str, body: dict[str, Any], auth: Any = None) -> dict[str, Any]:
    resp = httpx.post(base + "/v2/batchinference", params={"Action": action}, json=body, auth=auth or Signer(),
                      timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["result"]  # type: ignore[no-any-return]


def wait_task(base: str, task_id: str, until: Callable[[dict[str, Any]], bool], limit: float = 60,
              auth: Any = None) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        view = console(base, "DescribeBatchInferenceTask", {"taskId": task_id}, auth)
        if until(view):
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.05)


def ended(view: dict[str, Any]) -> bool:
    return view["runStatus"] in ("Done", "Stopped", "Failed", "Expired")


def sdk_env(base: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIANFAN_")}
    env.update(QIANFAN_BASE_URL=base, QIANFAN_CONSOLE_API_BASE_URL=base, QIANFAN_IAM_BASE_URL=base,
               QIANFAN_AK=CREDS.api_key, QIANFAN_SK=CREDS.secret_key, QIANFAN_ACCESS_KEY=CREDS.access_key,
               QIANFAN_SECRET_KEY=CREDS.iam_secret_key, QIANFAN_CACHE_DIR=str(home / "qianfan-cache"), HOME=str(home))
    return env


def job_paths(work: Path) -> Paths:
    """A job's input, output, error and journal files in the new folder ``work``."""
    work.mkdir()
    return Paths(work / "in.jsonl", work / "out.jsonl", work / "err.jsonl", work / "journal.log")


def run_traced(paths: Paths, rows: int, engine: Any, model: str | None) -> tuple[Runner, int]:
    """The job over ``paths`` (room for ``rows`` rows) answered by ``engine``, run in-process to
    ``done`` while tracemalloc traces it: the runner and the peak traced bytes."""
    runner = Runner(paths, batch_rows.Standing(bytearray(rows)), model=model, params={},
                    engine_for=lambda _: engine, save=lambda *_: None, stopped=lambda: False)
    tracemalloc.start()
    try:
        assert asyncio.run(runner.run()) == "done"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return runner, peak
