"""The user's models in the content-addressed model store (``qfnb models add``), like Ollama's.

Weights live once under ``<store>/sha256-<digest>/`` (the store the built-in models use,
``$QFNB_MODEL_CACHE`` or ``~/.cache/qfnb/models``): hard-linked from the source when it is on the
same file system, else copied and checked against the source's sha256. What each name means is in
``<store>/manifest.json`` (written atomically under a lock). A name belongs to the data dir whose
platform added it (its ``owner``) and is listed there only; its weights stay shared, so the same
file added from two data dirs is stored once and ``rm`` in one keeps what the other uses. Entries
with no owner (a manifest from before, or a store opened without a data dir) are listed everywhere.
A failed add leaves the store as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qfnb.local.engines.store.assets import file_lock, sha256_file
from qfnb.local.engines.store.hf_gguf import HFConversionError, convert
from qfnb.local.engines.store.model_check import ROLES, NotAModel, inspect
from qfnb.local.engines.store.store_inputs import StoreInputError, check_engine_url, check_template
from qfnb.protocol.console.model_names import (
    LOCAL_CHAT_MODEL,
    LOCAL_EMBEDDING_MODEL,
    LOCAL_ENGLISH_EMBEDDING_MODEL,
    LOCAL_FINETUNE_BASE,
)
from qfnb.protocol.platform.daemon import default_model_cache
from qfnb.protocol.platform.files import write_private_json

log = logging.getLogger("qfnb.local.engines.store.model_store")

MANIFEST = "manifest.json"
SERVED_GGUF = "served-f16.gguf"  # an HF causal-LM dir's GGUF form, converted once when it is added
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


@dataclass(frozen=True)
class StoredModel:
    """One name in the store: what it is, where its weights are, how it is served."""

    name: str
    kind: str  # gguf | hf-causal-lm | sentence-transformers | onnx | engine
    roles: tuple[str, ...]
    digest: str = ""  # sha256 of the GGUF file, or of a dir's (path, sha256) list
    path: str = ""  # the GGUF file or the model dir inside the store
    source: str = ""  # where it was added from (a path or an engine URL)
    size: int = 0
    arch: str = ""
    ctx: int | None = None
    template: str | None = None  # a chat template (jinja text) given with --template
    has_template: bool = False  # the weights carry their own chat template
    keep_alive: float | None = None  # seconds idle before unload; -1 never; None the platform's default
    engine_url: str | None = None  # kind "engine": an OpenAI-API engine's base URL
    added: float = field(default_factory=time.time)
    owner: str = ""  # the data dir that added it (resolved path); "" listed in every data dir

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "roles": list(self.roles)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StoredModel:
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "roles": tuple(raw.get("roles") or ())})


def check_name(name: str) -> str:
    name = str(name or "").strip()
    if not _NAME.match(name):
        raise NotAModel(f"name {name!r} is not usable: letters, digits and . _ : - only, starting with a letter "
                        "or digit, at most 100 characters.")
    if name.lower() in {n.lower() for n in (LOCAL_CHAT_MODEL, LOCAL_EMBEDDING_MODEL,
                                                    LOCAL_ENGLISH_EMBEDDING_MODEL, LOCAL_FINETUNE_BASE)}:
        raise NotAModel(f"name {name!r} is a built-in model's name; choose another.")
    return name


def check_roles(roles: tuple[str, ...], allowed: tuple[str, ...]) -> tuple[str, ...]:
    for role in roles:
        if role not in ROLES:
            raise NotAModel(f"role {role!r} is unknown; roles: {', '.join(ROLES)}.")
        if role not in allowed:
            raise NotAModel(f"role {role!r} does not fit this model; it can be: {', '.join(allowed)}.")
    return roles


class ModelStore:
    """The store's manifest and weights (process-safe: every change runs under the store's lock)."""

    def __init__(self, root: Path | None = None, *, data_dir: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_model_cache()
        #: the data dir whose names this store lists and adds ("" none: unowned names only)
        self.owner = str(Path(data_dir).expanduser().resolve()) if data_dir is not None else ""

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.manifest.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            log.warning("%s is not valid JSON; treating the store as empty", self.manifest)
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        write_private_json(self.manifest, dict(sorted(data.items())), indent=1)

    def _key(self, name: str) -> str:
        """A name's manifest key: the owner's path and the name (the name alone when unowned)."""
        return f"{self.owner}|{name}" if self.owner else name

    def _listed(self, data: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The manifest entries this data dir lists: its own and the unowned ones."""
        return {k: v for k, v in data.items() if str(v.get("owner") or "") in ("", self.owner)}

    def models(self) -> list[StoredModel]:
        return sorted((StoredModel.from_dict(v) for v in self._listed(self._read()).values()), key=lambda m: m.name)

    def get(self, name: str) -> StoredModel | None:
        return next((m for m in self.models() if m.name.lower() == name.lower()), None)

    def add(self, path: str | Path | None, name: str, *, roles: tuple[str, ...] = (), template: str | None = None,
            ctx: int | None = None, keep_alive: float | None = None, engine_url: str | None = None,
            replace: bool = False) -> StoredModel:
        """Check, store once and name a model; raises :class:`NotAModel` with the reason."""
        name = check_name(name)
        if ctx is not None and not (128 <= int(ctx) <= 1 << 20):
            raise NotAModel(f"ctx must be between 128 and 1048576 tokens, got {ctx}.")
        if keep_alive is not None and keep_alive != -1 and keep_alive < 0:
            raise NotAModel(f"keep_alive must be seconds >= 0 or -1 (never unload), got {keep_alive}.")
        if not replace and self.get(name) is not None:
            raise NotAModel(f"a model named {name!r} is already in the store; `qfnb models rm {name}` first.")
        try:
            if template is not None:
                check_template(template)
            if engine_url is not None:
                check_engine_url(engine_url)
        except StoreInputError as exc:
            raise NotAModel(str(exc)) from None
        if engine_url is not None:
            roles = check_roles(roles or ("chat", "completion"), ROLES)
            entry = StoredModel(name=name, kind="engine", roles=roles, source=str(engine_url),
                                engine_url=str(engine_url).rstrip("/"), keep_alive=keep_alive, owner=self.owner)
            return self._name(entry, replace)
        if path is None:
            raise NotAModel("give a model path (a GGUF file or a Hugging Face dir) or --engine URL.")
        source = Path(path).expanduser().resolve()
        facts = inspect(source)
        roles = check_roles(roles or facts.roles, facts.can or facts.roles)
        # an ONNX file's files (it and its tokenizer) are named relative to its folder
        stored, digest, size = self._store_weights(source.parent if facts.kind == "onnx" else source, facts.kind,
                                                   facts.files)
        if facts.kind == "hf-causal-lm":
            _serve_as_gguf(stored)
        entry = StoredModel(name=name, kind=facts.kind, roles=roles, digest=digest, path=str(stored),
                            source=str(source), size=size, arch=facts.arch,
                            ctx=ctx or min(facts.context_length or 4096, 4096),
                            template=template, has_template=facts.chat_template is not None, keep_alive=keep_alive,
                            owner=self.owner)
        return self._name(entry, replace)

    def _name(self, entry: StoredModel, replace: bool) -> StoredModel:
        with file_lock(self.root / ".manifest.lock"):
            data = self._read()
            same = [k for k, v in self._listed(data).items() if str(v.get("name", "")).lower() == entry.name.lower()]
            if same and not replace:
                raise NotAModel(f"a model named {entry.name!r} is already in the store.")
            data = {k: v for k, v in data.items() if k not in same}
            data[self._key(entry.name)] = entry.to_dict()
            self._write(data)
        log.info("model store: %s -> %s (%s)", entry.name, entry.path or entry.engine_url, entry.kind)
        return entry

    def _store_weights(self, source: Path, kind: str, files: tuple[Path, ...]) -> tuple[Path, str, int]:
        """Put the weights under ``sha256-<digest>/`` once; returns (stored path, digest, bytes)."""
        if kind == "gguf":
            digest = sha256_file(source)
            size = source.stat().st_size
            folder = self.root / f"sha256-{digest}"
            with file_lock(self.root / f".sha256-{digest}.lock"):
                existing = sorted(folder.glob("*.gguf")) if folder.is_dir() else []
                if existing and existing[0].stat().st_size == size:
                    return existing[0], digest, size  # already stored (a built-in or an earlier add)
                folder.mkdir(parents=True, exist_ok=True)
                target = folder / source.name
                _place(source, target, digest)
            return target, digest, size
        sums = [(str(rel), sha256_file(source / rel)) for rel in files]
        digest = _digest_of(sums)
        folder = self.root / f"sha256-{digest}"
        size = sum((source / rel).stat().st_size for rel in files)
        with file_lock(self.root / f".sha256-{digest}.lock"):
            if (folder / ".complete").is_file():
                return folder, digest, size
            tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                for rel, sha in sums:
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    _place(source / rel, tmp / rel, sha)
                (tmp / ".complete").write_text(digest)
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(tmp, folder)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return folder, digest, size

    def store_adapter(self, source: Path) -> Path:
        """A fine-tune's LoRA adapter dir (a checkpoint) stored once under ``sha256-<digest>/``, with
        no name in the manifest (its task refers to it); returns the stored folder."""
        files = tuple(sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file()))
        if not files:
            raise FileNotFoundError(f"{source} holds no files")
        return self._store_weights(source, "adapter", files)[0]

    def drop_adapter(self, folder: Path) -> bool:
        """Delete a stored adapter folder nothing else refers to (no manifest entry has its digest)."""
        if folder.parent != self.root or not folder.name.startswith("sha256-"):
            return False
        digest = folder.name.removeprefix("sha256-")
        if any(v.get("digest") == digest for v in self._read().values()):
            return False
        with file_lock(self.root / f".{folder.name}.lock"):
            shutil.rmtree(folder, ignore_errors=True)
        return True

    def remove(self, name: str) -> int:
        """Forget ``name``; delete its weights unless another name (or a built-in) shares them.
        Returns the bytes freed."""
        with file_lock(self.root / ".manifest.lock"):
            data = self._read()
            key = next((k for k, v in self._listed(data).items() if str(v.get("name", "")).lower() == name.lower()),
                       None)
            if key is None:
                raise KeyError(f"no model named {name!r} in the store")
            entry = StoredModel.from_dict(data.pop(key))
            freed = self.freed_by(entry, data)
            self._write(data)
        if freed and entry.digest:
            shutil.rmtree(self.root / f"sha256-{entry.digest}", ignore_errors=True)
        return freed

    def freed_by(self, entry: StoredModel, others: dict[str, dict[str, Any]] | None = None) -> int:
        """The bytes ``rm`` of ``entry`` would free: 0 when other names (of any data dir) or a built-in
        share its weights."""
        others = {k: v for k, v in (others if others is not None else self._read()).items()
                  if not (str(v.get("name", "")).lower() == entry.name.lower() and v.get("owner", "") == entry.owner)}
        if not entry.digest or any(v.get("digest") == entry.digest for v in others.values()):
            return 0
        folder = self.root / f"sha256-{entry.digest}"
        if any(folder.glob("*.sha256.json")):  # a built-in model's assembled file
            return 0
        return _tree_bytes(folder, only_last_link=True)

    def usage(self) -> dict[str, Any]:
        """``qfnb models du``: the store's bytes on disk, and per name what ``rm`` would free."""
        return {"path": str(self.root), "bytes": _tree_bytes(self.root),
                "models": [{"name": m.name, "size": m.size, "freed_by_rm": self.freed_by(m)} for m in self.models()]}


