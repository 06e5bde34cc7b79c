"""The v2 API's bodies and answers in the shapes the seeds read (pure: no I/O).

A call written for the v1 API (``system=``, ``max_output_tokens=``, ``texts=``, ``with_decode=``)
goes to the OpenAI-style v2 routes as their documented body, and the v2 answer comes back with the
v1 keys the seeds read added beside its own: ``["result"]`` on a chat answer and on each stream
chunk, ``["data"][i]["b64_image"]`` on an image. Nothing of the v2 body is removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qfnb.protocol.wires.qianfan.batch import v2_names

from ..params import LOCAL_KWARGS

__all__ = ["V2_ROUTES", "chat_answer", "chat_body", "chat_chunk", "chat_row", "embedding_body", "image_answer",
           "image_body", "rerank_body", "v2_fields"]

#: the v2 route of each API type (the path below the host)
V2_ROUTES = {
    "chat": "/v2/chat/completions",
    "completions": "/v2/chat/completions",
    "embeddings": "/v2/embeddings",
    "reranker": "/v2/rerankers",
    "text2image": "/v2/images/generations",
}

#: what never goes in a v2 body: the SDK's own options, and v1-only fields
_V1_ONLY = LOCAL_KWARGS | {"extra_parameters"}


def chat_body(fields: Mapping[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """A v2 chat body from a v1 call's fields: ``system=`` becomes the first message,
    ``max_output_tokens`` is ``max_completion_tokens``, ``user_id`` is ``user``."""
    return {"model": model, **chat_row(fields), "stream": stream}


def v2_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A v1 call's parameters under their v2 names (``max_output_tokens`` is ``max_completion_tokens``,
    ``user_id`` is ``user``), the SDK's own options and v1-only fields left out."""
    return v2_names(fields, _V1_ONLY | {"system"})


def chat_row(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A v1 call's fields as an OpenAI-style chat request (a batch job's row): :func:`chat_body`
    without its model and stream flag."""
    body = v2_fields(fields)
    system = fields.get("system")
    messages = list(body.get("messages") or [])
    if system:
        messages = [{"role": "system", "content": system}, *messages]
    body["messages"] = messages
    return body


def chat_answer(body: dict[str, Any]) -> dict[str, Any]:
    """A v2 chat answer with the v1 keys added: ``result`` (the first choice's text),
    ``is_truncated`` (it stopped at the length limit) and ``finish_reason``."""
    choice = _first_choice(body)
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    body.setdefault("result", str(message.get("content") or ""))
    body.setdefault("finish_reason", choice.get("finish_reason"))
    body.setdefault("is_truncated", choice.get("finish_reason") == "length")
    return body


def chat_chunk(body: dict[str, Any]) -> dict[str, Any]:
    """A v2 stream chunk with the v1 keys added: ``result`` (this chunk's text) and ``is_end``
    (its choice finished, or it is the usage chunk that closes the stream)."""
    choice = _first_choice(body)
    delta = choice.get("delta")
    delta = delta if isinstance(delta, dict) else {}
    body.setdefault("result", str(delta.get("content") or ""))
    finish = choice.get("finish_reason")
    body.setdefault("is_end", finish is not None or body.get("choices") == [])
    body.setdefault("is_truncated", finish == "length")
    return body


def embedding_body(fields: Mapping[str, Any], model: str) -> dict[str, Any]:
    """``{"model", "input", "user"}`` from an ``Embedding`` call's fields."""
    return {"model": model, **v2_names(fields, _V1_ONLY)}


def rerank_body(fields: Mapping[str, Any], model: str) -> dict[str, Any]:
    """``{"model", "query", "documents", "top_n", "user"}`` from a ``Reranker`` call's fields."""
    return embedding_body(fields, model)


def image_body(fields: Mapping[str, Any], model: str) -> dict[str, Any]:
    """An image-generation body: the prompt and options as given, the image asked for as
    ``b64_json`` (shown inline, and kept in a saved notebook) unless the call names another format."""
    body = embedding_body(fields, model)
    body.setdefault("response_format", "b64_json")
    return body


def image_answer(body: dict[str, Any]) -> dict[str, Any]:
    """A v2 image answer with each item's v1 ``b64_image`` beside its ``b64_json``."""
    for item in body.get("data") or []:
        if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
            item.setdefault("b64_image", item["b64_json"])
    return body


def _first_choice(body: Mapping[str, Any]) -> dict[str, Any]:
    choices = body.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else {}
    return first if isinstance(first, dict) else {}
