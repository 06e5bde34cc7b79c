"""A model added from Python shows in the notebook's Tab completion at once (the name cache refreshes)."""

from __future__ import annotations

import threading

from qfnb.notebook.models import discovery


def test_forget_models_refreshes_every_name_cache_at_once() -> None:
    served = ["Qwen2.5-Coder-0.5B-Instruct"]
    fetched = threading.Event()

    def fetch() -> discovery.ModelList:
        rows = [discovery.ModelRow("chat", n, "chat/" + n.lower()) for n in served]
        fetched.set()
        return discovery.ModelList(rows, "test")

    cache = discovery.NameCache(fetch, ttl=3600.0)
    cache.get()
    assert fetched.wait(10)
    fetched.clear()
    listing = cache.get()
    assert listing is not None and listing.names("chat") == ["Qwen2.5-Coder-0.5B-Instruct"]
    served.append("my-qwen")
    assert cache.get() is listing and not fetched.is_set()  # fresh for an hour: no refetch on its own
    discovery.forget_models()  # what qfnb.local_models.add does after the daemon added a model
    assert fetched.wait(10)
    for _ in range(1000):
        if cache.listing is not listing:
            break
        fetched.wait(0.01)
    assert cache.listing is not None and "my-qwen" in cache.listing.names("chat")
