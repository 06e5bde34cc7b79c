"""The held-out loss measured on a served model (``evaluate.served_loss``) counts and averages the
tokens the worker's ``EvalSet.loss`` does, and ``LlamaEngine.token_logprobs`` asks llama-server for each
given token's raw probability, teacher-forced (a double of llama-server's ``/completion`` here;
``test_served_loss_real.py`` measures a real adapter on the real engine)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from tiny_models import build_tiny_gemma

from qfnb.local.engines.base import CannotServe
from qfnb.local.engines.gate import EngineBusy
from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama.engine import FORCE_BIAS, SCORING_SEED, LlamaEngine, position_spans
from qfnb.local.engines.llama.external import ExternalEngine
from qfnb.local.engines.llama.link import transport
from qfnb.local.engines.llama.link.transport import Endpoint
from qfnb.local.engines.llama.process.server import EngineUnavailable
from qfnb.local.training import data, evaluate, lora

PAIRS = [{"prompt": f"What is code {i}?", "response": f"Code {i} is {chr(65 + i) * 3}."} for i in range(5)]


class ModelScorer:
    """An engine whose log-probabilities are a transformers model's (fp32, no autocast); busy once."""

    def __init__(self, model: Any) -> None:
        self.model, self.calls, self.busy = model, [], 1

    async def token_logprobs(self, tokens: Sequence[int], positions: Sequence[int]) -> list[float]:
        import torch

        if self.busy:
            self.busy -= 1
            raise EngineBusy("tiny", 1, retry_after=0.01)
        self.calls.append((list(tokens), list(positions)))
        with torch.no_grad():
            logits = self.model(input_ids=torch.tensor([list(tokens)])).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        return [float(logp[t - 1, tokens[t]]) for t in positions]


