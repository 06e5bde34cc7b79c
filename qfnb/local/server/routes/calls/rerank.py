"""Rerank on the local platform: v1 ``/reranker/{endpoint}``, ``/v1/rerank``, ``/v2/rerankers``.

No PyPI package ships the weights of a cross-encoder reranker (what was checked is in
``docs/local-platform.md``), so the default reranker ranks documents by the cosine similarity of the
built-in embedding model's vectors (query against each document): a bi-encoder, served as such
(``%qfmodels`` lists the embedding model with the ``reranker`` API type), and its answers say so
(``ranking: "cosine"`` and a ``note``): it cannot reorder a top-k its own embeddings ranked. A
cross-encoder GGUF added with ``qfnb models add x.gguf --role rerank`` answers with llama-server's
own scores (:mod:`qfnb.local.engines.llama.reranker`; ``ranking: "cross-encoder"``), and the cloud's
reranker names map to it.
"""

from __future__ import annotations

from typing import Any

from qfnb.local.domain.platform import Platform
from qfnb.local.domain.state.values import BodyError
from qfnb.local.server.serving.offload import offload
from qfnb.local.server.serving.serve import note_usage
from qfnb.protocol.limits import check_embedding_text

#: the most documents one call ranks
MAX_DOCUMENTS = 64
#: the request fields a rerank call takes (v1 names and OpenAI-style ones)
FIELDS = ("model", "query", "documents", "top_n", "user_id", "user", "stream", "extra_parameters")


def check(body: dict[str, Any]) -> tuple[str, list[str], int | None]:
    """``query`` (a non-empty string), ``documents`` (1 to :data:`MAX_DOCUMENTS` non-empty strings), ``top_n``;
    the query and each document within the embedding cap (each is embedded or scored as one text)."""
    for key in body:
        if key not in FIELDS:
            raise BodyError(key, f"is not a rerank field (supported: {', '.join(FIELDS)})")
    if body.get("stream"):
        raise BodyError("stream", "a rerank answer is not streamed; send stream: false or leave it out")
    query, docs, top_n = body.get("query"), body.get("documents"), body.get("top_n")
    if not isinstance(query, str) or not query.strip():
        raise BodyError("query", "must be a non-empty string")
    if not isinstance(docs, list) or not docs or not all(isinstance(d, str) and d for d in docs):
        raise BodyError("documents", "must be a non-empty list of non-empty strings")
    if len(docs) > MAX_DOCUMENTS:
        raise BodyError("documents", f"at most {MAX_DOCUMENTS} documents per call, got {len(docs)}")
    check_embedding_text(query, "query")
    for i, doc in enumerate(docs):
        check_embedding_text(doc, f"documents[{i}]")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise BodyError("top_n", f"must be a positive integer, got {top_n!r:.40}")
    return query, docs, top_n


async def rerank(platform: Platform, body: dict[str, Any], endpoint: str | None = None) -> dict[str, Any]:
    """``{"model", "ranking", "results": [{"document", "relevance_score", "index"}], "usage"}``, best
    first; a cosine ranking adds a ``note`` saying what it cannot do."""
    query, docs, top_n = check(body)
    model = await offload(platform.resolve, "reranker", endpoint or str(body.get("model") or "bce-reranker-base"))
    platform.note_loading(model)
    if model.kind == "llama.cpp":  # a cross-encoder GGUF: llama-server's
        ranker = await offload(platform.registry.cross_encoder, platform.engine_endpoint(model))  # own scores
        scores, tokens = await ranker.ascore(query, docs)
    else:  # each document's cosine similarity to the query under the embedding model
        embedder = await offload(platform.registry.embedder, platform.engine_endpoint(model))
        vectors, tokens = await embedder.aembed([query, *docs])
        scores = [sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors[1:]]
    order = sorted(range(len(docs)), key=lambda i: -scores[i])[:top_n]
    results = [{"document": docs[i], "relevance_score": round(float(scores[i]), 6), "index": i} for i in order]
    ranking = "cross-encoder" if model.kind == "llama.cpp" else "cosine"
    note_usage(model.name, "rerank", tokens)
    answer: dict[str, Any] = {"model": model.name, "ranking": ranking, "results": results,
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    if ranking == "cosine":
        answer["note"] = (f"{model.name} ranks by the cosine of its own embeddings (a bi-encoder, not a "
                          f"cross-encoder): it cannot reorder a top-k that {model.name}'s embeddings already "
                          "ranked. For reranking, add a cross-encoder GGUF: qfnb models add x.gguf --role rerank")
    return answer
