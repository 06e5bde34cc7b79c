"""What a file or directory a user adds to the model store is: checked before anything is stored.

Each check raises :class:`NotAModel` with one sentence that says what is wrong; a passing check
returns the facts the store keeps (kind, roles, architecture, chat template, context length).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfnb.local.engines.onnx_embed import PIP, TOKENIZER, io_problem, session
from qfnb.protocol.platform.daemon import MODEL_ROLES

GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)
#: the roles a stored model can play (``completion`` is the plain-text completions API)
ROLES = MODEL_ROLES
#: a GGUF's classification head: what llama.cpp's rank pooling (``llama-server --reranking``) reads
RANK_HEAD = "cls.output.weight"
#: llama.cpp's pooling type number for rank pooling (``{arch}.pooling_type``)
POOLING_RANK = 4
#: llama.cpp's pooling types of an embedding model: mean, CLS, last token
POOLING_EMBED = (1, 2, 3)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.txt")


class NotAModel(ValueError):
    """The path is not a model this platform can serve or train (the message says why)."""


@dataclass(frozen=True)
class ModelFacts:
    """What a check found."""

    kind: str  # gguf | hf-causal-lm | sentence-transformers | onnx
    roles: tuple[str, ...]  # what it does when no role is given
    arch: str = ""
    chat_template: str | None = None
    context_length: int | None = None
    files: tuple[Path, ...] = field(default_factory=tuple)  # the files to store (relative to the dir)
    can: tuple[str, ...] = ()  # every role it may be given (default: ``roles``)


def inspect(path: Path) -> ModelFacts:
    """Check ``path`` (a GGUF file, an ONNX embedder, a Hugging Face causal-LM dir or a sentence-transformers
    dir)."""
    if not path.exists():
        raise NotAModel(f"{path} does not exist.")
    if path.is_dir():
        return _check_dir(path)
    if path.suffix.lower() == ".onnx":
        return check_onnx(path)
    return check_gguf(path)


def check_gguf(path: Path) -> ModelFacts:
    """A complete GGUF file of an architecture llama.cpp knows; its metadata."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        raise NotAModel(f"{path.name} is not a GGUF model file (it does not start with the GGUF magic bytes).")
    version = struct.unpack("<I", head[4:8])[0]
    if version not in GGUF_VERSIONS:
        raise NotAModel(f"{path.name} is GGUF version {version}; llama.cpp reads versions 2 and 3.")
    from gguf import MODEL_ARCH_NAMES

    # deferred: loads gguf and numpy (the daemon's start does not)
    from qfnb.local.engines.store.gguf_header import GGUFHeaderError, read_header

    try:
        header = read_header(path)
    except GGUFHeaderError as exc:
        raise NotAModel(f"{path.name} is truncated or damaged: it cannot be read as GGUF ({exc}).") from None
    if not header.tensors:
        raise NotAModel(f"{path.name} holds no tensors, so it is not a model.")
    if header.end > size:
        raise NotAModel(f"{path.name} is truncated: its tensors need {header.end} bytes but the file has {size}.")
    fields = header.fields
    arch = str(fields.get("general.architecture") or "")
    if arch not in set(MODEL_ARCH_NAMES.values()):
        raise NotAModel(f"{path.name} has architecture {arch!r}, which this llama.cpp cannot load.")
    template, ctx = fields.get("tokenizer.chat_template"), fields.get(f"{arch}.context_length")
    facts = functools.partial(ModelFacts, kind="gguf", arch=arch, files=(Path(path.name),),
                              context_length=int(ctx) if ctx is not None else None)  # ``can``: its ``roles``
    if fields.get(f"{arch}.pooling_type") == POOLING_RANK or any(t.name == RANK_HEAD for t in header.tensors):
        # a cross-encoder (a classification head on an encoder): it scores (query, document) pairs
        return facts(roles=("rerank",))
    if fields.get(f"{arch}.pooling_type") in POOLING_EMBED or not fields.get(f"{arch}.attention.causal", True):
        # an embedding model (mean, CLS or last-token pooling; or an encoder): one vector per text
        return facts(roles=("embeddings",))
    return facts(roles=("chat", "completion"), chat_template=str(template) if template else None)


