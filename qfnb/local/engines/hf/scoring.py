"""Answers scored in a forward pass over a model's transformers weights: every token of many answers at once.

llama-server reports no probabilities for prompt tokens, so the engine scores an answer by decoding it a token at a
time under a grammar of its ids (:meth:`~qfnb.local.engines.llama.engine.LlamaEngine.answer_token_logprobs`): as
many decode steps as the answer has tokens. A model the platform trained has its weights here too (the base's
transformers dir it was trained on, and the run's peft adapter), and one batched forward pass over them gives every
answer token's log-probability at once (:class:`ForwardScorer`).

The numbers are the same quantity computed on other weights and kernels: the transformers dir of a built-in model
is the GGUF's weights dequantised (to bf16, computed in float32), where llama.cpp multiplies the quantised weights
by activations it quantises to 8 bits. An answer's summed log-probability differs from the engine's by thousandths
to a few hundredths of a nat per token, more on unlikely tokens (``tests/local/engines/hf/test_forward_scoring_real.py``
holds them to :data:`AGREEMENT_PER_TOKEN`); margins compared across the two paths would mix those differences, so a
comparison scores both of its models by one path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qfnb.local.engines.base import common_prefix, render_gemma
from qfnb.local.engines.hf._quiet import quiet_loading

log = logging.getLogger(__name__)

N_THREADS = 2
#: logits held at once in one forward pass (float32 values): rows x answer positions x vocabulary, ~256 MiB
MAX_LOGITS = 64 * 1024 * 1024
#: adapters kept loaded beside the base (an older one is unloaded for a new one)
MAX_ADAPTERS = 4
#: seconds an unused scorer keeps its weights in memory
IDLE_SECONDS = 300.0
#: how far (nats per answer token) the forward pass and the engine's decode may differ on Gemma-3-270M: measured
#: 0.0004-0.004 on English answers and 0.061 on a Chinese one of unlikely tokens (-6 nats a token) for the base,
#: 0.017-0.045 with a LoRA adapter (llama.cpp's GGUF adapter against peft's), on the same tokens
AGREEMENT_PER_TOKEN = 0.1

#: one answer to score: its conversation's turns and the answer's text
Item = tuple[Sequence[dict[str, str]], str]


def render_prompt(tok: Any, template: str, messages: Sequence[dict[str, str]]) -> str:
    """The turns as the model reads them before its reply: Gemma's rendered here (after the tokenizer's BOS), else
    the tokenizer's chat template with the generation prompt."""
    if template == "gemma":
        return str(tok.bos_token or "") + render_gemma(list(messages))
    return str(tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True))


def whole_reply(tok: Any, template: str, messages: Sequence[dict[str, str]], prompt: str, answer: str) -> str:
    """The prompt and ``answer`` as the whole reply, its end-of-turn marker after it as the template closes the turn
    (what training labels): an answer that is the start of another is not the likelier by construction."""
    if template == "gemma":
        return prompt + answer + "<end_of_turn>"
    closed = str(tok.apply_chat_template([*messages, {"role": "assistant", "content": answer}],
                                         tokenize=False, add_generation_prompt=False))
    return closed if closed.startswith(prompt) else prompt + answer


def answer_ids(tok: Any, template: str, messages: Sequence[dict[str, str]], answer: str) -> tuple[list[int], int]:
    """The tokens an answer is scored on (the rendered turns, the answer and the end of the turn) and where the
    answer starts among them."""
    prompt = render_prompt(tok, template, messages)
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    full = [int(t) for t in tok(whole_reply(tok, template, messages, prompt, answer),
                                add_special_tokens=False)["input_ids"]]
    return full, max(1, common_prefix(p_ids, full))


