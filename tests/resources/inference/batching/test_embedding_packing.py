"""``Embedding().batch_do`` against the embedded platform packs its inputs into fewer, larger calls
(:mod:`qfnb.resources.inference.batching.packing`): the local platform's app in-process (engine doubles), its
HTTP calls counted at the transport."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from qfnb import Embedding, QfResponse
from qfnb._core.config import Config
from qfnb._core.errors import ValidationError
from qfnb._core.record.ledger import default_ledger
from qfnb._core.transport import Reply, Request, StreamReply, Transport
from qfnb._core.transport.asgi import ASGITransport
from qfnb.resources.inference.batching.packing import Pack, packs
from tests.fakes.local_platform import CREDS, FakeRegistry

URL = "http://local.test"


class Counting(Transport):
    """The app's transport, keeping the texts of each embeddings call sent."""

    def __init__(self, inner: ASGITransport) -> None:
        self.inner = inner
        self.sent: list[list[str]] = []

    async def send(self, request: Request) -> Reply:
        if "/embeddings/" in request.url:
            self.sent.append(json.loads(request.content)["input"])
        return await self.inner.send(request)

    async def stream(self, request: Request) -> StreamReply:
        return await self.inner.stream(request)


@pytest.fixture
async def platform(tmp_path: Path, own_record_dir: None) -> AsyncIterator[Counting]:
    from platform_helpers import make_settings  # tests/local, on the path once tests.fakes.local_platform loaded

    from qfnb.local.server.app import create_app

    transport = Counting(ASGITransport(create_app(make_settings(tmp_path / "platform"), FakeRegistry())))
    async with transport.inner.lifespan():
        yield transport


def config(transport: Transport, *, embedded: bool) -> Config:
    return Config.from_env({}, base_url=URL, console_api_base_url=URL, iam_base_url=URL, ak=CREDS.api_key,
                           sk=CREDS.secret_key, access_key=CREDS.access_key, secret_key=CREDS.iam_secret_key,
                           transport=transport, embedded=embedded)


def texts(n: int) -> list[str]:
    return [f"text number {i} " + "x" * (i % 5) for i in range(n)]


def inputs(items: list[str], per: int) -> list[list[str]]:
    return [items[i:i + per] for i in range(0, len(items), per)]


def vectors(results: Any) -> list[list[list[float]]]:
    return [[d["embedding"] for d in r["data"]] for r in results]


async def test_a_batch_of_100_texts_is_ceil_100_over_the_pack_calls_with_the_same_vectors(
        platform: Counting, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Embedding, "local_pack_texts", 32)
    given = inputs(texts(100), 8)  # 13 inputs: 12 of 8 texts and one of 4
    packed = await Embedding(endpoint="tiny-embed", config=config(platform, embedded=True)).abatch_do(
        given, worker_num=2)
    assert [len(t) for t in platform.sent] == [32, 32, 32, 4]  # ceil(100 / 32) calls, inputs whole and in order
    platform.sent.clear()
    single = await Embedding(endpoint="tiny-embed", config=config(platform, embedded=False)).abatch_do(
        given, worker_num=2)
    assert len(platform.sent) == len(given)  # the cloud's way: one call an input
    assert all(isinstance(r, QfResponse) for r in packed)
    assert vectors(packed) == vectors(single)  # each text its own vector, in order
    assert [[d["index"] for d in r["data"]] for r in packed] == [list(range(len(t))) for t in given]
    assert [r.provenance["packed"] for r in packed[:2]] == [{"calls": 4, "texts": 32}] * 2
    # each input a share of its packed call's tokens; the ledger holds the packed calls, in one job
    default_ledger().flush()
    rows = [r for r in default_ledger().rows() if r.api == "embeddings" and r.job]
    assert len({r.job for r in rows}) == 2  # the two batches
    packed_rows = [r for r in rows if r.job == rows[0].job]
    assert len(packed_rows) == 4
    assert sum(r["usage"]["total_tokens"] for r in packed) == sum(r.total_tokens for r in packed_rows)


async def test_a_bad_input_answers_its_own_error_and_the_rest_travel_packed(platform: Counting) -> None:
    emb = Embedding(endpoint="tiny-embed", config=config(platform, embedded=True))
    given: list[Any] = [["a b"], ["c"] * 17, ["d", ""], ["e f g"], "h"]
    results = await emb.abatch_do(given)
    assert platform.sent == [["a b", "e f g", "h"]]  # one call: the two refused inputs never left
    assert isinstance(results[1], ValidationError) and "at most 16" in str(results[1])
    assert isinstance(results[2], ValidationError) and "texts[1]" in str(results[2])
    assert [len(results[i]["data"]) for i in (0, 3, 4)] == [1, 1, 1]
    assert results[3]["data"][0]["embedding"] == (await emb.ado(texts=["e f g"]))["data"][0]["embedding"]


def test_output_file_progress_and_resume(platform: Counting, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Embedding, "local_pack_texts", 16)
    emb = Embedding(endpoint="tiny-embed", config=config(platform, embedded=True))
    given = inputs(texts(40), 4)  # 10 inputs of 4 texts: 3 packed calls
    out = tmp_path / "vectors.jsonl"
    ticks: list[tuple[int, bool]] = []

    class Progress:
        def on_start(self, total: int | None) -> None:
            ticks.clear()

        def on_result(self, index: int, ok: bool) -> None:
            ticks.append((index, ok))

        def on_close(self) -> None:
            pass

    future = emb.batch_do(given, output_file=str(out), progress=Progress())
    first = vectors(future.results())  # read now: the results are read back from the file
    assert future.finished_count() == 10 and sorted(ticks) == [(i, True) for i in range(10)]
    assert len(platform.sent) == 3
    lines = out.read_text().splitlines()
    assert sorted(json.loads(line)["index"] for line in lines) == list(range(10))
    kept = [line for line in lines if json.loads(line)["index"] not in (2, 3, 7)]
    out.write_text("\n".join(kept) + "\n")  # three inputs lost: a re-run sends only them
    platform.sent.clear()
    again = emb.batch_do(given, output_file=str(out)).results()
    assert platform.sent == [given[2] + given[3] + given[7]]
    assert vectors(again) == first and len(again) == 10


def test_packs_group_consecutive_inputs_by_weight_skipping_done_ones() -> None:
    async def never(items: list[dict[str, Any]]) -> list[Any]:
        raise AssertionError

    pack = Pack(10, lambda item: len(item["texts"]), never)
    items = [{"texts": ["t"] * n} for n in (4, 4, 4, 12, 1, 3, 6)]
    grouped = [[index for index, _ in group] for group in packs(items, {1}, pack)]
    assert grouped == [[0, 2], [3], [4, 5, 6]]  # an input heavier than the pack goes alone
    assert math.fsum(len(items[i]["texts"]) for i in grouped[2]) <= 10
