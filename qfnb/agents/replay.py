"""Tool results kept for replay: :class:`CachedToolResults` keeps each call that ran in the data
dir's response cache (the file that replays the answers asking for them), so a replayed answer's
call gets its recorded result instead of running its side effect again. ``%qfcache clear`` forgets
both together; a call that was skipped is not kept (it is asked again)."""

from __future__ import annotations

from qfnb._core.record.cache import ResponseCache, default_cache

__all__ = ["TOOL_TARGET", "CachedToolResults"]

#: the cache rows of tool results carry this target (``%qfcache`` counts them with the answers)
TOOL_TARGET = "qfnb:tool-results"


class CachedToolResults:
    """A :class:`qfnb.agents.loop.ToolRecord` over a :class:`ResponseCache` (default: the data dir's)."""

    def __init__(self, cache: ResponseCache | None = None) -> None:
        self.cache = cache

    def _cache(self) -> ResponseCache:
        return self.cache if self.cache is not None else default_cache()

    def recall(self, key: str) -> tuple[str, str] | None:
        found = self._cache().get(f"tool:{key}")
        if found is None or not found.bodies:
            return None
        body = found.bodies[0]
        result, status = body.get("result"), body.get("status")
        return (result, str(status)) if isinstance(result, str) else None

    def keep(self, key: str, result: str, status: str) -> None:
        self._cache().put(f"tool:{key}", TOOL_TARGET, [{"result": result, "status": status}], stream=False)
