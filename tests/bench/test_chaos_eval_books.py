"""The chaos bench's books for its evaluation (``bench/chaos_train.py``): which repeat of an item at the
engine a kill explains. A killed kernel's last call, read by the daemon before the kill and passed on
after it, reaches the engine once the kernel is dead (seen in a run at load 26: 0.19 s after the
SIGKILL, before the next kernel started); the kernel's re-run asks it again."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def books(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.syspath_prepend(str(BENCH))  # the bench's modules import each other by bare name
    import chaos_train

    yield chaos_train
    for name in ("chaos_train", "chaos_books", "chaos_engine", "_common"):
        sys.modules.pop(name, None)


def test_a_killed_kernels_call_passed_on_after_its_end_is_in_flight_at_the_kill(books: Any) -> None:
    from chaos_books import Kill, Request

    when = 1000.0
    kernel = Kill(at=1.0, target="kernel", sig=signal.SIGKILL, pause=1.0, gone=when + 0.05)
    passed_on = Request(rid=7, key="eval row 5", prompt=3, start=when + 0.19, end=when + 0.44, how="done")
    asked_by_the_next_kernel = Request(rid=8, key="eval row 5", prompt=3, start=when + 4.0, end=when + 4.2,
                                       how="done")
    in_flight = books.in_flight
    assert in_flight(passed_on, [(when, kernel)], 1.0)
    assert not in_flight(asked_by_the_next_kernel, [(when, kernel)], 1.0)
    daemon = Kill(at=1.0, target="daemon", sig=signal.SIGKILL, pause=1.0, gone=when + 0.05)
    # after a daemon's kill the kernel itself asks again (a new sending), unless the engine saw its sender gone
    assert not in_flight(passed_on, [(when, daemon)], 1.0)
    orphan = Request(rid=9, key="eval row 5", prompt=3, start=when + 0.19, end=when + 0.44, how="done", orphan=True)
    assert in_flight(orphan, [(when, daemon)], 1.0)
    open_at_the_kill = Request(rid=10, key="eval row 6", prompt=3, start=when - 0.3, end=None, how="open")
    assert in_flight(open_at_the_kill, [(when, daemon)], 1.0) and in_flight(open_at_the_kill, [(when, kernel)], 1.0)
