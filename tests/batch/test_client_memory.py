"""The client side of a batch job runs in bounded memory: the input goes up in appended pieces
(BOS ``AppendObject``) as the caller's iterable yields it, and results come back in ranged reads,
row by row. Measured with tracemalloc (client, server and runner share this process, so the
bound covers all three); plus the BOS calls themselves and the row-reading edge cases."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from batch_doubles import paced_platform
from platform_helpers import Signer

from qfnb._core.config import resolve_config
from qfnb._core.runtime import sync
from qfnb.resources.batch import objects as batch_objects
from qfnb.resources.batch_job import BatchJob
from tests.fakes.local_platform import ServedPlatform

PIECE = 64 * 1024


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    with paced_platform(tmp_path / "data", monkeypatch, delay="0", slots=4) as platform:
        platform.set_env(monkeypatch)
        yield platform


def _row(i: int) -> str:
    return f"question {i}: " + "lorem ipsum " * 40  # ~500 bytes a line


def _peak(work: Any) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_upload_and_read_back_stay_bounded(served: ServedPlatform) -> None:
    cfg = resolve_config()

    def lines(n: int) -> Iterator[str]:
        return (json.dumps({"custom_id": str(i), "body": {"messages": [{"role": "user", "content": _row(i)}]}}) + "\n"
                for i in range(n))

    def roundtrip(n: int) -> None:
        uri = f"bos:/mem/in-{n}.jsonl"
        size = sync.run(batch_objects.aupload_lines(cfg, uri, lines(n), chunk_bytes=PIECE))
        assert size > n * 500
        seen = 0
        for line in sync.iterate(batch_objects.aiter_lines(cfg, uri, chunk_bytes=PIECE)):
            assert json.loads(line)["custom_id"] == str(seen)
            seen += 1
        assert seen == n

    roundtrip(50)  # warm up imports, pools and caches outside the measurement
    small, large = _peak(lambda: roundtrip(2_000)), _peak(lambda: roundtrip(20_000))  # ~1 MB and ~11 MB of JSONL
    print(f"peak traced memory: {small} bytes for 2,000 rows, {large} for 20,000")
    assert large < 4 * 1024 * 1024, large  # the whole input would be > 11 MB (twice that as str + bytes)
    assert large - small < 1024 * 1024, (small, large)


def test_submit_streams_its_input_and_iter_results_reads_lazily(served: ServedPlatform) -> None:
    produced: list[int] = []

    def prompts(n: int) -> Iterator[str]:
        for i in range(n):
            produced.append(i)
            yield f"p{i}"

    job = BatchJob.submit(prompts(300), model="tiny-chat")
    assert produced == list(range(300))
    assert job.wait(interval=0.05).status == "Done"
    got = dict(job.iter_results())
    assert sorted(got) == list(range(300))
    assert all(got[i]["result"] == f"tiny-chat: p{i}" for i in range(300))
    assert [v["result"] for v in job.results()] == [f"tiny-chat: p{i}" for i in range(300)]
    with pytest.raises(Exception, match="is empty"):
        BatchJob.submit(iter([]), model="tiny-chat")


def test_results_of_a_job_whose_error_file_holds_one_row(served: ServedPlatform) -> None:
    """A one-line JSONL object is one JSON object: with ``"error"`` in it, it was once read as the
    platform's own error and ``results()`` raised. Objects are bytes, never an API answer."""
    job = BatchJob.submit(["fine", {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}],
                          model="tiny-chat")
    state = job.wait(interval=0.05)
    assert (state.status, state.done, state.failed) == ("Done", 1, 1)
    values = job.results()
    assert values[0]["result"] == "tiny-chat: fine"
    assert isinstance(values[1], Exception)
    answers, errors = sync.run(job.arows())
    assert len(answers) == len(errors) == 1 and errors[0]["custom_id"] == "1"


def test_append_object_checks_the_offset(served: ServedPlatform) -> None:
    url = served.url + "/bos/mem/appended.jsonl"

    def append(offset: int, data: bytes) -> httpx.Response:
        return httpx.post(url, params={"append": "", "offset": str(offset)}, content=data, auth=Signer())

    first = append(0, b"one\n")
    assert first.status_code == 200 and first.headers["x-bce-next-append-offset"] == "4"
    assert append(4, b"two\n").headers["x-bce-next-append-offset"] == "8"
    stale = append(4, b"two\n")  # a retry of an append that landed
    assert stale.status_code == 409 and stale.headers["x-bce-error-code"] == "OffsetIncorrect"
    assert stale.headers["x-bce-next-append-offset"] == "8"
    assert httpx.get(url, auth=Signer()).content == b"one\ntwo\n"
    part = httpx.get(url, headers={"Range": "bytes=4-100"}, auth=Signer())
    assert part.status_code == 206 and part.content == b"two\n" and part.headers["content-range"] == "bytes 4-7/8"
    assert httpx.post(url, content=b"x", auth=Signer()).status_code == 400  # POST without ?append
    assert httpx.post(url, params={"append": ""}, content=b"x").status_code == 403  # unsigned

    cfg = resolve_config()
    # the client's append takes a stale-offset answer that says its piece is already there as success
    again = sync.run(batch_objects._append(batch_objects._client(cfg), batch_objects.object_url(
        cfg, "bos:/mem/appended.jsonl"), 4, b"two\n"))
    assert again == 8
    assert list(sync.iterate(batch_objects.aiter_lines(cfg, "bos:/mem/appended.jsonl", chunk_bytes=3))) == [
        b"one", b"two"]
    assert list(sync.iterate(batch_objects.aiter_lines(cfg, "bos:/mem/none.jsonl"))) == []