def _serve_as_gguf(hf_dir: Path) -> None:
    """Convert a stored HF causal-LM dir once to the GGUF ``llama-server`` serves it with (beside its
    weights, so ``rm`` frees both); an architecture the converter does not know stays with transformers."""
    try:
        convert(hf_dir, hf_dir / SERVED_GGUF)
    except (HFConversionError, KeyError, TypeError) as exc:  # a config without a field llama.cpp needs
        log.info("%s is served by transformers: %s", hf_dir, exc)


def _digest_of(sums: Any) -> str:
    """The content address of a set of files: the sha256 of their sha256s."""
    return hashlib.sha256(json.dumps(sums).encode()).hexdigest()


def _place(source: Path, target: Path, sha256: str) -> None:
    """Hard-link ``source`` to ``target`` (same file system), else copy it and check the copy's sha256."""
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
            if sha256_file(tmp) != sha256:
                raise NotAModel(f"the copy of {source.name} does not match its sha256 (the source changed "
                                "while it was copied?); nothing was added.") from None
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _tree_bytes(path: Path, *, only_last_link: bool = False) -> int:
    """Bytes on disk under ``path``, each inode counted once (hard links are not double-counted);
    ``only_last_link``: only files no other hard link keeps (what deleting ``path`` frees)."""
    sizes: dict[tuple[int, int], int] = {}  # by inode
    for dirpath, _, names in os.walk(path):
        for n in names:
            with contextlib.suppress(OSError):
                st = os.stat(os.path.join(dirpath, n))
                if not (only_last_link and st.st_nlink > 1):
                    sizes[st.st_dev, st.st_ino] = st.st_size
    return sum(sizes.values())
