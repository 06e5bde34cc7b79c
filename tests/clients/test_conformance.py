"""The conformance walk (issue 42, part 1): every request real client packages sent, as recorded by
``tools/capture_clients.py`` into ``tests/clients/corpus/`` (openai, LangChain, openai-agents with
both its chat and its default Responses model, pydantic-ai, anthropic), is answered by the suite's
shared daemon (``default_models_daemon``) on the default local models, unchanged but for the model's name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfnb.local.engines.llama.process.command import find_binary
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL, LOCAL_EMBEDDING_MODEL

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]
pytest.importorskip("openai")

CORPUS = Path(__file__).parent / "corpus"
#: what each route's answer must hold
ANSWERED = {"/v1/chat/completions": "choices", "/v1/embeddings": "data", "/v1/responses": "output",
            "/v1/messages": "content", "/v1/messages/count_tokens": "input_tokens"}
RECORDED = [pytest.param(json.loads(line), id=f"{path.stem}-{i}")
            for path in sorted(CORPUS.glob("*.jsonl"))
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()) if line.strip()]


@pytest.fixture(scope="module")
def platform(default_models_daemon: Path) -> Any:
    """The suite's shared daemon on the default local models: its root URL and a minted key."""
    import qfnb

    sdk = qfnb.openai_client(data_dir=default_models_daemon)
    return str(sdk.base_url).rstrip("/").removesuffix("/v1"), sdk.api_key


def test_the_corpus_covers_every_client() -> None:
    assert {p.stem for p in CORPUS.glob("*.jsonl")} >= {"openai", "langchain", "openai-agents", "pydantic-ai",
                                                        "anthropic"}


@pytest.mark.parametrize("recorded", RECORDED)
def test_each_recorded_request_is_answered(platform: tuple[str, str], recorded: dict[str, Any]) -> None:
    url, key = platform
    text = json.dumps(recorded["body"]).replace("{model}", LOCAL_CHAT_MODEL).replace("{embedder}",
                                                                                      LOCAL_EMBEDDING_MODEL)
    resp = httpx.post(url + recorded["path"], content=text, timeout=300,
                      headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    assert ANSWERED[recorded["path"]] in resp.json()


def _sentiment_requests() -> list[dict[str, Any]]:
    lines = (CORPUS / "instructor.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if "Sentiment" in json.dumps(r["body"])]


def test_instructors_bounded_floats_get_answers_within_their_bounds(platform: tuple[str, str]) -> None:
    """instructor's Sentiment (``confidence: float = Field(ge=0, le=1)``) in JSON_SCHEMA and TOOLS
    modes: pydantic writes ``minimum``/``maximum`` on a number; the answers validate and lie in bounds."""
    import jsonschema

    url, key = platform
    recorded = _sentiment_requests()
    assert {"response_format" in r["body"] for r in recorded} == {True, False}  # both modes were recorded
    for r in recorded:
        body = json.loads(json.dumps(r["body"]).replace("{model}", LOCAL_CHAT_MODEL))
        resp = httpx.post(url + r["path"], json={**body, "temperature": 0, "max_tokens": 60}, timeout=300,
                          headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == 200, resp.text
        message = resp.json()["choices"][0]["message"]
        if "response_format" in body:
            schema, text = body["response_format"]["json_schema"]["schema"], message["content"]
        else:
            schema, text = body["tools"][0]["function"]["parameters"], message["tool_calls"][0]["function"]["arguments"]
        value = json.loads(text)
        jsonschema.validate(value, schema)
        assert 0 <= value["confidence"] <= 1, value
