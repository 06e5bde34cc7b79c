"""One inference call as the record sees it: cache lookup, budget check, ledger row, provenance.

:class:`Recording` wraps :meth:`AsyncQianfanClient.infer`: ``begin`` looks the request up in the
response cache (when the config's ``cache`` is on) and checks the budget; ``finish`` stores a
whole answer, writes the ledger row and puts ``provenance`` on the response. A stream is stored
only when its last chunk arrived; an error is never stored.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from qfnb._core.config import Config
from qfnb._core.http.response import QfRequest, QfResponse
from qfnb._core.record.budget import active_budget
from qfnb._core.record.cache import CachedAnswer, cache_key, current_repeat, deciding_fields, default_cache, mode_for
from qfnb._core.record.ledger import UsageRow, default_ledger
from qfnb._core.record.prices import prices

__all__ = ["Recording", "prompt_hash"]

#: body fields that are the prompt itself (hashed in provenance), not parameters
_PROMPT_FIELDS = ("messages", "prompt", "input", "texts", "query", "system")
_CACHED_HEADERS = {"x-qfnb-cache": "hit"}


def prompt_hash(body: Mapping[str, Any]) -> str:
    """A short sha256 of the request's prompt fields (messages, prompt, system...)."""
    prompt = {k: body[k] for k in _PROMPT_FIELDS if k in body}
    text = json.dumps(prompt, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _estimate_tokens(body: Mapping[str, Any], largest_answer: int) -> int:
    """What a call may use at most: its prompt (≈ one token per 2 characters, rounded up) and its
    output cap, or the largest answer seen so far when it sets none."""
    prompt = {k: body[k] for k in _PROMPT_FIELDS if k in body}
    chars = len(json.dumps(prompt, ensure_ascii=False))
    cap = body.get("max_output_tokens") or body.get("max_tokens") or body.get("max_completion_tokens")
    return -(-chars // 2) + (int(cap) if isinstance(cap, int) and cap > 0 else max(largest_answer, 1))


@dataclass
class Recording:
    """One inference call: what it asked, where, and (after ``finish``) what it cost."""

    config: Config
    api: str
    target: str
    body: dict[str, Any]
    stream: bool
    repeat: int = 0
    key: str | None = None
    hit: CachedAnswer | None = None
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def begin(cls, config: Config, api: str, target: str, body: dict[str, Any], *, stream: bool,
              repeat: int = 0) -> Recording:
        rec = cls(config, api, target, body, stream, repeat or current_repeat())
        mode = mode_for(config.cache)
        if mode != "off":
            rec.key = cache_key(platform=config.base_url, route=api, target=target, body=body, repeat=rec.repeat)
            if mode == "on":
                rec.hit = default_cache().get(rec.key)
        if rec.hit is None and (budget := active_budget()) is not None:
            estimate = _estimate_tokens(body, budget.largest_answer)
            yuan = 0.0 if config.embedded else (prices().cost(target, estimate, 0) or 0.0)
            budget.check(estimate, yuan)
        return rec

    @property
    def platform(self) -> str:
        return "local" if self.config.embedded else "cloud"

    def provenance(self, usage: Mapping[str, Any], latency: float) -> dict[str, Any]:
        """Where an answer came from; no secrets (the platform is named by its base URL)."""
        params = {k: v for k, v in deciding_fields(self.body).items() if k not in _PROMPT_FIELDS and k != "stream"}
        cached: dict[str, Any] = {"hit": self.hit is not None}
        if self.hit is not None:
            cached["age_s"] = round(self.hit.age, 1)
        return {"model": self.target, "api": self.api, "params": params, "prompt_hash": prompt_hash(self.body),
                "repeat": self.repeat, "usage": dict(usage), "latency_s": round(latency, 4), "cache": cached,
                "platform": self.platform, "base_url": self.config.base_url}

    # ---- a cached answer -----------------------------------------------------------------
    def replay(self, path: str) -> QfResponse | AsyncIterator[QfResponse]:
        """The cached answer as the platform gave it: one response, or its chunks in order."""
        hit = self.hit
        assert hit is not None
        request = QfRequest("POST", path)
        responses = [QfResponse(200, dict(_CACHED_HEADERS), dict(b), request, {"cache_hit": True})
                     for b in hit.bodies]
        self._account(responses, hit=True)
        if not self.stream:
            return responses[0]

        async def chunks() -> AsyncIterator[QfResponse]:
            for r in responses:
                yield r

        return chunks()

    # ---- a fresh answer ------------------------------------------------------------------
    def finish(self, result: Any) -> Any:
        """Store, account for and annotate a fresh answer (a stream: once it has ended)."""
        if isinstance(result, QfResponse):
            if self.key is not None:
                default_cache().put(self.key, self.target, [result.body], stream=False)
            self._account([result], hit=False)
            return result
        return self._watch(result)

    async def _watch(self, stream: AsyncIterator[QfResponse]) -> AsyncIterator[QfResponse]:
        seen: list[QfResponse] = []
        async for chunk in stream:  # an error or a cut stream raises here: nothing is stored
            seen.append(chunk)
            yield chunk
        if not seen:
            return
        if self.key is not None:
            default_cache().put(self.key, self.target, [c.body for c in seen], stream=True)
        self._account(seen, hit=False)

    def _account(self, responses: list[QfResponse], *, hit: bool) -> None:
        usage: Mapping[str, Any] = {}
        for r in reversed(responses):
            found = r.body.get("usage")
            if isinstance(found, Mapping) and found:
                usage = found
                break
        latency = time.perf_counter() - self.started
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        total = int(usage.get("total_tokens") or prompt + completion)
        default_ledger().record(UsageRow(api=self.api, model=self.target, platform=self.platform,
                                         prompt_tokens=prompt, completion_tokens=completion, total_tokens=total,
                                         latency_s=latency, cache_hit=hit))
        if not hit and (budget := active_budget()) is not None:
            yuan = 0.0 if self.config.embedded else (prices().cost(self.target, prompt, completion) or 0.0)
            budget.add(total, completion, yuan)
        provenance = self.provenance(usage, latency)
        for r in responses:
            r.provenance = provenance
