"""``RecordingBar``: a progress callback (``on_start`` / ``on_result`` / ``on_close``) that records
what it is told, as ``("start", total)``, ``("result", index)`` and ``("close", None)``."""

from __future__ import annotations


class RecordingBar:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def on_start(self, total: int | None) -> None:
        self.calls.append(("start", total))

    def on_result(self, index: int, ok: bool) -> None:
        self.calls.append(("result", index))

    def on_close(self) -> None:
        self.calls.append(("close", None))