def test_served_loss_is_the_eval_loss_over_the_same_rows_and_tokens(tmp_path: Path) -> None:
    model, tok = lora.load_base(build_tiny_gemma(tmp_path / "m"))
    (tmp_path / "held.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PAIRS), "utf-8")
    rows = data.encode_all(tok, data.load_examples(tmp_path / "held.jsonl"), 64)
    engine = ModelScorer(model)
    served = evaluate.served_loss(engine, rows, limit=4)  # type: ignore[arg-type]
    recorded = evaluate.EvalSet.build(rows, 2, tok.pad_token_id, limit=4).loss(model, autocast=False)
    assert served == pytest.approx(recorded, rel=1e-5)
    assert len(engine.calls) == 4  # the first 4 rows, each once (after the engine was busy once)
    ids, labels = rows[0]
    assert engine.calls[0] == (ids, [t for t in range(1, len(ids)) if labels[t] != data.IGNORE])
    assert engine.calls[0][1][0] > 1 and engine.calls[0][1][-1] == len(ids) - 1  # the answer, end of turn included


def _served(monkeypatch: pytest.MonkeyPatch, answer: Any) -> tuple[LlamaEngine, list[dict[str, Any]]]:
    """A LlamaEngine on a llama-server double whose ``/completion`` answers ``answer(body)``."""
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/completion" and request.headers["authorization"] == "Bearer k"
        body = json.loads(request.content)
        sent.append(body)
        return httpx.Response(200, json=answer(body))

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    monkeypatch.setattr(transport, "client", lambda: client)
    target = Endpoint("http://127.0.0.1:1/v1", "k", {"lora": [{"id": 0, "scale": 0.0}, {"id": 1, "scale": 1.0}]},
                      group="adapter-1")
    return LlamaEngine("tuned", lambda: target, gate=LaneGate("gemma", 2, 4), n_ctx=64), sent


def _forced(body: dict[str, Any]) -> dict[str, Any]:
    """The forced token, its log-probability made of the prompt's length."""
    token = body["logit_bias"][0][0]
    return {"completion_probabilities": [{"id": token, "logprob": -0.5 * len(body["prompt"]), "top_logprobs": []}]}


def test_each_given_token_is_forced_after_the_tokens_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    chat, sent = _served(monkeypatch, _forced)
    assert asyncio.run(chat.token_logprobs([2, 10, 11, 12, 13], [3, 4])) == [-1.5, -2.0]
    assert [b["prompt"] for b in sent] == [[2, 10, 11], [2, 10, 11, 12]]
    for body, token in zip(sent, (12, 13), strict=True):
        # one new token, forced by a logit bias; its probability from the raw logits (before the bias)
        assert body["n_predict"] == 1 and body["logit_bias"] == [[token, FORCE_BIAS]]
        assert body["n_probs"] == 1 and body["post_sampling_probs"] is False
        assert body["lora"] == [{"id": 0, "scale": 0.0}, {"id": 1, "scale": 1.0}]  # the model's own adapter
    assert sent[0]["id_slot"] == sent[1]["id_slot"] and sent[0]["cache_prompt"]  # one slot: its cache is reused


@pytest.mark.parametrize(("reply", "error", "says"), [
    ({"completion_probabilities": []}, CannotServe, "inside a UTF-8 character"),
    ({"completion_probabilities": [{"id": 99, "logprob": -1.0}]}, EngineUnavailable, "not the forced 12"),
    ({"completion_probabilities": [{"id": 12, "logprob": -3.4028234663852886e38}]}, CannotServe, "float32"),
])
def test_a_token_the_engine_cannot_score_is_refused(monkeypatch: pytest.MonkeyPatch, reply: dict[str, Any],
                                                    error: type[Exception], says: str) -> None:
    chat, _ = _served(monkeypatch, lambda body: reply)
    with pytest.raises(error, match=says):
        asyncio.run(chat.token_logprobs([2, 10, 11, 12], [3]))


def test_an_external_engine_and_a_position_outside_the_tokens_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    chat, sent = _served(monkeypatch, _forced)
    with pytest.raises(ValueError, match="outside"):
        asyncio.run(chat.token_logprobs([2, 10], [0]))
    external = ExternalEngine("vllm", Endpoint("http://127.0.0.1:1/v1"), gate=LaneGate("vllm", 2, 4))
    with pytest.raises(CannotServe, match="external engine"):
        asyncio.run(external.token_logprobs([2, 10], [1]))
    assert not sent


def test_many_positions_run_as_spans_side_by_side_on_the_engines_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    """An answer's positions are cut into contiguous spans, one per batch slot, that run at once: the
    same numbers in the same order as one position after another, each span on its own slot, in order."""
    chat, sent = _served(monkeypatch, _forced)
    running: list[int] = []
    most = [0]

    async def handler(request: httpx.Request) -> httpx.Response:  # a server that takes its time
        body = json.loads(request.content)
        sent.append(body)
        running.append(body["id_slot"])
        most[0] = max(most[0], len(running))
        await asyncio.sleep(0.01)
        running.remove(body["id_slot"])
        return httpx.Response(200, json=_forced(body))

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    monkeypatch.setattr(transport, "client", lambda: client)
    ids = list(range(2, 22))  # 20 tokens: positions 1..19
    positions = list(range(3, 20))
    assert asyncio.run(chat.token_logprobs(ids, positions)) == [-0.5 * t for t in positions]
    slots = {b["id_slot"] for b in sent}
    assert len(slots) == 2 == chat.gate.slots == most[0]  # the batch lane's two slots, both at once
    for slot in slots:
        lengths = [len(b["prompt"]) for b in sent if b["id_slot"] == slot]
        assert lengths == sorted(lengths) and lengths == list(range(lengths[0], lengths[0] + len(lengths)))
    assert sorted(len(b["prompt"]) for b in sent) == positions  # each position once
    assert position_spans(list(range(10)), 8) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]  # none shorter than MIN_SPAN
    assert position_spans([1, 2, 3], 8) == [[1, 2, 3]] and position_spans([], 8) == []


def test_exact_scoring_is_seeded_and_each_span_reads_its_prefix_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    chat, sent = _served(monkeypatch, _forced)
    ids = list(range(2, 22))
    assert asyncio.run(chat.token_logprobs(ids, list(range(3, 20)), exact=True)) == [-0.5 * t for t in range(3, 20)]
    assert {b["seed"] for b in sent} == {SCORING_SEED}  # batch-invariant kernels on the platform's build
    firsts = [b for b in sent if not b["cache_prompt"]]
    assert len(firsts) == 2 and {b["id_slot"] for b in firsts} == {b["id_slot"] for b in sent}  # one per span
    sent.clear()
    asyncio.run(chat.token_logprobs(ids, [3, 4]))
    assert all("seed" not in b and b["cache_prompt"] for b in sent)  # the default: the slot's cache reused
