"""An embedding GGUF added with ``qfnb models add x.gguf`` (its role found from its pooling) or
``--role embed``, served by llama-server's embedding mode through the platform's embeddings routes
(marked ``real_model``: a real llama-server process). The model is the tiny random BERT of
:mod:`tiny_reranker` written with mean pooling and no head; the platform's vectors must be
llama-server's own, unit length, and the same through v1, ``/v1/embeddings`` and ``/v2/embeddings``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import tiny_reranker
from platform_helpers import bearer, make_settings, token
from starlette.testclient import TestClient

from qfnb.local.engines.llama.process.command import find_binary
from qfnb.local.engines.registry import EngineOptions, EngineRegistry
from qfnb.local.engines.store.model_check import NotAModel
from qfnb.local.server.app import create_app
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]

def flat(rows: list[list[float]]) -> list[float]:
    return [x for row in rows for x in row]


TEXTS = ["the cat sat on the mat", "paris is the capital of france", "rain today"]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, EngineRegistry]]:
    tmp = tmp_path_factory.mktemp("embed")
    gguf = tiny_reranker.write_gguf(tiny_reranker.tiny_model(), tmp / "tiny-embed.gguf", embedder=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QFNB_MODEL_CACHE", str(tmp / "store"))
        registry = EngineRegistry(tmp / "data", options=EngineOptions(slots=2))
        assert registry.store.add(gguf, "tiny-embed").roles == ("embeddings",)  # found from its pooling
        with pytest.raises(NotAModel, match="role 'chat' does not fit this model; it can be: embeddings"):
            registry.store.add(gguf, "tiny-chat", roles=("chat",))
        registry.reload_store()
        with TestClient(create_app(make_settings(tmp / "data"), registry), base_url="http://127.0.0.1:8123") as c:
            yield c, registry
        registry.close()


def test_an_embedding_gguf_answers_through_every_embeddings_route(platform: tuple[TestClient,
                                                                                  EngineRegistry]) -> None:
    client, registry = platform
    v1 = client.post(MODEL_API_PREFIX + "/embeddings/tiny_embed", params={"access_token": token(client)},
                     json={"input": TEXTS})
    assert v1.status_code == 200 and v1.headers["X-Qfnb-Model"] == "tiny-embed", v1.text
    vectors = [d["embedding"] for d in v1.json()["data"]]
    assert len(vectors) == 3 and all(len(v) == 32 for v in vectors)
    assert all(sum(x * x for x in v) == pytest.approx(1.0, abs=1e-4) for v in vectors)
    assert v1.json()["usage"]["prompt_tokens"] > len(TEXTS)
    for prefix in ("/v1", "/v2"):
        openai = client.post(prefix + "/embeddings", headers={"Authorization": "Bearer " + bearer(client)},
                             json={"model": "tiny-embed", "input": TEXTS})
        assert flat([d["embedding"] for d in openai.json()["data"]]) == pytest.approx(flat(vectors), abs=1e-6)
    server = registry.embedder("tiny-embed").embedder.server  # type: ignore[attr-defined]
    lease = server.acquire()
    try:
        bare = httpx.post(f"{lease.url}/v1/embeddings", headers={"Authorization": f"Bearer {lease.key}"},
                          json={"input": TEXTS}, timeout=60).json()
    finally:
        server.release(lease)
    assert flat([d["embedding"] for d in bare["data"]]) == pytest.approx(flat(vectors), abs=1e-6)  # the engine's
    assert vectors[0] != pytest.approx(vectors[1], abs=1e-3)
