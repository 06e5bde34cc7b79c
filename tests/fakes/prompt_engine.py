"""An engine double for preparing prompts (:mod:`qfnb.local.engines.llama.prompts`): its template renders
any turns as ``<|user|>hi<|assistant|>`` and its tokenizer answers three tokens; the first ``drops``
requests find their connection closed (llama-server's idle keep-alive). The paths asked are recorded."""

from __future__ import annotations

import httpx
import pytest

from qfnb.local.engines.llama.link import transport


def prompt_engine(monkeypatch: pytest.MonkeyPatch, drops: int = 0) -> list[str]:
    """The double installed as the engines' client; the list the paths it is asked go to."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        if len(sent) <= drops:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        if request.url.path == "/apply-template":
            return httpx.Response(200, json={"prompt": "<|user|>hi<|assistant|>"})
        return httpx.Response(200, json={"tokens": [1, 2, 3]})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    monkeypatch.setattr(transport, "client", lambda: client)
    return sent
