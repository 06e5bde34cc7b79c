"""The response cache is keyed by what answered (issue 34 §2): on the local platform the served
model's digest (``/v2/models/{name}``) is in the key, so a model swapped behind a name is a miss;
on the cloud a hash of the account is, so two accounts never share an answer."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import qfnb
from qfnb._core.http import client as client_mod
from qfnb._core.record import cache as cache_mod
from qfnb.local.engines.api import Engine
from tests.fakes.local_platform import FakeRegistry, ServedPlatform, served_platform

pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py

MSG = [{"role": "user", "content": "hello there"}]


@dataclasses.dataclass(frozen=True)
class Served:
    name: str
    endpoint: str
    api_types: tuple[str, ...]
    kind: str
    digest: str


class SwapRegistry(FakeRegistry):
    """The fake registry with a model ``swap`` whose weights can be replaced (``qfnb models rm`` then
    ``add --name swap``): a new digest, and an engine that answers differently."""

    def __init__(self) -> None:
        super().__init__()
        self.models.append(Served("swap", "swap", ("chat", "completions"), "llama.cpp", "qwen0000"))

    def chat(self, endpoint: str) -> Engine:
        engine = super().chat(endpoint)
        if endpoint == "swap":
            self.engines["swap"].tag = next(m.digest for m in self.models if m.name == "swap")
        return engine

    def swap(self, digest: str) -> None:
        self.models = [dataclasses.replace(m, digest=digest) if m.name == "swap" else m for m in self.models]


@pytest.fixture()
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    previous = cache_mod.set_process_mode("on")
    try:
        with served_platform(tmp_path / "platform", registry=SwapRegistry()) as platform:
            platform.as_default_backend(monkeypatch)
            yield platform
    finally:
        cache_mod.set_process_mode(previous)
        client_mod._CLIENTS.clear()


def _hit(resp: Any) -> bool:
    return bool(resp.provenance["cache"]["hit"])


def test_a_model_swapped_behind_its_name_is_a_cache_miss(embedded: ServedPlatform) -> None:
    chat = qfnb.ChatCompletion(model="swap")
    first = chat.do(messages=MSG)
    assert first.result.startswith("qwen0000") and not _hit(first)
    again = chat.do(messages=MSG)
    assert again.result == first.result and _hit(again)
    embedded.registry.swap("gemma111")  # type: ignore[attr-defined]
    swapped = chat.do(messages=MSG)
    assert swapped.result.startswith("gemma111") and not _hit(swapped)
    assert _hit(chat.do(messages=MSG))


def test_an_alias_resolves_to_the_digest_of_the_model_behind_it(embedded: ServedPlatform) -> None:
    client = qfnb.ChatCompletion(model="swap").client
    url = f"{embedded.url}/v2/models/SWAP"
    resp = qfnb._core.runtime.sync.run(client.signed_request("GET", url, params={"api_type": "chat"}))
    assert resp.body["digest"] == "qwen0000"


def test_two_cloud_accounts_never_share_a_cached_answer(fake: Any, make_config: Any) -> None:
    previous = cache_mod.set_process_mode("on")
    try:
        mine = qfnb.ChatCompletion(config=make_config("oauth"))
        theirs = qfnb.ChatCompletion(config=make_config("iam"))  # signed with IAM keys: another account
        assert not _hit(mine.do(messages=MSG)) and _hit(mine.do(messages=MSG))
        assert not _hit(theirs.do(messages=MSG))
    finally:
        cache_mod.set_process_mode(previous)
