"""RFT's policy (:class:`Policy`): the LoRA-wrapped model with its tokenizer, which samples answers (all of a
draw's prompts in one left-padded generation, each token drawn by :class:`_Draw` over the :data:`TOP_K` likeliest
within :data:`TOP_P` of their mass), gives each answer token's log-probability, and swaps in the KL term's reference
adapter for a call. :mod:`qfnb.local.training.rft`'s loop uses it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from qfnb.local.training import answers, data

#: sampling keeps the 64 likeliest tokens within 95% of the mass (Gemma's generation config): a 270M model
#: sampled over its whole 262k vocabulary at temperature 1 mostly answers in stray tokens of other scripts
TOP_K, TOP_P = 64, 0.95


class Stop(Protocol):
    """The worker's stop flag (SIGTERM sets it): the run stops between steps, or within one (its sampling cut at
    the next token, its rewards no longer awaited), the step dropped."""

    requested: bool


class _Stopping:
    """A generation stopping criterion (transformers' ``StoppingCriteria`` protocol): every sequence ends at
    the next token once the run is asked to stop, so a cancel does not wait for a group's whole sampling."""

    def __init__(self, stop: Stop) -> None:
        self.stop = stop

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch  # deferred: the worker's parent imports no torch (as Policy's methods)

        return torch.full((input_ids.shape[0],), bool(self.stop.requested), dtype=torch.bool)


class _Draw:
    """Draws each row's next token (a ``LogitsProcessor`` of greedy decoding): ``scores / temperature`` kept to the
    :data:`TOP_K` likeliest, those within :data:`TOP_P` of their mass, one drawn by its probability; the scores
    returned are ``-inf`` but for the drawn token's, which greedy decoding then takes.

    The same distribution as ``generate``'s own sampling (``do_sample`` with ``top_k`` and ``top_p``), whose
    top-p warper sorts and whose draw runs over the whole vocabulary each token: with Gemma's 262k tokens they
    took half of a draw's time (py-spy); here both run over :data:`TOP_K` values."""

    def __init__(self, temperature: float) -> None:
        self.temperature = temperature

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        probs, tokens = kept(scores, self.temperature)
        drawn = tokens.gather(1, torch.multinomial(probs, 1))
        return torch.full_like(scores, float("-inf")).scatter_(1, drawn, 0.0)


def kept(scores: Any, temperature: float) -> tuple[Any, Any]:
    """``(probs, tokens)``: each row's :data:`TOP_K` likeliest tokens at ``temperature``, likeliest first, with their
    probabilities (unnormalised: 0 past :data:`TOP_P` of the mass)."""
    import torch

    values, tokens = torch.topk(scores.float() / temperature, min(TOP_K, scores.shape[-1]), dim=-1)
    probs = torch.softmax(values, dim=-1)
    # a token goes when the likelier ones already hold TOP_P of the mass (the likeliest always stays)
    return probs.masked_fill(probs.cumsum(-1) - probs >= TOP_P, 0.0), tokens


class Policy:
    """The LoRA-wrapped model with its tokenizer: sampling, and per-token log-probabilities."""

    def __init__(self, model: Any, tok: Any) -> None:
        self.model, self.tok = model, tok
        self.end = data.end_token_ids(tok)
        #: the adapter's weights the KL term's reference has (:meth:`reference`); None: the base's
        self.reference_weights: dict[str, Any] | None = None
        self._trained: dict[str, Any] | None = None  # the trained weights while the reference's are in

    def keep_reference(self) -> dict[str, Any]:
        """Make the adapter as it is now the KL term's reference, and return its weights (a copy)."""
        from peft import get_peft_model_state_dict

        self.reference_weights = {k: v.detach().clone() for k, v in get_peft_model_state_dict(self.model).items()}
        return self.reference_weights

    @contextlib.contextmanager
    def reference(self) -> Iterator[None]:
        """The reference policy, without gradients, for the call: the kept adapter's weights
        (:meth:`keep_reference`) swapped in and the trained ones put back after, or the base (the adapter
        disabled) when none was kept."""
        import torch

        if self.reference_weights is None:
            with torch.no_grad(), self.model.disable_adapter():
                yield
            return
        from peft import get_peft_model_state_dict, set_peft_model_state_dict

        with torch.no_grad():
            trained = get_peft_model_state_dict(self.model)
            if self._trained is None:  # allocated once, copied into at each swap
                self._trained = {k: v.detach().clone() for k, v in trained.items()}
            else:
                for k, v in trained.items():
                    self._trained[k].copy_(v)
            set_peft_model_state_dict(self.model, self.reference_weights)
            try:
                yield
            finally:
                set_peft_model_state_dict(self.model, self._trained)

    def encode(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """The conversation up to the answer, in the chat template, as token ids."""
        text = self.tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def sample(self, prompts: Sequence[list[int]], n: int, max_new: int, temperature: float | None,
               stop: Stop | None = None) -> list[list[list[int]]]:
        """``n`` completions to each of ``prompts`` (token ids, up to and with the first end-of-turn token), all
        of them (prompts x n rows) in one left-padded generation; greedy when ``temperature`` is None. A ``stop``
        requested while they are generated ends them at the next token (the caller drops them:
        :meth:`qfnb.local.training.rft.GroupTrainer.step`)."""
        from transformers import LogitsProcessorList, StoppingCriteriaList  # deferred: no transformers in the parent

        criteria = {"stopping_criteria": StoppingCriteriaList([_Stopping(stop)])} if stop is not None else {}
        # greedy decoding of scores where only the token the draw picked is finite (:class:`_Draw`)
        draw = {"logits_processor": LogitsProcessorList([_Draw(temperature)])} if temperature is not None else {}
        with answers.generating(self.model, self.tok):
            batch = self.tok.pad({"input_ids": [list(p) for p in prompts for _ in range(n)]}, return_tensors="pt")
            out = self.model.generate(**batch, max_new_tokens=max_new, eos_token_id=self.end, do_sample=False,
                                      pad_token_id=self.tok.pad_token_id, use_cache=True, **draw, **criteria)
        rows = out[:, batch["input_ids"].shape[1]:].tolist()
        completions = [row[:next((i + 1 for i, t in enumerate(row) if t in self.end), len(row))] for row in rows]
        return [completions[k * n:(k + 1) * n] for k in range(len(prompts))]

    def text(self, completion: list[int]) -> str:
        return str(self.tok.decode(completion, skip_special_tokens=True))

    def token_at(self, completion: list[int], offset: int) -> int:
        """The index of the completion's token whose text reaches past ``offset`` characters of :meth:`text`."""
        return next((k - 1 for k in range(1, len(completion) + 1) if len(self.text(completion[:k])) > offset), 0)

    def logprobs(self, prompt_ids: list[int], completions: list[list[int]]) -> tuple[Any, Any]:
        """``(logp, mask)``: each completion token's log-probability under the model, ``[n, T]``, and
        which positions are tokens (not padding). The LM head runs on those positions only."""
        import torch
        from peft import PeftModel

        width = max(len(c) for c in completions)
        p = len(prompt_ids)
        ids = torch.full((len(completions), p + width), self.tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(completions), width), dtype=torch.bool)
        for i, c in enumerate(completions):
            ids[i, :p] = torch.tensor(prompt_ids)
            ids[i, p:p + len(c)] = torch.tensor(c)
            mask[i, :len(c)] = True
        attention = torch.cat([torch.ones((len(completions), p), dtype=torch.long), mask.long()], dim=1)
        hf: Any = self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model
        hidden = hf.get_decoder()(input_ids=ids, attention_mask=attention).last_hidden_state
        logits = hf.get_output_embeddings()(hidden[:, p - 1:p - 1 + width][mask]).float()
        cap = vars(hf.config).get("final_logit_softcapping")
        if cap:
            logits = torch.tanh(logits / cap) * cap
        picked = torch.log_softmax(logits, dim=-1).gather(1, ids[:, p:][mask].unsqueeze(1)).squeeze(1)
        logp = torch.zeros(mask.shape, dtype=picked.dtype)
        logp[mask] = picked
        return logp, mask
