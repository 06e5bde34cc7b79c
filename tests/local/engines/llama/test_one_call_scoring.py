"""An answer's tokens scored in one ``/completion`` (``LlamaEngine.forced_logprobs``): a grammar of the
answer's token ids and the end token forced by a bias; when the reply is not those tokens, or leaves one
unreported, the answer is scored a token at a time instead (a double of llama-server's ``/completion``
here; ``tests/local/engines/test_token_logprobs_real.py`` holds both paths equal on the real engine)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from qfnb.local.engines.base import PromptTooLong
from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama.engine import FORCE_BIAS, SCORING_SEED, LlamaEngine, token_grammar
from qfnb.local.engines.llama.link import transport
from qfnb.local.engines.llama.link.transport import Endpoint

PROMPT, ANSWER, END = [2, 10, 11], [12, 13], 106
TOKENS = [*PROMPT, *ANSWER, END]
LORA = {"lora": [{"id": 0, "scale": 0.0}, {"id": 1, "scale": 1.0}]}


def _engine(monkeypatch: pytest.MonkeyPatch,
            one_call: Callable[[dict[str, Any]], dict[str, Any]]) -> tuple[LlamaEngine, list[dict[str, Any]]]:
    """A LlamaEngine on a llama-server double: a request under a grammar answers ``one_call(body)``; a request
    forcing one token by a bias answers that token, its log-probability -0.25 times its position."""
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/completion"
        body = json.loads(request.content)
        sent.append(body)
        if "return_tokens" in body:
            return httpx.Response(200, json=one_call(body))
        token = body["logit_bias"][0][0]
        return httpx.Response(200, json={"completion_probabilities": [
            {"id": token, "logprob": -0.25 * len(body["prompt"]), "top_logprobs": []}]})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    monkeypatch.setattr(transport, "client", lambda: client)
    target = Endpoint("http://127.0.0.1:1/v1", "k", LORA, group="adapter-1")
    return LlamaEngine("tuned", lambda: target, gate=LaneGate("gemma", 2, 4), n_ctx=64), sent


def _generated(ids: list[int], logprobs: list[float] | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A one-call reply that generated ``ids``, each reported with its log-probability."""
    values = logprobs or [-1.0 - k for k in range(len(ids))]
    return lambda body: {"tokens": ids, "completion_probabilities": [
        {"id": t, "logprob": v, "top_logprobs": []} for t, v in zip(ids, values, strict=True)]}


def test_an_answer_is_scored_in_one_call_under_a_grammar_of_its_token_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    chat, sent = _engine(monkeypatch, _generated([*ANSWER, END], [-0.5, -1.5, -2.5]))
    assert asyncio.run(chat.answer_token_logprobs(TOKENS, len(PROMPT))) == [-0.5, -1.5, -2.5]
    assert len(sent) == 1
    body = sent[0]
    assert body["prompt"] == PROMPT and body["n_predict"] == 3  # the answer and the end of the turn, no more
    assert body["grammar"] == "root ::= <[12]> <[13]>" == token_grammar(ANSWER)
    assert body["logit_bias"] == [[END, FORCE_BIAS]]  # the end token, not another end-of-generation token
    assert body["n_probs"] == 1 and body["post_sampling_probs"] is False  # raw logits, before grammar and bias
    assert body["temperature"] == 0.0 and body["return_tokens"] is True and body["cache_prompt"] is True
    assert body["lora"] == LORA["lora"] and body["id_slot"] in range(4)  # the model's adapter, on a slot of its gate
    assert "seed" not in body
    sent.clear()
    chat, sent = _engine(monkeypatch, _generated([END], [-4.0]))
    assert asyncio.run(chat.answer_token_logprobs([*PROMPT, END], len(PROMPT))) == [-4.0]  # an empty answer
    assert "grammar" not in sent[0] and sent[0]["logit_bias"] == [[END, FORCE_BIAS]] and sent[0]["n_predict"] == 1


@pytest.mark.parametrize("reply", [
    _generated([*ANSWER, 1]),  # the turn ended by another end-of-generation token
    _generated([12, 99, END]),  # another token (a server that does not hold the grammar)
    lambda body: {"tokens": [*ANSWER, END], "completion_probabilities": [  # a byte token left unreported
        {"id": 12, "logprob": -1.0}, {"id": END, "logprob": -2.0}]},
    _generated([*ANSWER, END], [-1.0, -3.4028234663852886e38, -2.0]),  # a probability below float32's range
])
def test_a_reply_that_is_not_the_answers_tokens_falls_back_to_a_token_at_a_time(
        monkeypatch: pytest.MonkeyPatch, reply: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    chat, sent = _engine(monkeypatch, reply)
    assert asyncio.run(chat.forced_logprobs(TOKENS, len(PROMPT))) is None
    sent.clear()
    # the teacher-forced numbers: each token forced alone after the tokens before it
    assert asyncio.run(chat.answer_token_logprobs(TOKENS, len(PROMPT))) == [-0.75, -1.0, -1.25]
    assert len(sent) == 4 and "grammar" in sent[0] and all("grammar" not in b for b in sent[1:])
    assert [b["logit_bias"] for b in sent[1:]] == [[[t, FORCE_BIAS]] for t in (*ANSWER, END)]


def test_exact_one_call_scoring_is_seeded_and_reads_its_prompt_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    chat, sent = _engine(monkeypatch, _generated([*ANSWER, END]))
    assert asyncio.run(chat.forced_logprobs(TOKENS, len(PROMPT), exact=True)) == [-1.0, -2.0, -3.0]
    assert sent[0]["seed"] == SCORING_SEED and sent[0]["cache_prompt"] is False  # batch-invariant kernels


def test_a_start_outside_the_tokens_or_too_many_tokens_are_refused_before_a_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    chat, sent = _engine(monkeypatch, _generated([*ANSWER, END]))
    for start in (0, len(TOKENS)):
        with pytest.raises(ValueError, match="start"):
            asyncio.run(chat.forced_logprobs(TOKENS, start))
    with pytest.raises(PromptTooLong, match="context of 64 tokens"):
        asyncio.run(chat.forced_logprobs(list(range(2, 80)), 70))
    assert not sent
