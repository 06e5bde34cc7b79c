"""OpenAI's files + batches API on the platform, driven with requests shaped exactly as the
``openai`` SDK sends them (multipart upload of ``file`` + ``purpose``; JSON bodies; bearer key)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from batch_doubles import paced_platform

from qfnb.local.server.serving.multipart import MultipartReader, boundary_of
from tests.fakes.local_platform import ServedPlatform


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    with paced_platform(tmp_path / "data", monkeypatch, delay="0.01") as platform:
        yield platform


def openai_client(served: ServedPlatform) -> httpx.Client:
    """What ``OpenAI(base_url=<platform>/v1, api_key=<bearer token>)`` sends with."""
    bearer = served.bearer_token()
    return httpx.Client(base_url=served.url + "/v1/", headers={"Authorization": f"Bearer {bearer}",
                                                               "Accept": "application/json"}, timeout=30)


def test_files_and_batches_create_retrieve_list_cancel(served: ServedPlatform) -> None:
    lines = [{"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "tiny-chat", "messages": [{"role": "user", "content": f"hello {i}"}],
                       "max_tokens": 50}} for i in range(5)]
    lines.append({"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "tiny-chat"}})
    with openai_client(served) as client:
        # client.files.create(file=open("batch.jsonl", "rb"), purpose="batch")
        upload = client.post("files", data={"purpose": "batch"}, files={
            "file": ("batch.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode(), "application/octet-stream")})
        assert upload.status_code == 200, upload.text
        file = upload.json()
        assert file["object"] == "file" and file["purpose"] == "batch" and file["filename"] == "batch.jsonl"
        assert client.get(f"files/{file['id']}").json()["bytes"] == file["bytes"]
        # client.batches.create(input_file_id=..., endpoint="/v1/chat/completions", completion_window="24h")
        made = client.post("batches", json={"completion_window": "24h", "endpoint": "/v1/chat/completions",
                                             "input_file_id": file["id"], "metadata": {"run": "t"}})
        assert made.status_code == 200, made.text
        batch = made.json()
        assert batch["object"] == "batch" and batch["status"] in ("validating", "in_progress", "completed")
        assert batch["metadata"] == {"run": "t"} and batch["completion_window"] == "24h"
        while batch["status"] not in ("completed", "failed", "cancelled", "expired"):
            batch = client.get(f"batches/{batch['id']}").json()  # client.batches.retrieve(id)
        assert batch["status"] == "completed"
        assert batch["request_counts"] == {"total": 6, "completed": 5, "failed": 1}
        assert batch["completed_at"] and batch["in_progress_at"]
        out = [json.loads(x) for x in client.get(f"files/{batch['output_file_id']}/content").text.splitlines()]
        assert sorted(r["custom_id"] for r in out) == [f"req-{i}" for i in range(5)]
        first = next(r for r in out if r["custom_id"] == "req-0")
        assert first["response"]["status_code"] == 200
        assert first["response"]["body"]["choices"][0]["message"]["content"] == "tiny-chat: hello 0"
        errors = [json.loads(x) for x in client.get(f"files/{batch['error_file_id']}/content").text.splitlines()]
        assert [e["custom_id"] for e in errors] == ["bad"] and "line 6" in errors[0]["error"]["message"]
        # client.batches.list(limit=10)
        listed = client.get("batches", params={"limit": 10}).json()
        assert listed["object"] == "list" and batch["id"] in [b["id"] for b in listed["data"]]

        many = [{"custom_id": f"m{i}", "body": {"messages": [{"role": "user", "content": f"m{i} " + "w " * 20}]}}
                for i in range(300)]
        big = client.post("files", data={"purpose": "batch"}, files={
            "file": ("big.jsonl", "".join(json.dumps(x) + "\n" for x in many).encode())}).json()
        running = client.post("batches", json={"completion_window": "24h", "endpoint": "/v1/chat/completions",
                                               "input_file_id": big["id"]}).json()
        cancelled = client.post(f"batches/{running['id']}/cancel").json()  # client.batches.cancel(id)
        assert cancelled["status"] in ("cancelling", "cancelled")
        while cancelled["status"] != "cancelled":
            cancelled = client.get(f"batches/{running['id']}").json()
        assert cancelled["request_counts"]["completed"] < 300 and cancelled["cancelled_at"]
        assert cancelled["request_counts"]["failed"] == 0
        # errors in OpenAI's shape
        missing = client.get("batches/infer-nosuchbatch")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"
        bad = client.post("batches", json={"input_file_id": file["id"], "endpoint": "/v1/chat/completions",
                                           "completion_window": "1h"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "completion_window"
    assert httpx.get(served.url + "/v1/batches").status_code == 401


def test_multipart_reader_streams_parts_split_anywhere() -> None:
    boundary = "b0undary"
    payload = (b"x" * 5000) + b"\r\n--b0und" + b"y" * 100
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()

    async def chunks(size: int) -> AsyncIterator[bytes]:
        for i in range(0, len(body), size):
            yield body[i:i + size]

    async def read(size: int) -> dict[str, bytes]:
        reader = MultipartReader(chunks(size), boundary_of(f"multipart/form-data; boundary={boundary}"))
        return {part.name: b"".join([c async for c in data]) async for part, data in reader.parts()}

    for size in (1, 7, 64, 100_000):
        assert asyncio.run(read(size)) == {"purpose": b"batch", "file": payload}
