"""A request's credential is checked once, however many layers ask: a model call passes the heartbeat,
the keyed-calls table and its route, and each asks whether its credential verifies. The token's lookup
and the signature's HMACs run once; the answer is the same, and a refused credential is still refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_helpers import Signer
from starlette.requests import Request

from qfnb.local.server.middleware import auth
from qfnb.local.server.middleware.auth import Authenticator
from tests.fakes.local_platform import served_platform


def _counting(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_a_keyed_bearer_model_call_looks_its_token_up_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with served_platform(tmp_path / "platform", heartbeat=5.0) as served:
        token = served.bearer_token()
        looked = _counting(monkeypatch, Authenticator, "_token_state")
        answer = httpx.post(served.url + "/v2/chat/completions", timeout=10,
                            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "once-1"},
                            json={"model": "Tiny-Chat", "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "tiny-chat: hi"
        assert len(looked) == 1, f"the token was looked up {len(looked)} times for one call"
        refused = httpx.post(served.url + "/v2/chat/completions", timeout=10,
                             headers={"Authorization": "Bearer made-up", "Idempotency-Key": "once-2"},
                             json={"model": "Tiny-Chat", "messages": [{"role": "user", "content": "hi"}]})
        assert refused.status_code == 401 and len(looked) == 2


def test_a_signed_v1_model_call_verifies_its_signature_once(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    with served_platform(tmp_path / "platform", heartbeat=5.0) as served:
        verified = _counting(monkeypatch, auth, "verify")
        url = served.url + "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/tiny-chat"
        body = {"messages": [{"role": "user", "content": "signed"}]}
        answer = httpx.post(url, json=body, headers={"Idempotency-Key": "signed-1"}, auth=Signer(), timeout=10)
        assert answer.json()["result"] == "tiny-chat: signed", answer.text
        assert len(verified) == 1, f"the signature was verified {len(verified)} times for one call"
        forged = httpx.post(url, json=body, auth=Signer(sk="not-the-secret"), timeout=10)
        assert forged.status_code == 401 and len(verified) == 2, forged.text  # still refused, checked anew


def test_checks_of_one_request_share_their_result_and_another_request_checks_anew(tmp_path: Path) -> None:
    with served_platform(tmp_path / "platform") as served:
        app_auth: Authenticator = served.app.state.auth
        token = served.bearer_token()
        scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/v2/chat/completions", "query_string": b"",
                                 "headers": [(b"authorization", f"Bearer {token}".encode())]}
        assert app_auth.check_bearer(Request(scope)) is None
        assert scope[auth.CHECKED] == {"check_bearer": None}
        other = {**scope, "headers": [(b"authorization", b"Bearer made-up")]}
        other.pop(auth.CHECKED)
        assert app_auth.check_bearer(Request(other)) == "invalid bearer token"
