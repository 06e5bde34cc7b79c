"""The real ``openai`` SDK, unmodified, driving the platform's files + batches API as an OpenAI
user would: ``OpenAI(base_url=<platform>/v1, api_key=<bearer>)`` and nothing else (issue 22)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_doubles import paced_platform

from tests.fakes.local_platform import ServedPlatform

openai = pytest.importorskip("openai")

TERMINAL = ("completed", "failed", "cancelled", "expired")


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    with paced_platform(tmp_path / "data", monkeypatch, delay="0.01") as platform:
        yield platform


def sdk(served: ServedPlatform, key: str | None = None) -> Any:
    if key is None:  # a v2 bearer token minted from the IAM pair, as the platform's docs say
        key = served.bearer_token()
    return openai.OpenAI(base_url=served.url + "/v1", api_key=key, max_retries=0, timeout=30)


def wait(client: Any, batch_id: str, limit: float = 60) -> Any:
    deadline = time.monotonic() + limit
    batch = client.batches.retrieve(batch_id)
    while batch.status not in TERMINAL:
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)
        batch = client.batches.retrieve(batch_id)
    return batch


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def chat_line(custom_id: str, text: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "tiny-chat", "messages": [{"role": "user", "content": text}], "max_tokens": 50}}


def test_the_openai_sdk_runs_a_batch_end_to_end(served: ServedPlatform, tmp_path: Path) -> None:
    client = sdk(served)
    source = tmp_path / "batch.jsonl"
    source.write_bytes(jsonl([chat_line(f"req-{i}", f"hello {i}") for i in range(4)]
                             + [{"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
                                 "body": {"model": "tiny-chat"}}]))
    with source.open("rb") as fh:
        uploaded = client.files.create(file=fh, purpose="batch")
    assert isinstance(uploaded, openai.types.FileObject)
    assert uploaded.purpose == "batch" and uploaded.filename == "batch.jsonl"
    assert uploaded.bytes == source.stat().st_size
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert client.files.content(uploaded.id).read() == source.read_bytes()

    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"run": "sdk"})
    assert isinstance(batch, openai.types.Batch)
    assert batch.metadata == {"run": "sdk"} and batch.completion_window == "24h"
    assert batch.endpoint == "/v1/chat/completions" and batch.input_file_id == uploaded.id

    done = wait(client, batch.id)
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (5, 4, 1)
    assert done.in_progress_at and done.completed_at and done.output_file_id and done.error_file_id

    out = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(r["custom_id"] for r in out) == [f"req-{i}" for i in range(4)]
    answer = next(r for r in out if r["custom_id"] == "req-2")
    assert answer["response"]["status_code"] == 200 and answer["error"] is None
    # the row's body parses as the SDK's own ChatCompletion: a user can hand it to their code as is
    completion = openai.types.chat.ChatCompletion.model_validate(answer["response"]["body"])
    assert completion.choices[0].message.content == "tiny-chat: hello 2"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    errors = [json.loads(line) for line in client.files.content(done.error_file_id).text.splitlines()]
    assert [e["custom_id"] for e in errors] == ["bad"] and "line 5" in errors[0]["error"]["message"]

    listed = client.batches.list(limit=10)
    assert batch.id in [b.id for b in listed.data]
    assert uploaded.id in [f.id for f in client.files.list()]


def test_the_openai_sdk_cancels_a_running_batch_and_keeps_what_finished(served: ServedPlatform) -> None:
    client = sdk(served)
    uploaded = client.files.create(file=("many.jsonl", jsonl([chat_line(f"m{i}", f"m{i} " + "w " * 20)
                                                              for i in range(200)])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    deadline = time.monotonic() + 30
    while (client.batches.retrieve(batch.id).request_counts or batch.request_counts).completed < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    cancelled = client.batches.cancel(batch.id)
    assert cancelled.status in ("cancelling", "cancelled")
    final = wait(client, batch.id)
    assert final.status == "cancelled" and final.cancelled_at
    assert final.request_counts is not None and 2 <= final.request_counts.completed < 200
    out = client.files.content(final.output_file_id).text.splitlines()
    assert len(out) == final.request_counts.completed  # what finished is kept, once each
    assert len({json.loads(line)["custom_id"] for line in out}) == len(out)


def test_the_openai_sdk_sees_openai_errors(served: ServedPlatform) -> None:
    client = sdk(served)
    with pytest.raises(openai.NotFoundError) as missing:
        client.batches.retrieve("batch_nosuch")
    assert missing.value.status_code == 404
    uploaded = client.files.create(file=("one.jsonl", jsonl([chat_line("a", "hi")])), purpose="batch")
    with pytest.raises(openai.BadRequestError) as bad:
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                              completion_window="1h")
    assert bad.value.param == "completion_window"
    with pytest.raises(openai.AuthenticationError):
        sdk(served, key="not-a-token").batches.list()
