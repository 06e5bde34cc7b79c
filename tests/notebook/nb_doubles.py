"""Test doubles for the notebook layer (imported by conftest and tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from IPython.core.displaypub import CapturingDisplayPublisher

from qfnb.notebook.chat import ChatDelta, ChatRequest


class RecordingPublisher(CapturingDisplayPublisher):
    """Keeps every display / update (thread-safe), like a frontend would receive them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()

    def publish(
        self, data: Any, metadata: Any = None, source: Any = None, *, transient: Any = None, update: bool = False
    ) -> None:
        with self.lock:
            self.outputs.append({"data": data, "metadata": metadata, "transient": transient, "update": update})

    def by_display_id(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for o in self.outputs:
            did = (o["transient"] or {}).get("display_id")
            if did:
                out.setdefault(did, []).append(o)
        return out


class FakeChatBackend:
    """A test double of the chat API: streams a scripted answer in chunks and records requests."""

    def __init__(
        self,
        answer: str | dict[str, str] = "Hello **world**",
        *,
        chunk: int = 3,
        delay: float = 0.0,
        fail: dict[str, BaseException] | None = None,
    ) -> None:
        self.answer = answer
        self.chunk = chunk
        self.delay = delay
        self.fail = fail or {}
        self.requests: list[ChatRequest] = []
        self.lock = threading.Lock()

    def stream(self, request: ChatRequest) -> Iterator[ChatDelta]:
        with self.lock:
            self.requests.append(request)
        label = request.model or request.endpoint or ""
        if label in self.fail:
            raise self.fail[label]
        text = self.answer[label] if isinstance(self.answer, dict) else self.answer
        pieces = [text[i : i + self.chunk] for i in range(0, len(text), self.chunk)] if request.stream else [text]
        for n, piece in enumerate(pieces):
            if self.delay:
                time.sleep(self.delay)
            last = n == len(pieces) - 1
            usage = {"prompt_tokens": 7, "completion_tokens": len(pieces), "total_tokens": 7 + len(pieces)}
            yield ChatDelta(text=piece, usage=usage if last else None, response={"result": piece, "is_end": last})
