"""The transformers backend: tiny test models, fine-tuned adapters via peft, and the no-llama.cpp fallback."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from qfnb.local.engines.ask import GenParams, Sampling
from qfnb.local.engines.base import ChatEngine, Delta, common_prefix, render_gemma, stream_deltas, token_budget
from qfnb.local.engines.hf._quiet import quiet_loading

N_THREADS = 2


def sample_next(logits: Any, seen: Any, gp: GenParams, generator: Any) -> int:
    """Pick the next token: repeat penalty over ``seen``, then greedy or temperature/top-k/top-p sampling."""
    import torch  # deferred: torch loads only in an engine that needs it
    logits = logits.float().clone()
    if gp.repeat_penalty != 1.0 and seen.numel():
        prev = logits[seen]
        logits[seen] = torch.where(prev > 0, prev / gp.repeat_penalty, prev * gp.repeat_penalty)
    if gp.greedy:
        return int(torch.argmax(logits))
    logits = logits / gp.temperature
    if gp.top_k > 0:
        kth = torch.topk(logits, min(gp.top_k, logits.numel())).values[-1]
        logits[logits < kth] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    if gp.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        cut = torch.cumsum(sorted_p, dim=-1) - sorted_p > gp.top_p
        sorted_p[cut] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_p)
    return int(torch.multinomial(probs, 1, generator=generator))


class HFChatEngine(ChatEngine):
    """Generation with a transformers causal LM (optionally with a peft adapter merged in)."""

    def __init__(
        self,
        name: str,
        model_dir: Path,
        *,
        template: str = "native",
        stop: Sequence[str] = (),
        n_ctx: int = 4096,
        adapter_dir: Path | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(N_THREADS)
        self.name, self._template, self._stop, self._n_ctx = name, template, tuple(stop), n_ctx
        with quiet_loading():
            self._tok = AutoTokenizer.from_pretrained(str(model_dir))
            model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
            if adapter_dir is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
        self._model = model.eval()  # type: ignore[no-untyped-call]
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self._tok.eos_token_id is not None:
            eos_ids.add(self._tok.eos_token_id)
        for s in self._stop:  # single special tokens such as <end_of_turn> end the turn too
            ids = self._tok.convert_tokens_to_ids(s)
            if isinstance(ids, int) and ids != self._tok.unk_token_id:
                eos_ids.add(ids)
        self._eos = eos_ids
        self._lock = threading.Lock()

    def render(self, msgs: list[dict[str, str]]) -> str:
        if self._template == "gemma":
            return (self._tok.bos_token or "") + render_gemma(msgs)
        return str(self._tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))

    def chat(self, messages: list[dict[str, str]], *, sampling: Sampling) -> Iterator[Delta]:
        return self._run(self.render(messages), sampling, special=True)

    def complete(self, prompt: str, *, sampling: Sampling) -> Iterator[Delta]:
        return self._run(prompt, sampling, special=False)

    def answer_logprob(self, messages: list[dict[str, str]], answer: str) -> tuple[float, int]:
        """:meth:`ChatEngine.answer_logprob`: one forward pass over the prompt and the answer."""
        import torch

        prompt = self.render(messages)
        p_ids = self._tok(prompt, add_special_tokens=False)["input_ids"]
        full = self._tok(self._reply(messages, prompt, answer), add_special_tokens=False)["input_ids"]
        start = max(1, common_prefix(p_ids, full))
        if start >= len(full):
            return 0.0, 0
        with self._lock, torch.no_grad():
            logits = self._model(torch.tensor([full])).logits[0, start - 1:-1].float()
            picked = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(full[start:]).unsqueeze(1))
        return float(picked.sum()), len(full) - start

    def _reply(self, messages: list[dict[str, str]], prompt: str, answer: str) -> str:
        """The prompt and ``answer`` as the whole reply, its end-of-turn marker after it as the template closes
        the turn (what training labels): an answer that is the start of another is not the likelier by
        construction."""
        if self._template == "gemma":
            return prompt + answer + "<end_of_turn>"
        closed = str(self._tok.apply_chat_template([*messages, {"role": "assistant", "content": answer}],
                                                   tokenize=False, add_generation_prompt=False))
        return closed if closed.startswith(prompt) else prompt + answer

    def _run(self, text: str, sampling: Sampling, *, special: bool) -> Iterator[Delta]:
        gp = sampling.engine_params(self._stop)
        # chat prompts carry their special tokens as text; raw completions get the tokenizer's BOS
        ids = self._tok(text, add_special_tokens=not special)["input_ids"]
        budget = token_budget(gp, len(ids), self._n_ctx, self.name)
        with self._lock:
            yield from stream_deltas(self._pieces(ids, gp), gp, len(ids), budget)

    def _pieces(self, prompt_ids: list[int], gp: GenParams) -> Iterator[str]:
        import torch
        generator = torch.Generator()
        generator.manual_seed(gp.seed if gp.seed is not None else int(torch.randint(0, 2**31 - 1, (1,))))
        seen = torch.tensor(prompt_ids, dtype=torch.long)
        inputs = seen.unsqueeze(0)
        past = None
        out_ids: list[int] = []
        emitted = ""
        with torch.inference_mode():
            while True:
                out = self._model(input_ids=inputs, past_key_values=past, use_cache=True)
                past = out.past_key_values
                tok = sample_next(out.logits[0, -1], seen, gp, generator)
                if tok in self._eos:
                    return
                out_ids.append(tok)
                seen = torch.cat([seen, torch.tensor([tok])])
                text = str(self._tok.decode(out_ids, skip_special_tokens=False))
                if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next token
                    yield ""
                else:
                    yield text[len(emitted) :]
                    emitted = text
                inputs = torch.tensor([[tok]])