def check_onnx(path: Path) -> ModelFacts:
    """An ONNX encoder onnxruntime loads, with the ``tokenizer.json`` it was exported with beside it."""
    tokenizer = path.with_name(TOKENIZER)
    if not tokenizer.is_file():
        raise NotAModel(f"{path.name} has no {TOKENIZER} beside it: put the tokenizer it was exported with (Hugging "
                        f"Face tokenizers' file) in {path.parent}.")
    try:
        from tokenizers import Tokenizer

        Tokenizer.from_file(str(tokenizer))
    except ImportError:
        raise NotAModel(f"the tokenizers library is not installed, so {TOKENIZER} cannot be read: {PIP}") from None
    except Exception as exc:
        raise NotAModel(f"{tokenizer} is not a tokenizers file ({str(exc)[:200]}).") from None
    if importlib.util.find_spec("onnxruntime") is None:
        raise NotAModel(f"onnxruntime is not installed, so ONNX models cannot be served: {PIP}")
    try:
        sess = session(path)
    except Exception as exc:  # onnxruntime's own errors (a damaged or foreign file)
        raise NotAModel(f"{path.name} is not an ONNX model onnxruntime can load ({str(exc)[:200]}).") from None
    problem = io_problem(sess)
    if problem:
        raise NotAModel(f"{path.name} is not an embedder: {problem}.")
    extra = [Path(n) for n in ("tokenizer_config.json", "special_tokens_map.json") if path.with_name(n).is_file()]
    return ModelFacts(kind="onnx", roles=("embeddings",),
                      files=(Path(path.name), Path(TOKENIZER), *extra))


def _safetensors_ok(path: Path) -> None:
    """A safetensors file whose header parses and whose data is all there."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise NotAModel(f"{path.name} is not a safetensors file (too short).")
        (n,) = struct.unpack("<Q", raw)
        header = None
        with contextlib.suppress(ValueError):
            header = json.loads(fh.read(n)) if n < size else None
    if not isinstance(header, dict):
        raise NotAModel(f"{path.name} is not a safetensors file (its header does not parse).")
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise NotAModel(f"{path.name} is truncated: its tensors need {8 + n + end} bytes but the file has {size}.")


def _check_dir(path: Path) -> ModelFacts:
    _check_weights(path)
    if not any((path / t).is_file() or any(path.rglob(t)) for t in TOKENIZER_FILES):
        raise NotAModel(f"{path} has no tokenizer ({', '.join(TOKENIZER_FILES)}).")
    files = tuple(p.relative_to(path) for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith("."))
    if (path / "modules.json").is_file() or (path / "config_sentence_transformers.json").is_file():
        return ModelFacts(kind="sentence-transformers", roles=("embeddings",), files=files)
    config, archs = _causal_lm_config(path)
    template = _chat_template(path)
    ctx = config.get("max_position_embeddings")
    return ModelFacts(kind="hf-causal-lm", roles=("finetune-base",), can=("finetune-base", "chat", "completion"),
                      arch=archs[0],
                      chat_template=template if isinstance(template, str) else None,
                      context_length=int(ctx) if isinstance(ctx, int) else None, files=files)


def _check_weights(path: Path) -> None:
    """The dir holds safetensors weights, each complete."""
    weights = sorted(p for p in path.rglob("*.safetensors") if p.is_file())
    if not weights:
        raise NotAModel(f"{path} has no .safetensors weights (a Hugging Face model dir needs them).")
    for w in weights:
        _safetensors_ok(w)


def _causal_lm_config(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The dir's ``config.json`` and architectures: a causal LM of a model type transformers knows."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise NotAModel(f"{path} has no readable config.json.") from None
    archs = [str(a) for a in config.get("architectures") or []]
    if not any(a.endswith("ForCausalLM") for a in archs):
        raise NotAModel(f"{path} is not a causal language model (architectures: {archs or 'none'}).")
    model_type = str(config.get("model_type") or "")
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if model_type not in CONFIG_MAPPING_NAMES:
        raise NotAModel(f"{path} has model_type {model_type!r}, which transformers (and so peft) cannot load.")
    return config, archs


def _chat_template(path: Path) -> Any:
    """The chat template in ``tokenizer_config.json``, else ``chat_template.jinja`` (None: neither)."""
    template = None
    tok_config = path / "tokenizer_config.json"
    if tok_config.is_file():
        with contextlib.suppress(ValueError):
            template = json.loads(tok_config.read_text(encoding="utf-8")).get("chat_template")
    if template is None and (path / "chat_template.jinja").is_file():
        template = (path / "chat_template.jinja").read_text(encoding="utf-8")
    return template
