"""Preparing a prompt for our own ``llama-server`` once, before it takes an engine slot.

The chat template is rendered once (the engine's ``/apply-template``, or Gemma's turn format
rendered here) and tokenized once (``/tokenize``); the tokens then go to ``/completions`` as
they are, so the engine neither renders nor tokenizes again. Knowing the count first, the
platform refuses a prompt that does not fit the model's context (in tokens: what costs) before
any prefill, trims ``max_tokens`` to the room left, and sends a long prompt to a high-numbered
slot: llama-server fills each step's batch slot by slot, so short prompts in low slots get
their share of every step instead of waiting for a long prefill to end.

A short text needs no count: a token is at least one byte of its UTF-8 (or a special token, longer
still), so a text of at most :data:`SHORT_PROMPT_BYTES` bytes is a short prompt, and one whose bytes
leave its ``max_tokens`` room in the context fits untrimmed. Such a text goes to ``/completions``
as it is, and the engine tokenizes it exactly as ``/tokenize`` would (special tokens parsed, BOS
added): the same tokens, one round trip (about a tenth of the first token's wait on this 2-core
machine) less.
"""

from __future__ import annotations

from typing import Any

import httpx

from qfnb.local.engines.base import PromptTooLong
from qfnb.local.engines.llama import tool_calls
from qfnb.local.engines.llama.link import transport

#: a prompt longer than this (tokens) takes more than one engine step to prefill: a "long" one
LONG_PROMPT_TOKENS = 256
#: the tokens a tokenizer may add to a text's own (BOS, EOS)
ADDED_TOKENS = 2
#: a text this long (UTF-8 bytes) or shorter is a short prompt however it tokenizes
SHORT_PROMPT_BYTES = LONG_PROMPT_TOKENS - ADDED_TOKENS

#: a prompt as it goes to ``/completions``: token ids, or a short text (:func:`prepare`)
Prompt = list[int] | str


def engine_root(base_url: str) -> str:
    """The engine's own root URL (``…/v1`` stripped)."""
    return base_url.rstrip("/").removesuffix("/v1")


async def render_chat(client: httpx.AsyncClient, base_url: str, headers: dict[str, str],
                      messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
    """The model's own chat template applied to ``messages`` (with the assistant's turn opened),
    and to ``tools`` (the template lists them for the model)."""
    payload: dict[str, Any] = {"messages": messages, **({"tools": tools} if tools else {})}
    resp = await client.post(engine_root(base_url) + "/apply-template", json=payload, headers=headers)
    resp.raise_for_status()
    return str(resp.json()["prompt"])


async def tokenize(client: httpx.AsyncClient, base_url: str, headers: dict[str, str], text: str) -> list[int]:
    """``text`` as the engine's tokens, special tokens parsed and BOS added as the model wants
    (what the engine itself does with a text prompt)."""
    resp = await client.post(engine_root(base_url) + "/tokenize",
                             json={"content": text, "add_special": True, "parse_special": True}, headers=headers)
    resp.raise_for_status()
    return [int(t) for t in resp.json()["tokens"]]


def most_tokens(prompt: Prompt) -> int:
    """The prompt's tokens: its count, or for a text the most it can tokenize to."""
    return len(prompt) if isinstance(prompt, list) else len(prompt.encode()) + ADDED_TOKENS


def is_long(prompt: Prompt) -> bool:
    """Whether the prompt takes more than one engine step to prefill (a short text never does)."""
    return isinstance(prompt, list) and len(prompt) > LONG_PROMPT_TOKENS


def fit(name: str, prompt: Prompt, n_ctx: int, body: dict[str, Any]) -> None:
    """Refuse a prompt that leaves no room in the context; trim ``max_tokens`` to the room left."""
    room = n_ctx - most_tokens(prompt)
    if room < 1:
        size = f"{len(prompt)}" if isinstance(prompt, list) else f"up to {most_tokens(prompt)}"
        raise PromptTooLong(f"the prompt is {size} tokens; {name} has a context of {n_ctx} tokens "
                            "(prompt and answer together)")
    body["max_tokens"] = min(int(body.get("max_tokens") or room), room)


def _short(text: str, room: int | None) -> bool:
    """Whether ``text`` may go as it is: short whatever its tokens, and ``room`` tokens left beside it."""
    size = len(text.encode())
    return room is not None and size <= SHORT_PROMPT_BYTES and size + ADDED_TOKENS <= room


async def prepare(base_url: str, headers: dict[str, str], source: str | list[dict[str, Any]],
                  tools: list[dict[str, Any]] | None = None, forced: bool = False,
                  room: int | None = None, prefix: str = "") -> tuple[Prompt, str]:
    """The prompt as it goes to ``/completions`` (a chat rendered by the engine's template first, with
    ``tools``; a ``forced`` call opened with the template's own call opener) and that opener: its
    tokens, or the text itself when it is short and leaves ``room`` tokens (its answer's) in the
    context (see the module doc; None: always the tokens). ``prefix``: the reply's start, already written,
    after the opener (the answer goes on from it). Both calls are idempotent, so one sent
    on a connection the engine had just closed is sent again, once."""
    async def once() -> tuple[Prompt, str]:
        text = source if isinstance(source, str) else tool_calls.fix_rendered(await render_chat(
            transport.client(), base_url, headers, source, tools))
        opener = tool_calls.call_prefix(text) if forced else ""
        whole = text + opener + prefix
        if _short(whole, room):
            return whole, opener
        return await tokenize(transport.client(), base_url, headers, whole), opener

    try:
        return await once()
    except httpx.RemoteProtocolError:
        return await once()
