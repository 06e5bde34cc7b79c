"""``Embedding``: texts → vectors (``texts=[...]``, at most 16 per call).

A batch against the embedded platform travels packed (:mod:`.batching.packing`): consecutive inputs go in
one v1 call of up to :attr:`Embedding.local_pack_texts` texts, which the local platform takes from
a batch (its ``X-Qfnb-Priority: batch`` lane) where the cloud's rule is 16; each input still gets
its own answer. The cloud gets one call an input, as the official SDK sends them.
"""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any, ClassVar

from qfnb._core.errors import QfnbError, ValidationError
from qfnb._core.http.recording.recorded import prompt_hash
from qfnb._core.http.response import QfResponse
from qfnb._core.http.retry import inference_policy, is_retryable

from ._generated.embedding import EmbeddingCalls
from .base import Target
from .batching.packing import Pack
from .params import EmbeddingCall
from .shapes import v2 as v2_shapes

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.protocol.wires.qianfan.answers import EmbeddingAnswer

__all__ = ["Embedding"]

#: ``ado``'s parameters (a batch item's kwargs are bound to them as ``ado`` binds them)
_ADO = inspect.signature(EmbeddingCalls.ado)

#: a packed call's inputs of one target and body: (their index in the pack, the call, its body)
_Members = list[tuple[int, EmbeddingCall, dict[str, Any]]]


class Embedding(EmbeddingCalls):
    """``Embedding().do(texts=["世界上最高的山"])["data"][0]["embedding"]``."""

    api_types: ClassVar[tuple[str, ...]] = ("embeddings",)
    batch_field: ClassVar[str] = "texts"
    #: texts in one packed call of a batch against the embedded platform (16 of the v1 API's 16-text
    #: calls): enough for the platform's batching embedder to fill its engine calls side by side,
    #: few enough that the progress moves and a retried call redoes little
    local_pack_texts: ClassVar[int] = 256

    def _body(self, target: Target, call: EmbeddingCall) -> tuple[Target, dict[str, Any]]:
        fields = self._given(call)
        if fields.get("stream"):
            raise ValidationError("stream", "embeddings cannot be streamed")
        if "input" not in fields:
            raise ValidationError("texts", "is required")
        body = self._wire_body(fields, False, "EmbeddingRequest")  # checked as the v1 body: the same rules
        if target.api_type == "v2":
            return target, v2_shapes.embedding_body(fields, target.model or "")
        return target, body

    # ------------------------------------------------------------------ packed batches
    def _pack(self) -> Pack | None:
        if not self.config.embedded:
            return None
        return Pack(self.local_pack_texts, _text_count, self._apacked)

    async def _apacked(self, items: list[dict[str, Any]]) -> list[Any]:
        """The answers of a packed batch call's inputs, in order: each input checked as its own call
        is (a bad one answers its own error), those of one target and one body but their texts sent
        as one call, whose answer is split back into each input's."""
        answers: list[Any] = [None] * len(items)
        groups: dict[tuple[Any, ...], tuple[Target, _Members]] = {}
        for at, kwargs in enumerate(items):
            try:
                call = self._call_of(kwargs)
                target, body = await self._prepare(call)
            except Exception as exc:  # this input's own refusal, as its own call would raise it
                answers[at] = exc
                continue
            rest = json.dumps({k: v for k, v in body.items() if k != "input"}, sort_keys=True, default=str)
            key = (target, rest, call.request_id, call.idempotency_key, self._retry(call))
            groups.setdefault(key, (target, []))[1].append((at, call, body))
        for target, members in groups.values():
            for (at, _, _), answer in zip(members, await self._send_packed(target, members), strict=True):
                answers[at] = answer
        return answers

    def _call_of(self, kwargs: dict[str, Any]) -> EmbeddingCall:
        """The call :meth:`_one` makes of a batch item."""
        arguments = dict(_ADO.bind(self, **self._one_kwargs(kwargs)).arguments)
        arguments.pop("self")
        return EmbeddingCall(**arguments, extra=arguments.pop("kwargs", {}))

    async def _send_packed(self, target: Target, members: _Members) -> list[Any]:
        if len(members) == 1:
            _, call, body = members[0]
            return [await self._sent(target, body, call)]
        first = members[0][1]
        packed = {**members[0][2], "input": [text for _, _, body in members for text in body["input"]]}
        try:
            resp = await self._send(target, packed, first)
        except Exception as exc:
            if is_retryable(exc, self._retry(first) or inference_policy(self.config, {})):
                raise  # a passing fault: the batch sends the packed call again
            # refused as a whole: each input asks alone, for its own answer or error
            return [await self._sent_or_error(target, body, call) for _, call, body in members]
        assert isinstance(resp, QfResponse)  # never a stream
        return self._split(resp, target, members)

    async def _sent(self, target: Target, body: dict[str, Any], call: EmbeddingCall) -> QfResponse[EmbeddingAnswer]:
        resp = await self._send(target, body, call)
        assert isinstance(resp, QfResponse)
        return self._answer(resp, call, target)

    async def _sent_or_error(self, target: Target, body: dict[str, Any], call: EmbeddingCall) -> Any:
        try:
            return await self._sent(target, body, call)
        except Exception as exc:
            return exc

    def _split(self, resp: QfResponse, target: Target, members: _Members) -> list[QfResponse[EmbeddingAnswer]]:
        """Each input's answer out of the packed call's: its vectors (``index`` from 0), and its share
        of the call's tokens by its texts' characters (the ledger holds the packed call's row)."""
        data = resp.body.get("data")
        sizes = [len(body["input"]) for _, _, body in members]
        if not isinstance(data, list) or len(data) != sum(sizes):
            got = len(data) if isinstance(data, list) else "no"
            raise QfnbError(f"the platform answered {got} vectors for {sum(sizes)} texts")
        usage = resp.body.get("usage") or {}
        shares = _shares(int(usage.get("total_tokens") or 0),
                         [sum(len(t) for t in body["input"]) for _, _, body in members])
        answers: list[QfResponse[EmbeddingAnswer]] = []
        start = 0
        for (_, call, body), size, tokens in zip(members, sizes, shares, strict=True):
            rows = data[start:start + size]
            start += size
            for i, row in enumerate(rows):
                if isinstance(row, dict):
                    row["index"] = i
            own = {**usage, "prompt_tokens": tokens, "total_tokens": tokens}
            part = QfResponse(resp.code, resp.headers, {**resp.body, "data": rows, "usage": own}, resp.request,
                              dict(resp.statistic))
            part.provenance = {**resp.provenance, "usage": own, "prompt_hash": prompt_hash(body),
                               "packed": {"calls": len(members), "texts": len(data)}} if resp.provenance else {}
            answers.append(self._answer(part, call, target))
        return answers


def _text_count(kwargs: dict[str, Any]) -> int:
    """A batch item's texts (a bare string is one; anything else counts one and is refused alone)."""
    texts = kwargs.get("texts")
    return len(texts) if isinstance(texts, list | tuple) else 1


def _shares(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights``, whole numbers that add up to it (largest remainders)."""
    weight = sum(weights)
    if weight <= 0:
        weights, weight = [1] * len(weights), len(weights)
    exact = [total * w / weight for w in weights]
    shares = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in by_remainder[:total - sum(shares)]:
        shares[i] += 1
    return shares
