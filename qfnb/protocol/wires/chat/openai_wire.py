"""The OpenAI wire as today's clients send it, read into the shapes the platform serves.

What the openai SDK, LangChain, openai-agents, pydantic-ai, instructor and LiteLLM send by
default: an explicit ``null`` for an optional field (it means "absent"), ``content`` as a string
or as an array of typed parts on any role, the ``developer`` role (OpenAI's new name for
``system``), and embeddings asked as ``base64`` (the openai SDK's default).

Pure data work (no pydantic, no I/O); a problem raises one :class:`ProtocolError` naming the field.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from qfnb.protocol.errors import ErrorCode, ProtocolError

#: the roles an OpenAI chat history may hold (``developer`` is OpenAI's name for ``system`` since o1)
CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")
#: content parts that are text (``input_text``/``output_text``: the Responses API's names; ``refusal``:
#: an assistant's refusal given back in a history)
TEXT_PARTS = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}
#: content parts the platform's models cannot read (they read text only), with what they are
MEDIA_PARTS = {"image_url": "an image", "input_image": "an image", "input_audio": "audio", "file": "a file",
               "input_file": "a file"}
#: ``encoding_format`` values of the embeddings API
ENCODINGS = ("float", "base64")
#: on an OpenAI chat answer: the fields of the request the platform accepted but did not act on,
#: comma-separated (``metadata`` without ``store``, ``reasoning_effort`` for a model that does not reason...)
IGNORED_FIELDS_HEADER = "X-Qfnb-Ignored-Fields"
#: OpenAI's caps on ``metadata``: pairs, key and value lengths
METADATA_PAIRS, METADATA_KEY_CHARS, METADATA_VALUE_CHARS = 16, 64, 512


def drop_nulls(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` without its explicit ``null`` fields (OpenAI reads them as absent), also inside
    ``stream_options``; every other value is kept as it is."""
    out = {k: v for k, v in body.items() if v is not None}
    options = out.get("stream_options")
    if isinstance(options, dict):
        out["stream_options"] = {k: v for k, v in options.items() if v is not None}
    return out


def refuse_unknown(data: Mapping[str, Any], supported: Sequence[str], api: str, *,
                   instead: Mapping[str, str] | None = None, note: str = "") -> None:
    """Refuse, by name, the first field of ``data`` that ``api`` (e.g. ``"Responses API"``) does not
    take; ``instead`` names a better-known replacement, ``note`` ends the list of what it does take."""
    for key in data:
        if key not in supported:
            hint = f"; use {instead[key]!r} instead" if instead and key in instead else ""
            raise ProtocolError(key, f"is not supported by the local platform's {api}{hint} (supported: "
                                f"{', '.join(supported)}{note})")


def check_metadata(value: Any, field: str = "metadata") -> dict[str, str]:
    """OpenAI's ``metadata``: at most 16 pairs of strings, keys up to 64 characters, values up to 512."""
    if not isinstance(value, dict) or len(value) > METADATA_PAIRS:
        raise ProtocolError(field, f"must be an object of at most {METADATA_PAIRS} string pairs")
    for key, text in value.items():
        if not isinstance(key, str) or not key or len(key) > METADATA_KEY_CHARS:
            raise ProtocolError(field, f"keys must be strings of 1 to {METADATA_KEY_CHARS} characters, got "
                                f"{key!r:.80}")
        if not isinstance(text, str) or len(text) > METADATA_VALUE_CHARS:
            raise ProtocolError(f"{field}.{key}", f"must be a string of at most {METADATA_VALUE_CHARS} characters")
    return value


def check_content(content: Any, where: str, *, required: bool = True) -> None:
    """``content`` is a string or a non-empty list of typed parts (``{"type": "text", "text": ...}``,
    ``image_url``, ...); None only when not ``required``."""
    if isinstance(content, str) or (content is None and not required):
        return
    if not isinstance(content, list) or not content:
        raise ProtocolError(where, "must be a string or a non-empty list of content parts "
                            '([{"type": "text", "text": ...}])', ErrorCode.INVALID_MESSAGES)
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS:
            if not isinstance(part.get(TEXT_PARTS[kind]), str):
                raise ProtocolError(f"{where}[{j}].{TEXT_PARTS[kind]}", "must be a string",
                                    ErrorCode.INVALID_MESSAGES)
        elif kind not in MEDIA_PARTS:
            known = ", ".join([*TEXT_PARTS, *MEDIA_PARTS])
            raise ProtocolError(f"{where}[{j}].type", f"must be one of {known}, got {kind!r:.40}",
                                ErrorCode.INVALID_MESSAGES)


def content_text(content: Any, where: str) -> str | None:
    """The text of a ``content`` (a string, or its text parts joined with newlines); a part that is
    not text is refused by name: the platform's models read text only."""
    if content is None or isinstance(content, str):
        return content
    check_content(content, where)
    texts = []
    for j, part in enumerate(content):
        kind = part["type"]
        if kind in MEDIA_PARTS:
            raise ProtocolError(f"{where}[{j}]", f"is {MEDIA_PARTS[kind]} ({kind!r} part): the local platform's "
                                "models read text only; send the content as text", ErrorCode.INVALID_MESSAGES)
        texts.append(part[TEXT_PARTS[kind]])
    return "\n".join(texts)


def text_messages(messages: Sequence[Mapping[str, Any]], field: str = "messages") -> list[dict[str, Any]]:
    """An OpenAI history as the engines take it: every ``content`` one string (or None beside
    ``tool_calls``), ``developer`` turns as ``system`` ones; other keys are kept."""
    out = []
    for i, m in enumerate(messages):
        turn = dict(m)
        if turn.get("role") == "developer":
            turn["role"] = "system"
        if "content" in turn:
            turn["content"] = content_text(turn["content"], f"{field}[{i}].content")
        out.append(turn)
    return out


def prompt_texts(messages: Any) -> list[str]:
    """Every text of a history (string contents and text parts), for the prompt-size cap."""
    texts: list[str] = []
    if not isinstance(messages, list | tuple):
        return texts
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [p[TEXT_PARTS[p["type"]]] for p in content if isinstance(p, dict) and p.get("type") in TEXT_PARTS
                      and isinstance(p.get(TEXT_PARTS[p["type"]]), str)]
    return texts


# ---- embeddings ----------------------------------------------------------------------------------


def check_encoding(value: Any) -> str:
    """``encoding_format``: ``float`` (the default) or ``base64``."""
    if value is None:
        return "float"
    if value not in ENCODINGS:
        raise ProtocolError("encoding_format", f"must be 'float' or 'base64', got {value!r:.40}")
    return str(value)


def encode_vector(vector: Sequence[float], encoding: str) -> list[float] | str:
    """One embedding as OpenAI sends it: a list of floats, or (``base64``) the base64 of its
    little-endian float32 bytes, which the openai SDK decodes with numpy's ``float32``."""
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return [float(x) for x in vector]


def decode_vector(data: list[float] | str) -> list[float]:
    """The inverse of :func:`encode_vector` (a list is returned as floats)."""
    if isinstance(data, str):
        raw = base64.b64decode(data)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return [float(x) for x in data]
