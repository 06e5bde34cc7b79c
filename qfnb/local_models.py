"""Bring your own models: the local platform's model store from Python, as ``qfnb models`` is from a shell.

    import qfnb.local_models as lm
    lm.add("~/models/qwen2.5-7b-instruct-q4_k_m.gguf", name="qwen7b")   # then chat with model="qwen7b"
    lm.list(); lm.ps(); lm.unload("qwen7b"); lm.du(); lm.rm("qwen7b")
    lm.export("my-tuned-service", gguf="/tmp/my-lora.gguf")              # the LoRA adapter as GGUF
    lm.export("my-tuned-service", gguf="/tmp/my-model.gguf", merge=True)  # base + adapter, one GGUF

Each call goes to the data dir's daemon (started if none runs) over its control routes: the
daemon checks the file, stores its weights once and serves the name at once. Refusals raise
:class:`ModelStoreError` with the daemon's one-sentence reason.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from qfnb._core.backend import DaemonError
from qfnb._core.backend.control import Control
from qfnb._core.backend.daemon import LocalDaemon
from qfnb._core.backend.discovery import read_runtime
from qfnb.protocol.platform.daemon import MODEL_ROLES, MODELS_ROUTE

__all__ = ["ModelStoreError", "add", "du", "export", "list", "ps", "rm", "unload"]


class ModelStoreError(RuntimeError):
    """The platform refused a model-store request (the message says why)."""


def _control(data_dir: Path | str | None) -> Control:
    daemon = LocalDaemon(data_dir)
    daemon.ensure()
    info = read_runtime(daemon.root)
    if info is None:
        raise DaemonError(f"the local platform of {daemon.root} did not write its runtime file")
    return Control(info)


def _call(method: str, path: str, payload: Any = None, data_dir: Path | str | None = None) -> Any:
    status, body = _control(data_dir).call(method, path, payload)
    if status >= 400:
        reason = body.get("error") if isinstance(body, dict) else None
        raise ModelStoreError(str(reason or f"the platform answered HTTP {status}"))
    return body


def _notify_added() -> None:
    """Tell this process's notebook layer (if loaded) that the model names changed."""
    import sys

    discovery = sys.modules.get("qfnb.notebook.models.discovery")
    forget = getattr(discovery, "forget_models", None)
    if callable(forget):
        forget()


def add(path: str | Path | None = None, *, name: str, role: str | Sequence[str] | None = None,
        template: str | None = None, ctx: int | None = None, keep_alive: float | None = None,
        engine: str | None = None, data_dir: Path | str | None = None) -> dict[str, Any]:
    """Add a GGUF file, a Hugging Face dir or (``engine=URL``) an OpenAI-API engine under ``name``.

    ``role``: chat, completion, embeddings, finetune-base or text2image (default: what the model
    is); ``template``: a chat template (jinja text, or a path to a file of it) instead of the
    GGUF's own; ``ctx``: context tokens per request; ``keep_alive``: seconds idle before its
    engine stops (-1: never). Checked before anything is sent.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("name must be a non-empty string, e.g. name='qwen7b'")
    roles = [role] if isinstance(role, str) else builtins.list(role or [])
    for r in roles:
        if r not in MODEL_ROLES:
            raise ValueError(f"role must be one of {', '.join(MODEL_ROLES)}, got {r!r}")
    if (path is None) == (engine is None):
        raise ValueError("give exactly one of path (a model file or dir) and engine (an engine URL)")
    if path is not None and not Path(path).expanduser().exists():
        raise ValueError(f"path {str(path)!r} does not exist")
    if ctx is not None and (not isinstance(ctx, int) or ctx < 128):
        raise ValueError(f"ctx must be an integer >= 128, got {ctx!r}")
    if template is not None and len(template) < 4096 and Path(template).expanduser().is_file():
        template = Path(template).expanduser().read_text(encoding="utf-8")
    payload = {"path": str(Path(path).expanduser().resolve()) if path is not None else None, "name": name,
               "roles": roles, "template": template, "ctx": ctx, "keep_alive": keep_alive, "engine": engine}
    entry = _call("POST", MODELS_ROUTE, payload, data_dir)
    _notify_added()
    return dict(entry)


def list(data_dir: Path | str | None = None) -> builtins.list[dict[str, Any]]:
    """The store's models: name, kind, size, source, roles, path."""
    return builtins.list(_call("GET", MODELS_ROUTE, None, data_dir)["models"])


def mapping(data_dir: Path | str | None = None) -> builtins.list[dict[str, Any]]:
    """Which local model answers each cloud model name: ``apiType``, ``cloud``, ``local``."""
    return builtins.list(_call("GET", MODELS_ROUTE, None, data_dir).get("mapping") or [])


def ps(data_dir: Path | str | None = None) -> builtins.list[dict[str, Any]]:
    """The engines running now: model, state, resident memory (``rssBytes``), slots busy/queued,
    seconds until the idle unload (``unloadIn``; None: never), whether a seeded request is batched
    with batch-invariant kernels (``seedsInvariant``), whether a request under a JSON schema or a tool
    call is drafted from its grammar (``grammarDrafts``), whether a stream's pace is kept by the engine
    (``pacesStreams``: it sends a few tokens as one chunk)."""
    return builtins.list(_call("GET", MODELS_ROUTE, None, data_dir)["running"])


def du(data_dir: Path | str | None = None) -> dict[str, Any]:
    """The store's path and bytes on disk, and per model what ``rm`` would free."""
    return dict(_call("GET", MODELS_ROUTE, None, data_dir)["store"])


def rm(name: str, data_dir: Path | str | None = None) -> dict[str, Any]:
    """Remove ``name`` (refused while a service, a fine-tune or a request uses it)."""
    result = dict(_call("DELETE", f"{MODELS_ROUTE}/{quote(name, safe='')}", None, data_dir))
    _notify_added()
    return result


def unload(name: str, data_dir: Path | str | None = None) -> dict[str, Any]:
    """Stop ``name``'s engine now and free its memory (it loads again on its next request)."""
    return dict(_call("POST", f"{MODELS_ROUTE}/{quote(name, safe='')}/unload", None, data_dir))


def export(name: str, *, gguf: str | Path, merge: bool = False, overwrite: bool = False,
           data_dir: Path | str | None = None) -> dict[str, Any]:
    """Write the tuned model ``name`` (a service's name or endpoint, a published model's name or a
    finished fine-tune task id) to ``gguf`` as portable GGUF: its LoRA adapter (load it with
    ``llama-server -m BASE.gguf --lora FILE``, Ollama's ``ADAPTER`` or LM Studio), or with
    ``merge=True`` its base with the adapter merged in, one self-contained model file. Returns
    ``{"gguf", "merged", "base", "baseGguf", "bytes"}``; an existing file is kept unless ``overwrite``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("name must be the tuned model's name, e.g. export('my-service', gguf='/tmp/x.gguf')")
    target = Path(gguf).expanduser().resolve()
    if target.suffix.lower() != ".gguf":
        raise ValueError(f"gguf must be a path ending in .gguf, got {str(gguf)!r}")
    if not target.parent.is_dir():
        raise ValueError(f"the folder {str(target.parent)!r} does not exist")
    if target.exists() and not overwrite:
        raise ValueError(f"{str(target)!r} already exists; pass overwrite=True to replace it")
    payload = {"gguf": str(target), "merge": bool(merge), "overwrite": bool(overwrite)}
    return dict(_call("POST", f"{MODELS_ROUTE}/{quote(name, safe='')}/export", payload, data_dir))
