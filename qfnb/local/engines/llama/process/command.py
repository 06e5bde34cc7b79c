"""What a ``llama-server`` process is started with: the binary (:func:`find_binary`), the
engine's settings (:class:`ServerConfig`) and their command line, and the port the process says it
bound (:func:`reported_port`). :mod:`.server` supervises the process."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

BINARY_ENV = "QFNB_LLAMA_SERVER"


def find_binary(name: str = "llama-server", env: str = BINARY_ENV, near: Sequence[Path] = ()) -> Path | None:
    """``$QFNB_LLAMA_SERVER`` (``env``), else ``llama-server`` (``name``) next to this Python (the venv's
    bin/) or in a folder of ``near``, else on PATH."""
    given = os.environ.get(env)
    if given:
        return Path(given) if Path(given).is_file() else None
    beside = next((d / name for d in (Path(sys.executable).parent, *near) if (d / name).is_file()), None)
    if beside is not None:
        return beside
    found = shutil.which(name)
    return Path(found) if found else None


#: the environment variable that makes a llama-server built with scripts/llama_server_seed_invariant.patch
#: compute every batch holding a seeded request with batch-invariant kernels
SEED_INVARIANT_ENV = "LLAMA_ARG_SEED_BATCH_INVARIANT"
#: the environment variables that turn on scripts/llama_server_grammar_draft.patch: JSON under a schema or
#: in a tool call written on one line (``{"a": 1, "b": [2, 3]}``, as Python's ``json.dumps`` writes it, so
#: the grammar fixes every character but the values'), and a request under a grammar drafting the text its
#: grammar forces next (punctuation and key names), verified by the model like any draft
JSON_ONE_LINE_ENV = "LLAMA_ARG_JSON_ONE_LINE"
SPEC_GRAMMAR_ENV = "LLAMA_ARG_SPEC_GRAMMAR"
#: the switches our builds read from the environment: a llama-server without them ignores them (a flag
#: it does not know would stop it), and says in ``/props`` which it took
BUILD_SWITCHES = {SEED_INVARIANT_ENV: "1", JSON_ONE_LINE_ENV: "1", SPEC_GRAMMAR_ENV: "1"}


def default_slots(cores: int | None = None) -> int:
    """Parallel slots: four per core, 4 to 16 (decode on a CPU is memory-bound, so a batch of
    sequences costs little more than one)."""
    n = cores or os.cpu_count() or 2
    return max(4, min(16, 4 * n))


#: llama-server's flags for each speculative decoding kind that drafts from n-grams already in the
#: slot's context (no second model)
NGRAM_FLAGS = {
    "ngram-simple": ("--spec-ngram-simple-size-n", "3", "--spec-ngram-simple-size-m", "8"),
    "ngram-map-k": ("--spec-ngram-map-k-size-n", "3", "--spec-ngram-map-k-size-m", "8"),
    "ngram-mod": ("--spec-ngram-mod-n-match", "16", "--spec-ngram-mod-n-min", "2", "--spec-ngram-mod-n-max", "16"),
}


def speculative_args(kind: str, draft: Path | None = None) -> tuple[str, ...]:
    """llama-server's flags for speculative decoding of ``kind``: an n-gram kind (:data:`NGRAM_FLAGS`), or
    ``"draft"`` with the ``draft`` GGUF (a smaller model of the same tokenizer); greedy verification keeps
    the target's tokens."""
    if kind in NGRAM_FLAGS:
        return ("--spec-type", kind, *NGRAM_FLAGS[kind])
    if kind == "draft" and draft is not None:
        return ("--spec-type", "draft-simple", "--model-draft", str(draft), "--spec-draft-n-max", "6",
                "--spec-draft-p-min", "0.75")
    raise ValueError(f"speculative decoding kind {kind!r}: one of {', '.join(NGRAM_FLAGS)}, draft (with a draft GGUF)")


#: what llama-server logs once it serves (after its model loaded), with the port it bound
LISTENING = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")


