"""Bring your own model: the store's models as served-model specs, and true memory figures.

Memory is what the kernel says a process holds resident (``VmRSS`` in ``/proc/<pid>/status``),
summed over a process and all its descendants (every thread's children, not only the main
thread's: the engines are started from worker threads).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

from qfnb.local.engines.base import ModelSpec
from qfnb.local.engines.store.model_store import SERVED_GGUF, StoredModel


def api_types(roles: tuple[str, ...]) -> tuple[str, ...]:
    """The platform's api types for store roles (``completion`` is the ``completions`` API)."""
    names = {"chat": "chat", "completion": "completions", "embeddings": "embeddings", "rerank": "reranker",
             "text2image": "text2image"}
    return tuple(names[r] for r in roles if r in names)


def spec_for(entry: StoredModel) -> ModelSpec | None:
    """How the registry serves a stored model (None: it has no served role, e.g. a fine-tune base only)."""
    types = api_types(entry.roles)
    if entry.kind == "hf-causal-lm" and "finetune-base" in entry.roles:
        # a base trains on this platform as a served chat model: its tuned adapters are served beside it
        types = tuple(dict.fromkeys(("chat", "completions", *types)))
    if not types:
        return None
    if entry.kind == "engine":
        return ModelSpec(kind="openai", api_types=types, base_url=entry.engine_url, remote_model=entry.name,
                         keep_alive=entry.keep_alive)
    path = Path(entry.path)
    if entry.kind in ("sentence-transformers", "onnx"):
        return ModelSpec(kind=entry.kind, api_types=("embeddings",), path=path)
    if entry.kind == "hf-causal-lm" and not (path / SERVED_GGUF).is_file():
        return ModelSpec(kind="transformers", api_types=types, path=path, n_ctx=entry.ctx or 4096)
    if entry.kind == "hf-causal-lm":  # served as the GGUF converted when it was added
        path = path / SERVED_GGUF
    return ModelSpec(kind="llama.cpp", api_types=types, path=path, n_ctx=entry.ctx or 4096,
                     keep_alive=entry.keep_alive, chat_template=entry.template)


def idle_seconds(keep_alive: float | None, default: float) -> float:
    """An engine's idle stop: ``keep_alive`` seconds, -1 (or below) never, None the platform's default."""
    if keep_alive is None:
        return default
    return math.inf if keep_alive < 0 else float(keep_alive)


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (0 when it is gone)."""
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def children(pid: int) -> list[int]:
    """Direct children of ``pid``, started from any of its threads."""
    kids: list[int] = []
    with contextlib.suppress(OSError):  # the process is gone
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):  # its thread is gone
                kids += [int(p) for p in (task / "children").read_text(encoding="ascii").split()]
    return kids


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``."""
    out: list[int] = []
    todo = children(pid)
    while todo:
        p = todo.pop()
        if p not in out:
            out.append(p)
            todo += children(p)
    return out


def parameter_count(path: Path) -> int:
    """Parameters of a model: from a GGUF's tensor shapes or a dir's safetensors headers (no weights read)."""
    import json
    import struct

    if path.is_file():
        # deferred: loads gguf and numpy (the daemon's start does not)
        from qfnb.local.engines.store.gguf_header import read_header

        return read_header(path).parameters
    total = 0
    for file in path.rglob("*.safetensors"):
        with open(file, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return total


def available_bytes() -> int:
    """Memory the kernel says a new process can have (``MemAvailable``)."""
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def training_problem(path: Path, available: int | None = None) -> str | None:
    """Why a LoRA fine-tune of the model at ``path`` cannot fit in RAM (None: it fits).

    The worker loads the base in fp32 (4 bytes a parameter); LoRA's gradients and optimizer state
    are small, activations and the runtime are counted as half the weights again plus 1 GiB.
    """
    params = parameter_count(path)
    need = int(params * 4 * 1.5) + 2**30
    have = available_bytes() if available is None else available
    if need > have:
        return (f"fine-tuning this {params / 1e9:.1f}B-parameter base needs about {need / 2**30:.1f} GiB of RAM "
                f"and {have / 2**30:.1f} GiB is available; nothing was started.")
    return None
