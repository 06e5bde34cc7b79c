"""A cross-encoder GGUF added with ``--role rerank`` and served by llama-server's reranking mode
(marked ``real_model``: a real llama-server process). No reranker weights come in a PyPI package,
so the test writes a tiny random one (:mod:`tiny_reranker`); its scores through ``/v1/rerank``,
``/v2/rerankers`` and v1 ``Reranker().do`` must be llama-server's own ``/rerank`` scores, equal to
what transformers computes for the same model, and the order must follow them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import tiny_reranker
from fakes.cloud import serve
from platform_helpers import CREDS, bearer, console, make_settings
from starlette.testclient import TestClient

from qfnb._core.config import Config
from qfnb.local.engines.llama.process.command import find_binary
from qfnb.local.engines.registry import EngineOptions, EngineRegistry
from qfnb.local.engines.store.model_check import NotAModel
from qfnb.local.server.app import create_app
from qfnb.notebook.models.discovery import rows_from_services
from qfnb.resources import Reranker

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]

QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "the cat sat on the mat", "berlin", "the weather today is rain",
        "money in the bank"]


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_reranker.tiny_model()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, model: Any) -> Iterator[tuple[TestClient, EngineRegistry]]:
    tmp = tmp_path_factory.mktemp("rerank")
    gguf = tiny_reranker.write_gguf(model, tmp / "tiny-rerank.gguf")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QFNB_MODEL_CACHE", str(tmp / "store"))  # a store of this test's own
        registry = EngineRegistry(tmp / "data", options=EngineOptions(slots=2))
        entry = registry.store.add(gguf, "tiny-rerank")
        assert entry.roles == ("rerank",)  # found from the GGUF: rank pooling and a classification head
        with pytest.raises(NotAModel, match="role 'chat' does not fit this model; it can be: rerank"):
            registry.store.add(gguf, "tiny-chat", roles=("chat",))
        registry.reload_store()
        with TestClient(create_app(make_settings(tmp / "data"), registry), base_url="http://127.0.0.1:8123") as c:
            yield c, registry
        registry.close()


def _engine_scores(registry: EngineRegistry) -> list[float]:
    """llama-server's own ``/rerank`` scores, asked of the platform's engine process directly."""
    server = registry.cross_encoder("tiny-rerank").server
    lease = server.acquire()
    try:
        body = httpx.post(f"{lease.url}/rerank", json={"query": QUERY, "documents": DOCS, "top_n": len(DOCS)},
                          headers={"Authorization": f"Bearer {lease.key}"}, timeout=60).json()
    finally:
        server.release(lease)
    scores = [0.0] * len(DOCS)
    for r in body["results"]:
        scores[r["index"]] = r["relevance_score"]
    return scores


def _by_index(results: list[dict[str, Any]]) -> dict[int, float]:
    return {r["index"]: r["relevance_score"] for r in results}


def test_a_rerank_gguf_answers_with_llama_servers_own_scores(platform: tuple[TestClient, EngineRegistry],
                                                              model: Any) -> None:
    client, registry = platform
    auth = {"Authorization": f"Bearer {bearer(client)}"}
    v1 = client.post("/v1/rerank", headers=auth, json={"model": "tiny-rerank", "query": QUERY, "documents": DOCS})
    assert v1.status_code == 200, v1.text
    results = v1.json()["results"]
    own = _engine_scores(registry)
    assert _by_index(results) == {i: round(s, 6) for i, s in enumerate(own)}
    assert [r["index"] for r in results] == sorted(range(len(DOCS)), key=lambda i: -own[i])  # best first
    assert [r["document"] for r in results] == [DOCS[r["index"]] for r in results]
    assert v1.json()["usage"]["prompt_tokens"] > 0
    # the cross-encoder's scores are the model's: transformers on the same pairs ([CLS] query [SEP] doc)
    cls, sep = tiny_reranker.VOCAB.index("[CLS]"), tiny_reranker.VOCAB.index("[SEP]")
    truth = tiny_reranker.hf_scores(model, QUERY, DOCS, lambda q, d: [
        cls, *tiny_reranker.wordpiece_ids(q), sep, *tiny_reranker.wordpiece_ids(d)])
    assert own == pytest.approx(truth, abs=1e-4)
    v2 = client.post("/v2/rerankers", headers=auth, json={"model": "tiny-rerank", "query": QUERY,
                                                         "documents": DOCS, "top_n": 2}).json()
    assert v2["results"] == results[:2]


def test_v1_reranker_do_and_the_model_lists(platform: tuple[TestClient, EngineRegistry]) -> None:
    client, _ = platform
    listed = {m["id"] for m in client.get("/v1/models", headers={
        "Authorization": f"Bearer {bearer(client)}"}).json()["data"]}
    assert "tiny-rerank" in listed
    services = console(client, "/wenxinworkshop/service/list", {})["result"]
    roles = {(r.kind, r.name): r.role for r in rows_from_services(services, {})}  # what %qfmodels shows
    assert roles[("reranker", "tiny-rerank")] == "rerank" and ("embedding", "tiny-rerank") not in roles
    with serve(client.app, lifespan="off") as url:
        cfg = Config.from_env({}, base_url=url, console_api_base_url=url, iam_base_url=url, ak=CREDS.api_key,
                              sk=CREDS.secret_key, access_key=CREDS.access_key, secret_key=CREDS.iam_secret_key)
        ranked = Reranker(config=cfg).do(QUERY, DOCS, model="tiny-rerank", top_n=3)
    first = client.post("/v1/rerank", headers={"Authorization": f"Bearer {bearer(client)}"},
                        json={"model": "tiny-rerank", "query": QUERY, "documents": DOCS}).json()["results"]
    assert ranked["results"] == first[:3]
