"""Routes of the cloud double for the rarer inference APIs: ``reranker``, ``image2text`` and
the ``tokenizer``. Deterministic echoes that check the wire format (required fields, types)
the way the platform does, answering its error codes otherwise.

``install(fake)`` adds them to a :class:`~tests.fakes.cloud.FakeQianfan`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from functools import partial

from .cloud import PREFIX, Captured, FakeQianfan, Reply

_BAD = 336003  # invalid argument


def _bad(msg: str) -> Reply:
    return Reply({"error_code": _BAD, "error_msg": msg})


def install(fake: FakeQianfan) -> FakeQianfan:
    handlers: dict[str, Callable[[Captured], Reply]] = {"reranker": _reranker, "image2text": _image2text,
                                                        "tokenizer": _tokenizer}
    for api, handler in handlers.items():
        fake.route("POST", f"{PREFIX}/{api}/*")(partial(_authorized, fake, handler))
    return fake


def _authorized(fake: FakeQianfan, handler: Callable[[Captured], Reply], req: Captured) -> Reply:
    """``handler``'s answer to a request with a valid access token or signature (else the auth error)."""
    err = fake._inference_auth(req)
    return Reply(err) if err is not None else handler(req)


def _reranker(req: Captured) -> Reply:
    body = req.json or {}
    query, docs = body.get("query"), body.get("documents")
    if not isinstance(query, str) or not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
        return _bad("query must be a string and documents a list of strings")
    words = set(query.split())
    scored = sorted(((len(words & set(d.split())) / (1 + len(d.split())), i, d) for i, d in enumerate(docs)),
                    key=lambda t: (-t[0], t[1]))
    top = body.get("top_n") or len(docs)
    results = [{"document": d, "relevance_score": s, "index": i} for s, i, d in scored[:top]]
    return Reply({"id": "as-rerank", "object": "reranker_list", "created": 1, "results": results,
                  "usage": {"prompt_tokens": len(docs), "total_tokens": len(docs)}})


def _image2text(req: Captured) -> Reply:
    body = req.json or {}
    try:
        size = len(base64.b64decode(str(body.get("image") or ""), validate=True))
    except (binascii.Error, ValueError):
        return _bad("image must be base64")
    if not body.get("prompt") or not size:
        return _bad("prompt and image are required")
    return Reply({"id": "as-i2t", "object": "chat.completion", "created": 1,
                  "result": f"an image of {size} bytes; asked: {body['prompt']}",
                  "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


def _tokenizer(req: Captured) -> Reply:
    body = req.json or {}
    if not isinstance(body.get("prompt"), str) or not isinstance(body.get("model"), str):
        return _bad("prompt and model are required")
    return Reply({"object": "tokenizer", "created": 1, "usage": {"total_tokens": len(body["prompt"])}})
