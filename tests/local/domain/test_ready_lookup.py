"""A model call whose model is known and whose engine is loaded is looked up on the event loop: no
thread hop (each one wakes a thread and passes the GIL, taken from the engine's cores). Anything that
changed what a name means, or that needs a blocking step, sends the lookup back to a thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from platform_doubles import FakeRegistry
from platform_helpers import client_for, make_settings, token

from qfnb.local.domain.platform import Platform
from qfnb.local.domain.state.values import BodyError
from qfnb.local.engines.api import Engine
from qfnb.local.server.serving import serve
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX


class TellingRegistry(FakeRegistry):
    """The fake registry, telling (as the real one does) when what it serves changed and which engines
    are loaded already."""

    def __init__(self) -> None:
        super().__init__()
        self.changes = 0

    def generation(self) -> int | None:
        return self.changes

    def ready_chat(self, endpoint: str) -> Engine | None:
        face = self._faces.get(endpoint)
        return face if face is not None and face.engine is self.engines.get(endpoint) else None

    def register_adapter(self, *args: Any, **kw: Any) -> Any:
        self.changes += 1
        return super().register_adapter(*args, **kw)


def test_a_name_resolved_once_is_known_until_what_it_read_changes(tmp_path: Path) -> None:
    registry = TellingRegistry()
    platform = Platform(make_settings(tmp_path), registry)
    try:
        assert platform.resolved("chat", "tiny-chat") is None  # never looked up
        model = platform.resolve("chat", "tiny-chat")
        assert platform.resolved("chat", "TINY-CHAT") is model  # (names match as resolve matches them)
        assert platform.resolved("embeddings", "tiny-chat") is None  # another API's lookup is its own

        platform.store.insert("services", {"uri": "elsewhere", "status": "Deploying"})  # the services changed
        assert platform.resolved("chat", "tiny-chat") is None
        assert platform.resolve("chat", "tiny-chat") is model and platform.resolved("chat", "tiny-chat") is model

        registry.changes += 1  # the registry's models changed
        assert platform.resolved("chat", "tiny-chat") is None

        with pytest.raises(BodyError, match="API name not exist"):
            platform.resolve("chat", "no-such-model")
        assert platform.resolved("chat", "no-such-model") is None  # an unknown name is never remembered
    finally:
        platform.shutdown()


def test_a_registry_that_cannot_tell_its_changes_is_always_asked_in_a_thread(tmp_path: Path) -> None:
    platform = Platform(make_settings(tmp_path), FakeRegistry())  # generation() is None
    try:
        platform.resolve("chat", "tiny-chat")
        assert platform.resolved("chat", "tiny-chat") is None
    finally:
        platform.shutdown()


def test_the_second_call_to_a_loaded_model_takes_no_thread_hop(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    hops: list[str] = []
    offload = serve.offload

    async def counted(fn: Any, *args: Any) -> Any:
        hops.append(getattr(fn, "__name__", repr(fn)))
        return await offload(fn, *args)

    monkeypatch.setattr(serve, "offload", counted)
    with client_for(tmp_path, TellingRegistry()) as c:
        params = {"access_token": token(c)}
        answers = [c.post(MODEL_API_PREFIX + "/chat/tiny-chat", params=params,
                          json={"messages": [{"role": "user", "content": f"hi {i}"}]}).json()["result"]
                   for i in range(3)]
        first = list(hops)
        assert c.post(MODEL_API_PREFIX + "/chat/no-such-model", params=params,
                      json={"messages": [{"role": "user", "content": "hi"}]}).json()["error_code"] == 336005
    assert answers == ["tiny-chat: hi 0", "tiny-chat: hi 1", "tiny-chat: hi 2"]
    assert first == ["resolve", "chat"]  # the first call's lookup and load; the others none
    assert hops[2:] == ["resolve"]  # an unknown name is looked up (in the store too), in a thread
