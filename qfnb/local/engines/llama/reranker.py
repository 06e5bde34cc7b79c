"""A cross-encoder GGUF (``qfnb models add x.gguf --role rerank``) served by llama-server's reranking
mode: ``--reranking`` (rank pooling: the model's classification head on each (query, document)
pair) and its ``POST /rerank``. Scores are llama-server's own, unchanged."""

from __future__ import annotations

import asyncio

from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama.process.server import LlamaServer

#: the longest one rerank call may take on the engine (a CPU scores a few pairs a second at worst)
TIMEOUT_S = 300.0


class LlamaReranker:
    """Scores (query, document) pairs on one supervised ``llama-server --reranking``."""

    def __init__(self, name: str, server: LlamaServer, gate: LaneGate) -> None:
        self.name, self.server, self.gate = name, server, gate

    async def ascore(self, query: str, documents: list[str]) -> tuple[list[float], int]:
        """Each document's relevance score (in input order) and the prompt tokens the engine read."""
        async with self.gate.turn():
            body = await asyncio.to_thread(self.server.post_json, "/rerank",
                                           {"query": query, "documents": documents, "top_n": len(documents)},
                                           "the reranking engine", TIMEOUT_S)
        scores = [0.0] * len(documents)
        for result in body["results"]:
            scores[int(result["index"])] = float(result["relevance_score"])
        return scores, int((body.get("usage") or {}).get("prompt_tokens") or 0)