def reported_port(log_bytes: bytes) -> int | None:
    """The port a llama-server started with ``--port 0`` says it listens on (None: not yet)."""
    found = LISTENING.search(log_bytes)
    return int(found.group(1)) if found else None


@dataclass
class ServerConfig:
    """How to run one base model's engine."""

    name: str
    gguf: Path
    log_dir: Path
    slots: int = field(default_factory=default_slots)
    ctx_per_slot: int = 4096
    threads: int = field(default_factory=lambda: os.cpu_count() or 2)
    idle_seconds: float = 600.0
    #: the watchdog's limits on one request (:mod:`.watchdog`): no progress for ``stall_seconds``,
    #: or still running after ``request_seconds``
    stall_seconds: float = 30.0
    request_seconds: float = 600.0
    #: an answer's stream is read at a pace once its text flows: a few tokens a piece, a token waiting
    #: this long at most, in seconds (0: each token as it comes)
    stream_interval: float = 0.0
    chat_template: str | None = None  # a jinja template file for models without one
    #: tokens the engine processes per step (all slots together): a long prompt is prefilled in
    #: steps this size, and the short prompts of other slots get into every step
    batch: int = 64
    #: a cross-encoder in llama-server's reranking mode (``--reranking``: rank pooling, ``POST /rerank``)
    reranking: bool = False
    #: an embedding model in llama-server's embedding mode (``--embedding``: the GGUF's pooling,
    #: ``POST /v1/embeddings``)
    embedding: bool = False
    #: speculative decoding's flags (:func:`speculative_args`; none: off)
    speculative: tuple[str, ...] = ()

    @property
    def encoder_step(self) -> int:
        """Tokens per step of an encoder (reranking or embedding): a whole input (a text, or a
        (query, document) pair) is read in one step."""
        return max(self.batch, self.ctx_per_slot)

    def argv(self, binary: Path | None, adapters: Sequence[Path]) -> list[str]:
        """The command line: ``--port 0``, so the process binds a free port itself and logs it."""
        # in embedding mode this llama.cpp aborts at start (GGML_ASSERT in ggml_can_mul_mat) with 3, 5 or 6
        # sequences and starts with 1, 2, 4 or 8 (measured on a mean-pooling BERT): a power of two it is
        slots = 1 << (self.slots.bit_length() - 1) if self.embedding else self.slots
        argv = [str(binary), "--model", str(self.gguf), "--host", "127.0.0.1", "--port", "0",
                "--parallel", str(slots), "--ctx-size", str(self.ctx_per_slot * slots),
                "--threads", str(self.threads), "--threads-batch", str(self.threads),
                "--threads-http", str(max(8, 2 * self.slots + 4)), "--no-webui", "--metrics", "--jinja",
                "--cont-batching", "--no-warmup", "--flash-attn", "on",
                "--batch-size", str(self.batch), "--ubatch-size", str(self.batch),
                # no host-RAM prompt cache: the platform pins each request to a slot (``id_slot``),
                # and with that cache on, pinned requests rotating over the slots re-read their
                # whole prompts (measured: 46 of 46 tokens, against 20 with the 26-token shared
                # prefix kept in each slot when the cache is off)
                "--cache-ram", "0"]
        if self.reranking or self.embedding:
            # an encoder reads a whole input (a text, or a (query, document) pair) in one step
            step = str(self.encoder_step)
            argv[argv.index("--batch-size") + 1] = argv[argv.index("--ubatch-size") + 1] = step
            argv += ["--kv-unified", "--reranking" if self.reranking else "--embedding"]
        # a generating engine keeps each slot's KV cells apart (no --kv-unified): a slot's attention
        # then reads only its own cells, so a greedy answer is the same on any slot beside any other
        # streams (with one buffer for all slots the same request answered differently once other
        # slots had streamed: 52 tokens against 55), and 4 streams of 150 tokens took 21.4 s
        # against 33.5 s
        if self.chat_template:
            argv += ["--chat-template-file", self.chat_template]
        argv += self.speculative
        for a in adapters:
            argv += ["--lora", str(a)]
        if adapters:
            argv.append("--lora-init-without-apply")
        return argv
