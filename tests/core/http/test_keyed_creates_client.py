"""qfnb's client sends each create (and each dataset import) under an ``Idempotency-Key`` of its own, the
same on every retry of the call: a platform that got the first try (the connection dropped before its
answer) creates once. Reads and other calls carry no key."""

from __future__ import annotations

from typing import Any

import pytest

from qfnb._core.http.client import AsyncQianfanClient
from qfnb.protocol.wires.qianfan.routes import IDEMPOTENCY_HEADER, Console
from tests.fakes.cloud import FakeQianfan

MakeConfig = Any


def _keys(fake: FakeQianfan, path: str) -> list[str | None]:
    return [r.headers.get(IDEMPOTENCY_HEADER.lower()) for r in fake.calls(path)]


async def test_a_create_keeps_its_key_on_its_retries(fake: FakeQianfan, make_config: MakeConfig) -> None:
    @fake.route("POST", Console.FT_CREATE_JOB)
    def created(r: Any) -> dict[str, Any]:
        return {"log_id": "1", "result": {"id": 7, "uuid": "task-7"}}

    client = AsyncQianfanClient(make_config("iam", console_api_retry_count=3, console_api_retry_jitter=0.0))
    fake.fail_next(2, "drop", path=Console.FT_CREATE_JOB)
    answer = await client.console(Console.FT_CREATE_JOB, {"taskId": 1})
    assert answer["result"] == {"id": 7, "uuid": "task-7"}
    first = _keys(fake, Console.FT_CREATE_JOB)
    assert len(first) == 3 and first[0] and first[0].startswith("qfnb-") and set(first) == {first[0]}
    await client.console(Console.FT_CREATE_JOB, {"taskId": 1})  # another call: another key
    assert _keys(fake, Console.FT_CREATE_JOB)[-1] not in (None, first[0])


@pytest.mark.parametrize(("path", "action", "keyed"), [
    ("/v2/finetuning", "CreateFineTuningTask", True), ("/v2/service", "CreateService", True),
    ("/v2/batchinference", "CreateBatchInferenceTask", True), (Console.SERVICE_APPLY, None, True),
    ("/v2/finetuning", "DescribeFineTuningTask", False), (Console.SERVICE_LIST, None, False)])
async def test_only_creates_and_imports_carry_a_key(fake: FakeQianfan, make_config: MakeConfig, path: str,
                                                    action: str | None, keyed: bool) -> None:
    @fake.route("POST", path, action=action)
    def answered(r: Any) -> dict[str, Any]:
        return {"requestId": "r", "log_id": "1", "result": {}}

    client = AsyncQianfanClient(make_config("iam"))
    await client.console(path, {}, params={"Action": action} if action else None)
    assert (_keys(fake, path)[0] is not None) is keyed


async def test_a_batch_made_on_the_openai_route_is_keyed_its_reads_are_not(fake: FakeQianfan,
                                                                           make_config: MakeConfig) -> None:
    @fake.route("POST", "/v2/batches")
    def made(r: Any) -> dict[str, Any]:
        return {"id": "batch-1", "object": "batch"}

    @fake.route("GET", "/v2/batches")
    def listed(r: Any) -> dict[str, Any]:
        return {"object": "list", "data": []}

    client = AsyncQianfanClient(make_config("iam"))
    await client.v2_api("POST", "/v2/batches", {"input_file_id": "file-1"})
    await client.v2_api("GET", "/v2/batches")
    assert [k is not None for k in _keys(fake, "/v2/batches")] == [True, False]


def test_keys_are_unique_and_a_forked_child_draws_its_own() -> None:
    """A call's key is this process's secret prefix and a count (one read of the OS's random source a
    process); a forked child (a multiprocessing worker) draws a prefix of its own, so no two processes
    sharing a credential send the same key (the platform would answer one's call with the other's answer)."""
    import os

    from qfnb._core.http.client import _new_key

    keys = [_new_key() for _ in range(10_000)]
    assert len(set(keys)) == len(keys) and all(k.startswith("qfnb-") and len(k) < 255 for k in keys)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next key, to the parent
        os.write(write, _new_key().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 200).decode()
    os.waitpid(pid, 0)
    parent = _new_key()
    assert child.rsplit("-", 1)[0] != parent.rsplit("-", 1)[0] and child.startswith("qfnb-")
