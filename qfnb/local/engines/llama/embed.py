"""An embedding GGUF (``qfnb models add x.gguf --role embeddings``) served by llama-server's embedding
mode (``--embedding``: the GGUF's own pooling) and its ``POST /v1/embeddings``. Vectors are
llama-server's own (L2-normalised), unchanged."""

from __future__ import annotations

from qfnb.local.engines.base import Embedder, check_texts
from qfnb.local.engines.llama.process.server import LlamaServer

#: the longest one embedding call may take on the engine
TIMEOUT_S = 300.0
#: tokens of a short text (a sentence or a passage's chunk): one engine call is a step of these
SENTENCE_TOKENS = 32


class LlamaEmbedder(Embedder):
    """Embeds texts on one supervised ``llama-server --embedding``. Calls come packed by
    :class:`~qfnb.local.engines.gate.BatchingEmbedder`: one is about an engine step of sentences, and
    two are in flight, so the engine has the next while the platform answers one."""

    parallel = 2

    def __init__(self, name: str, server: LlamaServer) -> None:
        self.name, self.server = name, server
        self.batch_texts = max(1, server.config.encoder_step // SENTENCE_TOKENS)

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        check_texts(texts)
        body = self.server.post_json("/v1/embeddings", {"input": texts, "encoding_format": "float"},
                                     "the embedding engine", TIMEOUT_S)
        rows = sorted(body["data"], key=lambda d: int(d["index"]))
        return [list(map(float, d["embedding"])) for d in rows], int((body.get("usage") or {}).get("prompt_tokens")
                                                                         or 0)
