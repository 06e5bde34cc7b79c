"""The ``openai`` SDK, unmodified, against the suite's shared daemon (``default_models_daemon``) on the
default local chat and embedding models (issue 42, part 1): chat with content parts, the developer role and explicit
nulls; a stream with ``include_usage`` read where the SDK reads it (a last chunk with no choices);
embeddings as the SDK asks by default (base64) and as floats, the same vectors. The Responses API
is in test_responses_real.py."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfnb.local.engines.llama.process.command import find_binary
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL, LOCAL_EMBEDDING_MODEL
from qfnb.protocol.wires.qianfan.routes import CALLS_ROUTE, IDEMPOTENCY_HEADER

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]
openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def client(default_models_daemon: Path) -> Any:
    """The openai SDK on the suite's shared daemon on the default local models."""
    import qfnb

    return qfnb.openai_client(data_dir=default_models_daemon, timeout=300, max_retries=0)


def test_chat_as_clients_send_it_and_a_stream_with_usage(client: Any) -> None:
    key = f"openai-real-{uuid.uuid4()}"
    answer = client.chat.completions.create(
        model=LOCAL_CHAT_MODEL, temperature=0, max_tokens=16, n=None, stop=None,
        extra_headers={IDEMPOTENCY_HEADER: key},
        messages=[{"role": "developer", "content": [{"type": "text", "text": "You answer tersely."}]},
                  {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}])
    assert "paris" in answer.choices[0].message.content.lower() and answer.usage.completion_tokens > 0
    # what the platform says of the keyed call, as the real engine's gate and stream marked it
    origin = str(client.base_url).split("/v1")[0]
    done = httpx.get(f"{origin}{CALLS_ROUTE}/{key}", headers={"Authorization": f"Bearer {client.api_key}"},
                     timeout=30).json()
    assert done["phase"] == "done" and done["tokens"] == answer.usage.completion_tokens
    assert 0 < done["generatingSeconds"] <= done["elapsedSeconds"]
    chunks = list(client.chat.completions.create(model=LOCAL_CHAT_MODEL, temperature=0, max_tokens=16, stream=True,
                                                 stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "Say hello."}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = chunks[-1]
    assert text and last.choices == [] and last.usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


def test_embeddings_by_default_base64_and_as_floats(client: Any) -> None:
    texts = ["a cat sat on the mat", "stock markets fell today"]
    default = client.embeddings.create(model=LOCAL_EMBEDDING_MODEL, input=texts)  # the SDK asks for base64
    floats = client.embeddings.create(model=LOCAL_EMBEDDING_MODEL, input=texts, encoding_format="float")
    assert len(default.data) == 2 and len(default.data[0].embedding) > 100
    for a, b in zip(default.data, floats.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
    assert default.usage.prompt_tokens > 0
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="no-such-embedder", input="x")
    assert missing.value.body["code"] == "model_not_found" and missing.value.body["param"] == "model"


def test_a_streamed_schema_answer_that_loops_in_a_string_still_ends_as_one_valid_object(client: Any) -> None:
    """The 0.5B model, greedy under LangChain's joke schema, repeats one sentence inside ``setup`` to the
    token cap; OpenAI's streaming helper then raises LengthFinishReasonError. The platform stops the loop
    where it is caught and writes the rest of the object after what was sent: the SDK parses a Joke."""
    from pydantic import BaseModel, Field

    from qfnb.local.engines.loop_guard import StringTail

    class Joke(BaseModel):
        """Joke to tell user."""

        setup: str = Field(description="question to set up a joke")
        punchline: str = Field(description="answer to resolve the joke")

    with client.chat.completions.stream(model=LOCAL_CHAT_MODEL, temperature=0, response_format=Joke,
                                        messages=[{"role": "user", "content": "Tell me a joke about cats."}],
                                        stream_options={"include_usage": True}) as stream:
        pieces = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    text = "".join(pieces)
    assert StringTail().loop_end(text) is not None  # the model did loop: what was sent holds the repeats
    choice = final.choices[0]
    assert choice.finish_reason == "stop" and isinstance(choice.message.parsed, Joke)
    assert choice.message.content == text and final.usage.completion_tokens < 1024
