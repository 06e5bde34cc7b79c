"""The transformers backend: tiny test models, fine-tuned adapters via peft, and the no-llama.cpp fallback."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from qfnb.local.engines.ask import GenParams, Sampling
from qfnb.local.engines.base import ChatEngine, Delta, stream_deltas, token_budget
from qfnb.local.engines.hf._quiet import quiet_loading
from qfnb.local.engines.hf.scoring import answer_ids, batch_logprobs, render_prompt

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
        return render_prompt(self._tok, self._template, msgs)

    def chat(self, messages: list[dict[str, str]], *, sampling: Sampling) -> Iterator[Delta]:
        return self._run(self.render(messages), sampling, special=True)

    def complete(self, prompt: str, *, sampling: Sampling) -> Iterator[Delta]:
        return self._run(prompt, sampling, special=False)

    def answer_logprob(self, messages: list[dict[str, str]], answer: str) -> tuple[float, int]:
        """:meth:`ChatEngine.answer_logprob`: one forward pass over the prompt and the answer
        (:func:`~qfnb.local.engines.hf.scoring.batch_logprobs`)."""
        seq = answer_ids(self._tok, self._template, messages, answer)
        with self._lock:
            scored = batch_logprobs(self._model, [seq], int(self._tok.pad_token_id or 0))[0]
        return float(sum(scored)), len(scored)

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
