"""PostPretrain (continued pre-training) on the LoRA loop: plain text, every token learned.

A conversation (:class:`~qfnb.protocol.console.train_formats.Conversation`) is a text in the base's chat format,
as its chat template renders it (so the turns are learned as the model will be asked them); what the template
writes before the first message (its begin marker, a default system message such as Qwen's "You are Qwen, created
by Alibaba Cloud...", the first turn's header) is context, not learned, or the tuned model recites it.
The texts are tokenised (the tokenizer's begin marker first, its end marker after each text), joined into
one stream and cut into ``maxSeqLen`` blocks (packing, as Hugging Face's ``group_texts`` does); a block's
loss is the causal LM loss on all its tokens. Held out, a run scores the same loss on held-out blocks
(``evalLoss``) and reports its perplexity, ``exp(evalLoss)``, as ``valid_perplexity``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from qfnb.local.training import data
from qfnb.protocol.console.train_formats import Conversation, Record, Text

#: the shortest last block kept (a shorter tail teaches little and skews the per-block mean)
MIN_TAIL = 16


def encode(tok: Any, records: Sequence[Record], max_seq_len: int) -> list[tuple[list[int], list[int]]]:
    """Packed ``(input_ids, labels)`` blocks of ``maxSeqLen`` tokens, labels equal to the ids (a conversation's
    template preamble :data:`~qfnb.local.training.data.IGNORE`)."""
    stream: list[int] = []
    learned: list[int] = []
    eos = tok.eos_token_id
    for r in records:
        if isinstance(r, Text):
            ids = tok(r.text)["input_ids"]  # the tokenizer's begin marker, where it has one
            stream.extend(ids)
            learned.extend(ids)
        elif isinstance(r, Conversation):  # the template writes the begin marker where the model has one
            context, ids = _conversation(tok, r)
            stream.extend(context + ids)
            learned.extend([data.IGNORE] * len(context) + ids)
        else:
            raise TypeError(f"a PostPretrain run takes plain text or conversations, got {type(r).__name__}")
        if eos is not None:
            stream.append(eos)
            learned.append(eos)
    blocks = [(stream[i:i + max_seq_len], learned[i:i + max_seq_len]) for i in range(0, len(stream), max_seq_len)]
    if len(blocks) > 1 and len(blocks[-1][0]) < MIN_TAIL:
        blocks.pop()
    rows = [b for b in blocks if len(b[0]) > 1 and any(x != data.IGNORE for x in b[1][1:])]
    if not rows:
        raise data.DataError("the text has fewer than two tokens: nothing to learn")
    return rows


def _conversation(tok: Any, conversation: Conversation) -> tuple[list[int], list[int]]:
    """A conversation's tokens in the chat format: the template's preamble (before the first message's text),
    then the rest."""
    chat = tok.apply_chat_template(list(conversation.messages), tokenize=False)
    first = conversation.messages[0]["content"]
    at = chat.find(first) if first else -1
    if at <= 0:  # nothing before it, or the template rewrote the text: all of it learned
        return [], tok(chat, add_special_tokens=False)["input_ids"]
    return (tok(chat[:at], add_special_tokens=False)["input_ids"],
            tok(chat[at:], add_special_tokens=False)["input_ids"])


def perplexity(loss: float) -> float:
    """``exp(loss)``, capped where it would overflow."""
    return math.exp(min(loss, 50.0))
