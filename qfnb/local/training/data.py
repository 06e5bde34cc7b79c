"""SFT data: read prompt/response pairs, render them with the chat template, label the answer tokens only."""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfnb.protocol.console import train_formats

log = logging.getLogger("qfnb.local.training")

IGNORE = -100


class DataError(ValueError):
    """The training file is missing or has a malformed line."""


@dataclass(frozen=True)
class Example:
    messages: tuple[dict[str, str], ...]  # the conversation up to (not including) the answer
    answer: str


def end_token_ids(tok: Any) -> list[int]:
    """The ids that end a generated answer: the end of sequence and the chat markers the tokenizer has
    (Gemma's ``<end_of_turn>``, Qwen's ``<|im_end|>``); a marker it lacks (its unknown token) is not one."""
    found = {tok.eos_token_id, tok.convert_tokens_to_ids("<end_of_turn>"), tok.convert_tokens_to_ids("<|im_end|>")}
    return [t for t in found if isinstance(t, int) and t >= 0 and t != tok.unk_token_id]


def _response_text(value: Any, where: str) -> str:
    # the platform's SFT format nests responses as [["text"]]; plain strings are accepted too
    while isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: response must be a non-empty string")
    return value


def _example(obj: Any, where: str) -> Example:
    turns = obj if isinstance(obj, list) else [obj]
    if not turns or not all(isinstance(t, dict) for t in turns):
        raise DataError(f"{where}: expected an object {{prompt, response}} or a list of them")
    messages: list[dict[str, str]] = []
    system = turns[0].get("system")
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    answer = ""
    for i, turn in enumerate(turns):
        prompt = turn.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataError(f"{where}: prompt must be a non-empty string")
        if i:
            messages.append({"role": "assistant", "content": answer})
        messages.append({"role": "user", "content": prompt})
        answer = _response_text(turn.get("response"), where)
    return Example(tuple(messages), answer)


def load_examples(path: Path) -> list[Example]:
    """Examples from a JSONL file of ``{"prompt", "response"}`` (or multi-turn lists of them)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"train_file: {path} not found") from None
    try:
        out = [_example(obj, where) for where, obj in train_formats.json_lines(lines)]
    except train_formats.FormatError as exc:
        raise DataError(str(exc)) from None
    if not out:
        raise DataError(f"train_file: {path} has no examples")
    return out


def encode(tokenizer: Any, example: Example, max_seq_len: int) -> tuple[list[int], list[int]] | None:
    """``(input_ids, labels)``: the prompt masked, the answer and the end-of-turn marker labelled.

    The split comes from the tokenizer's chat template, rendered with and without the answer, so
    training sees exactly the text the engines render at serving time. ``None`` if nothing of the
    answer fits in ``max_seq_len``.
    """
    msgs = list(example.messages)
    prompt = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [*msgs, {"role": "assistant", "content": example.answer}], tokenize=False, add_generation_prompt=False
    )
    if not full.startswith(prompt):
        raise DataError("the chat template does not render the prompt as a prefix of the conversation")
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    ids = (p_ids + a_ids)[:max_seq_len]
    labels = ([IGNORE] * len(p_ids) + a_ids)[:max_seq_len]
    if all(x == IGNORE for x in labels[1:]):
        return None
    return ids, labels


def encode_all(tokenizer: Any, examples: Sequence[Example], max_seq_len: int) -> list[tuple[list[int], list[int]]]:
    rows = [r for r in (encode(tokenizer, e, max_seq_len) for e in examples) if r is not None]
    if len(rows) < len(examples):
        log.warning("%d examples dropped: their prompt fills maxSeqLen=%d", len(examples) - len(rows), max_seq_len)
    if not rows:
        raise DataError(f"no example fits maxSeqLen={max_seq_len}")
    return rows


def batches(n_rows: int, batch_size: int, seed: int) -> Iterator[tuple[int, list[int]]]:
    """Endless ``(epoch, row indices)`` batches, reshuffled each epoch (epochs counted from 1)."""
    rng = random.Random(seed)
    for epoch in itertools.count(1):
        order = list(range(n_rows))
        rng.shuffle(order)
        for start in range(0, n_rows, batch_size):
            yield epoch, order[start : start + batch_size]


def collate(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> tuple[Any, Any, Any]:
    """Right-padded ``input_ids``, ``attention_mask``, ``labels`` tensors (padded to the longest row)."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (r_ids, r_labels) in enumerate(rows):
        ids[i, : len(r_ids)] = torch.tensor(r_ids)
        mask[i, : len(r_ids)] = 1
        labels[i, : len(r_labels)] = torch.tensor(r_labels)
    return ids, mask, labels
