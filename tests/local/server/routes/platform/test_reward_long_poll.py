"""``DescribeFineTuningRewardRequests`` long polls wait on the event loop: more of them than the thread
pool has threads leave the daemon's other blocking calls answering at once, a poll still answers as
soon as a request appears, and one poll beyond ``MAX_WAITING`` is refused (429 TooManyRequests)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from platform_doubles import FakeRegistry
from platform_helpers import Signer, make_settings

from qfnb.local.domain.training import rewards
from qfnb.local.server.app import create_app
from qfnb.protocol.console.rewards import FETCH_ACTION

#: the thread pool's size in these tests (anyio's default is 40: a few polls past it make the point)
POOL = 4


def _platform_with_run(tmp_path: Path) -> tuple[Any, str, Path]:
    app = create_app(make_settings(tmp_path / "data"), FakeRegistry())
    folder = tmp_path / "job" / "rewards"
    folder.mkdir(parents=True)
    run = app.state.platform.store.insert("runs", {"rewardSource": "client", "trainMode": "RFT",
                                                   "status": "Running", "job_dir": str(folder.parent)})
    return app, str(run["sid"]), folder


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 5000)),
                             base_url="http://127.0.0.1", timeout=30)


async def _post(client: httpx.AsyncClient, path: str, action: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post(path, params={"Action": action}, json=body, auth=Signer())


async def _until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def _request_arrives(folder: Path) -> None:
    """What the training worker writes for a batch to score."""
    (folder / "request-1.json").write_text(json.dumps({"requestId": 1, "step": 0, "kind": "train", "samples": [
        {"prompt": "p", "completion": "c", "fields": {}}]}), encoding="utf-8")


def test_many_long_polls_leave_the_thread_pool_to_the_other_calls(tmp_path: Path) -> None:
    app, task, folder = _platform_with_run(tmp_path)
    platform = app.state.platform

    async def main() -> None:
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = POOL
        async with _client(app) as client:
            polls = [asyncio.create_task(_post(client, "/v2/finetuning", FETCH_ACTION,
                                               {"taskId": task, "waitSeconds": 4})) for _ in range(2 * POOL)]
            try:  # every poll waiting (a poll still on its first look holds a pool thread for that look only)
                await _until(lambda: platform.reward_polls == 2 * POOL)
                t0 = time.monotonic()
                # the polls wait 4 s: a pool they held would keep this call that long (a loaded CI box: 2 s)
                other = await asyncio.wait_for(_post(client, "/v2/dataset", "DescribeDatasets", {}), 3)
                assert other.status_code == 200 and time.monotonic() - t0 < 2.0
                assert platform.reward_polls == 2 * POOL  # none answered meanwhile: nothing was pending
            finally:
                _request_arrives(folder)
                t0 = time.monotonic()
                answers = await asyncio.gather(*polls)
            woke = time.monotonic() - t0
        assert woke < 2.0, f"the polls answered {woke:.2f} s after the request appeared"
        for answer in answers:
            result = answer.json()["result"]
            assert result["runStatus"] == "Running" and [r["requestId"] for r in result["requests"]] == [1]
        assert (folder / "claimed-1").exists() and platform.reward_polls == 0

    asyncio.run(main())


def test_a_poll_with_nothing_pending_answers_after_its_wait(tmp_path: Path) -> None:
    app, task, _ = _platform_with_run(tmp_path)

    async def main() -> None:
        async with _client(app) as client:
            t0 = time.monotonic()
            resp = await _post(client, "/v2/finetuning", FETCH_ACTION, {"taskId": task, "waitSeconds": 0.3})
            took = time.monotonic() - t0
        assert resp.status_code == 200 and resp.json()["result"]["requests"] == []
        assert 0.3 <= took < 1.5

    asyncio.run(main())


def test_a_long_poll_past_the_bound_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rewards, "MAX_WAITING", 2)
    app, task, folder = _platform_with_run(tmp_path)
    platform = app.state.platform

    async def main() -> None:
        async with _client(app) as client:
            polls = [asyncio.create_task(_post(client, "/v2/finetuning", FETCH_ACTION,
                                               {"taskId": task, "waitSeconds": 4})) for _ in range(2)]
            try:
                await _until(lambda: platform.reward_polls == 2)
                refused = await _post(client, "/v2/finetuning", FETCH_ACTION, {"taskId": task, "waitSeconds": 4})
                assert refused.status_code == 429
                assert refused.json()["code"] == "TooManyRequests"
                assert "2 reward long polls are waiting already" in refused.json()["message"]
                at_once = await _post(client, "/v2/finetuning", FETCH_ACTION, {"taskId": task})  # waits for nothing
                assert at_once.status_code == 200 and at_once.json()["result"]["requests"] == []
            finally:
                _request_arrives(folder)
                answers = await asyncio.gather(*polls)
        assert [a.status_code for a in answers] == [200, 200] and platform.reward_polls == 0

    asyncio.run(main())
