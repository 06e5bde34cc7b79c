"""Export a tuned model as portable GGUF (``qfnb models export NAME --gguf PATH``).

The adapter alone is the LoRA GGUF the platform itself serves in the base model's
``llama-server`` (:func:`qfnb.local.engines.adapters.lora_gguf.convert_adapter`, cached beside the
adapter), copied to ``PATH``: llama.cpp's ``--lora``, Ollama's ``ADAPTER`` and LM Studio load it
on the same base GGUF. ``merge=True`` writes one self-contained GGUF instead: llama.cpp's own
``llama-export-lora`` adds the adapter to the base weights (built beside ``llama-server`` by
``scripts/bootstrap.sh``). The file appears at ``PATH`` only when complete (written to a
temporary name in the same folder, then renamed); a refusal leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from qfnb.local.engines.adapters.lora_gguf import LoraConversionError, convert_adapter
from qfnb.local.engines.llama.process.command import find_binary

log = logging.getLogger("qfnb.local.engines.adapters.export")

EXPORT_LORA = "llama-export-lora"
EXPORT_LORA_ENV = "QFNB_LLAMA_EXPORT_LORA"


class ExportError(ValueError):
    """The export cannot be done (the message says why, in one sentence)."""


def find_export_lora() -> Path | None:
    """``$QFNB_LLAMA_EXPORT_LORA``, else ``llama-export-lora`` beside this Python, beside the (resolved)
    ``llama-server`` binary (bootstrap builds both into one cache folder), or on PATH."""
    server = find_binary()
    return find_binary(EXPORT_LORA, EXPORT_LORA_ENV, () if server is None else (server.parent, server.resolve().parent))


def check_target(out: str | Path, *, overwrite: bool = False) -> Path:
    """The export's target path, or :class:`ExportError` before anything is written."""
    target = Path(out).expanduser()
    if not target.is_absolute():
        raise ExportError(f"the export path {str(out)!r} must be absolute (the platform writes it, not the caller).")
    if target.suffix.lower() != ".gguf":
        raise ExportError(f"the export path {str(out)!r} must end in .gguf.")
    if not target.parent.is_dir():
        raise ExportError(f"the folder {str(target.parent)!r} does not exist; create it first.")
    if target.is_dir() or (target.exists() and not overwrite):
        raise ExportError(f"{str(target)!r} already exists; choose another path or overwrite it explicitly.")
    if not os.access(target.parent, os.W_OK):
        raise ExportError(f"the folder {str(target.parent)!r} is not writable.")
    return target


def export_gguf(adapter_dir: Path, base_gguf: Path, out: str | Path, *, merge: bool = False,
                overwrite: bool = False, threads: int = 2) -> Path:
    """Write the tuned model (``adapter_dir`` on ``base_gguf``) to ``out`` as GGUF; returns ``out``."""
    target = check_target(out, overwrite=overwrite)
    tool = find_export_lora() if merge else None
    if merge and tool is None:
        raise ExportError(f"merging needs llama.cpp's {EXPORT_LORA}, which is not installed; run "
                          f"scripts/bootstrap.sh (or set {EXPORT_LORA_ENV}), or export the adapter alone.")
    try:  # the very file the platform serves the tuned model with (converted once, then reused)
        lora = convert_adapter(Path(adapter_dir), Path(adapter_dir) / "adapter.gguf", base_gguf=base_gguf)
    except (LoraConversionError, FileNotFoundError) as exc:
        raise ExportError(f"this tuned model cannot be written as a llama.cpp LoRA: {exc}.") from exc
    # a fresh unpredictable name, created 0600 with O_EXCL: nothing planted in the folder is written through
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as sink:
            if tool is None:
                with open(lora, "rb") as source:
                    shutil.copyfileobj(source, sink)
        if tool is not None:
            _merge(tool, base_gguf, lora, tmp, threads)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s (%s) to %s", adapter_dir, "merged into its base" if merge else "adapter", target)
    return target


def _merge(tool: Path, base_gguf: Path, lora: Path, out: Path, threads: int) -> None:
    cmd = [str(tool), "-m", str(base_gguf), "--lora", str(lora), "-o", str(out), "-t", str(max(1, threads))]
    done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    if done.returncode != 0 or not out.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        log.warning("%s failed (exit %d): %s", EXPORT_LORA, done.returncode, "\n".join(tail))
        raise ExportError(f"{EXPORT_LORA} could not merge the adapter into its base (exit {done.returncode}: "
                          f"{' '.join(tail)[-200:]}).")
