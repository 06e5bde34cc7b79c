"""LangChain's ``ChatOpenAI`` and ``OpenAIEmbeddings``, unmodified, pointed at the suite's shared
daemon (``default_models_daemon``) on the default local chat and embedding models (issue 42).

The default run has one quick test of each (an answer, a stream with usage, embeddings of a batch
and of a query). langchain-tests' standard integration suites for both classes run as ``slow``
(48 chat tests on the 0.5B chat model, 7 embedding tests); a failure there is the model's or the
platform's. ``OpenAIEmbeddings`` is set up
as LangChain documents it for an OpenAI-compatible server (``check_embedding_ctx_length=False``:
no tiktoken token arrays, which need OpenAI's own tokenizer files)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.backend.discovery import read_runtime
from qfnb.local.engines.llama.process.command import find_binary
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL, LOCAL_EMBEDDING_MODEL, TOOLS_DEFAULT_KEY

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)"),
              # ChatOpenAI's async calls share one process-wide httpx.AsyncClient (langchain-openai caches it
              # by base URL; langchain-ai/langchain#35783), whose keep-alive connections belong to the loop
              # that opened them. On a fresh loop per test the next async test, if it starts while the
              # daemon still keeps that connection open (5 s), fails with "Event loop is closed" before
              # anything is answered. LangChain's own run hides this with the openai SDK's two retries; we
              # keep max_retries=0 (no platform failure retried away) and run the module on one loop, as an
              # application does.
              pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.filterwarnings("ignore:The test <Function .* is marked with '@pytest.mark.asyncio':"
                                         "pytest.PytestWarning")]
langchain_openai = pytest.importorskip("langchain_openai")
pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import ChatModelIntegrationTests, EmbeddingsIntegrationTests  # noqa: E402

#: where the module's daemon answers (filled by the ``platform`` fixture before any test runs)
PLATFORM: dict[str, str] = {}
#: the daemon's default models by API type (its runtime file's ``default_models``), filled with ``PLATFORM``
DEFAULT_MODELS: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def platform(default_models_daemon: Path) -> Iterator[dict[str, str]]:
    """The suite's shared daemon on the default local models (a minted key), for the whole module."""
    import qfnb

    sdk = qfnb.openai_client(data_dir=default_models_daemon)  # mints a key
    PLATFORM.update(base_url=str(sdk.base_url), api_key=sdk.api_key)
    info = read_runtime(default_models_daemon)
    DEFAULT_MODELS.update(info.default_models if info else {})
    yield PLATFORM
    PLATFORM.clear()
    DEFAULT_MODELS.clear()


def chat_params() -> dict[str, Any]:
    # stream_usage: ChatOpenAI turns it on by itself only for OpenAI's own URL (any other base_url leaves
    # it off), so LangChain's own standard run streams with include_usage; so does this one
    return {"model": LOCAL_CHAT_MODEL, "temperature": 0, "max_retries": 0, "timeout": 300, "stream_usage": True,
            **PLATFORM}


def embedding_params() -> dict[str, Any]:
    return {"model": LOCAL_EMBEDDING_MODEL, "check_embedding_ctx_length": False, "max_retries": 0, **PLATFORM}


def test_chat_openai_and_openai_embeddings_answer(platform: dict[str, str]) -> None:
    chat = langchain_openai.ChatOpenAI(**chat_params(), max_tokens=16)
    answer = chat.invoke([("system", "You answer tersely."), ("human", "What is the capital of France?")])
    assert "paris" in str(answer.content).lower() and answer.usage_metadata["output_tokens"] > 0
    chunks = list(chat.stream("Say hello."))
    assert "".join(str(c.content) for c in chunks) and sum(
        (c.usage_metadata or {}).get("output_tokens", 0) for c in chunks) > 0  # include_usage's last chunk
    embed = langchain_openai.OpenAIEmbeddings(**embedding_params())
    docs = embed.embed_documents(["a cat sat on the mat", "stock markets fell today"])
    query = embed.embed_query("a kitten on a rug")
    assert len(docs) == 2 and len(query) == len(docs[0]) > 100

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True)) / (sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5

    assert cosine(query, docs[0]) > cosine(query, docs[1])  # real vectors, decoded from base64


@pytest.fixture(name="benchmark")
def _benchmark() -> None:
    """langchain-tests' ``test_stream_time`` asks for pytest-benchmark's ``benchmark`` and
    pytest-recording's ``vcr``, plugins the suite does not load (pyproject's addopts), and then skips
    without VCR cassettes (``enable_vcr_tests`` is False). These two skip it first, so the standard test
    stays as written (``test_no_overrides_DO_NOT_OVERRIDE`` fails on a test overridden without an xfail)."""
    pytest.skip("VCR not set up (pytest-benchmark and pytest-recording are not loaded).")


@pytest.fixture(name="vcr")
def _vcr() -> None:
    """See ``benchmark``."""
    pytest.skip("VCR not set up (pytest-benchmark and pytest-recording are not loaded).")


@pytest.mark.slow
class TestChatOpenAIStandard(ChatModelIntegrationTests):
    """langchain-tests' standard chat suite on the platform (text only: the local models read no media)."""

    @property
    def chat_model_class(self) -> type[Any]:
        return langchain_openai.ChatOpenAI  # type: ignore[no-any-return]

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return chat_params()

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str | None:
        """The platform's tool model, where the daemon serves it (its optional packages installed): the
        model-override tests name it per call and read its name back (none served: they skip)."""
        return DEFAULT_MODELS.get(TOOLS_DEFAULT_KEY)


@pytest.mark.slow
class TestOpenAIEmbeddingsStandard(EmbeddingsIntegrationTests):
    """langchain-tests' standard embedding suite on the platform."""

    @property
    def embeddings_class(self) -> type[Any]:
        return langchain_openai.OpenAIEmbeddings  # type: ignore[no-any-return]

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return embedding_params()