def batch_logprobs(model: Any, seqs: Sequence[tuple[list[int], int]], pad_id: int = 0) -> list[list[float]]:
    """Each ``ids[start:]``'s log-probabilities after the tokens before it, for every ``(ids, start)`` of ``seqs``:
    teacher-forced, in forward passes of as many sequences as :data:`MAX_LOGITS` allows (sorted by length, left-padded
    so the answers end together, positions counted from each sequence's first real token), the vocabulary's logits
    computed for the answers' positions only."""
    import torch

    out: list[list[float]] = [[] for _ in seqs]
    vocab = int(model.config.get_text_config().vocab_size)
    order = sorted((k for k, (ids, start) in enumerate(seqs) if start < len(ids)), key=lambda k: len(seqs[k][0]))
    while order:
        rows: list[int] = []
        keep = 0
        for k in order:
            ids, start = seqs[k]
            wider = max(keep, len(ids) - start)
            if rows and (len(rows) + 1) * (wider + 1) * vocab > MAX_LOGITS:
                break
            rows.append(k)
            keep = wider
        order = order[len(rows):]
        width = max(len(seqs[k][0]) for k in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, k in enumerate(rows):
            ids = seqs[k][0]
            input_ids[r, width - len(ids):] = torch.tensor(ids)
            mask[r, width - len(ids):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                           logits_to_keep=keep + 1).logits.float()
            for r, k in enumerate(rows):
                ids, start = seqs[k]
                n = len(ids) - start
                row = logits[r, keep - n:keep]  # the logits before each answer token (the last column: after it)
                wanted = torch.tensor(ids[start:]).unsqueeze(1)
                out[k] = (row.gather(1, wanted).squeeze(1) - torch.logsumexp(row, dim=-1)).tolist()
    return out


class ForwardScorer:
    """A base model's transformers weights and the peft adapters asked of it, scoring answers in batched forward
    passes (:meth:`answer_logprobs`); one call at a time (a lock), the weights loaded on the first."""

    def __init__(self, model_dir: Path, *, template: str = "native") -> None:
        self.model_dir, self.template = Path(model_dir), template
        self._lock = threading.Lock()
        self._tok: Any = None
        self._base: Any = None
        self._peft: Any = None
        self._adapters: list[str] = []  # loaded, oldest first
        self.last_used = time.monotonic()

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(N_THREADS)
        started = time.perf_counter()
        with quiet_loading():
            self._tok = AutoTokenizer.from_pretrained(str(self.model_dir))
            self._base = AutoModelForCausalLM.from_pretrained(str(self.model_dir), dtype=torch.float32)
            self._base.eval()
        log.info("forward scoring: %s loaded in %.1f s", self.model_dir.name, time.perf_counter() - started)

    def _with_adapter(self, adapter: Path) -> Any:
        """The model with ``adapter`` (a peft dir) active, loaded if it is not."""
        key = f"a{abs(hash(str(adapter.resolve())))}"
        if self._peft is None:
            from peft import PeftModel

            with quiet_loading():
                self._peft = PeftModel.from_pretrained(self._base, str(adapter), adapter_name=key)
            self._peft.eval()
            self._adapters.append(key)
        elif key not in self._adapters:
            if len(self._adapters) >= MAX_ADAPTERS:
                self._peft.delete_adapter(self._adapters.pop(0))
            with quiet_loading():
                self._peft.load_adapter(str(adapter), adapter_name=key)
            self._adapters.append(key)
        self._peft.set_adapter(key)
        return self._peft

    def answer_logprobs(self, items: Sequence[Item], adapter: Path | None = None) -> list[tuple[float, int]]:
        """Each answer's summed log-probability as the whole reply to its turns (its end of turn included, as
        training labels it) and its token count, under the base, or with ``adapter`` (a peft dir) applied."""
        with self._lock:
            self.last_used = time.monotonic()
            if self._base is None:
                self._load()
            seqs = [answer_ids(self._tok, self.template, turns, answer) for turns, answer in items]
            pad = int(self._tok.pad_token_id or 0)
            if adapter is not None:
                scored = batch_logprobs(self._with_adapter(Path(adapter)), seqs, pad)
            elif self._peft is not None:  # the adapters are injected into the base's layers: off for the base
                with self._peft.disable_adapter():
                    scored = batch_logprobs(self._peft, seqs, pad)
            else:
                scored = batch_logprobs(self._base, seqs, pad)
            self.last_used = time.monotonic()
        return [(float(sum(lp)), len(lp)) for lp in scored]

    def unload(self) -> None:
        """The weights dropped (loaded again by the next call)."""
        with self._lock:
            self._tok = self._base = self._peft = None
            self._adapters = []


class ForwardScorers:
    """One :class:`ForwardScorer` per base model's weights, unloaded after :data:`IDLE_SECONDS` unused."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self._scorers: dict[Path, ForwardScorer] = {}
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def get(self, model_dir: Path, template: str) -> ForwardScorer:
        with self._lock:
            scorer = self._scorers.get(Path(model_dir))
            if scorer is None:
                scorer = self._scorers[Path(model_dir)] = ForwardScorer(model_dir, template=template)
            scorer.last_used = time.monotonic()
            self._watch()
        return scorer

    def _watch(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.idle_seconds, self._sweep)
            self._timer.daemon = True
            self._timer.start()

    def _sweep(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._timer = None
            idle = [d for d, s in self._scorers.items() if now - s.last_used >= self.idle_seconds]
            scorers = [self._scorers.pop(d) for d in idle]
            if self._scorers:
                self._watch()
        for scorer in scorers:
            scorer.unload()

    def close(self) -> None:
        with self._lock:
            scorers, self._scorers = list(self._scorers.values()), {}
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        for scorer in scorers:
            scorer.unload()
