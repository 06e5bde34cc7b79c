"""SharedToken.invalidate does what its docstring says: True means "retry with a fresh token"."""

from __future__ import annotations

from qfnb._core.http.auth import SharedToken


async def test_invalidate_answers_whether_to_retry() -> None:
    now = [0.0]
    issued = iter(["t1", "t2", "t3"])

    async def fetch() -> tuple[str, float | None]:
        return next(issued), None

    token = SharedToken(fetch, min_age=1.0, clock=lambda: now[0])
    assert await token.get() == "t1"
    assert token.invalidate("t1") is True and token.current() is None  # dropped: refetch
    assert await token.get() == "t2"
    assert token.invalidate("t1") is True and token.current() == "t2"  # already replaced: keep t2, retry
    assert token.invalidate("t2") is False  # a brand-new token rejected again: don't loop
    now[0] = 5.0
    assert token.invalidate("t2") is True  # old enough: refreshing may help
    assert await token.get() == "t3"
