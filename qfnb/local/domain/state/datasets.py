"""Datasets and object storage on the local platform (Contract 6): files only under the data dir."""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import secrets
import shutil
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import ijson
from starlette.concurrency import run_in_threadpool

from qfnb.local.domain.state.values import BodyError
from qfnb.protocol.bounded_jsonl import LineProblem, file_lines, loads_line
from qfnb.protocol.console import train_formats
from qfnb.protocol.platform.files import jsonl, write_private_text

BOS_PREFIX = "bos:/"
#: bytes of an upload gathered before each write to disk
WRITE_BATCH = 1024 * 1024
#: the bytes a staged import is appended in at a time
COPY_CHUNK = 64 * 1024
#: what a file saved as "UTF-8 with BOM" (Windows editors) starts with
_UTF8_BOM = b"\xef\xbb\xbf"
#: a dataset's append under way: the data file's size before it (:func:`append_rows`, :func:`recover`)
APPEND_JOURNAL = ".data.jsonl.append"


def _part_file(target: Path) -> Path:
    """A private temporary name next to ``target`` (unique, so concurrent uploads never share it)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class AppendConflict(Exception):
    """An append the object refuses: ``code`` is BOS's (OffsetIncorrect, EntityTooLarge)."""

    def __init__(self, code: str, message: str, length: int) -> None:
        super().__init__(message)
        self.code, self.length = code, length


class ObjectStore:
    """BOS-style objects at ``<data_dir>/objects/<bucket>/<key>``, with path-traversal protection."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, bucket: str, key: str) -> Path:
        """The file for ``bucket``/``key``; ValueError for anything escaping the root."""
        for part, what in ((bucket, "bucket"), (key, "key")):
            if not part or "\0" in part or "\\" in part:
                raise ValueError(f"invalid object {what} {part!r}")
        if key.startswith("/") or bucket.startswith("/") or "/" in bucket:
            raise ValueError("object keys must be relative and buckets a single name")
        if any(seg in ("", ".", "..") for seg in [bucket, *key.split("/")]):
            raise ValueError("object paths must not contain '.', '..' or empty segments")
        if len(key.encode()) > 1024 or any(len(seg.encode()) > 255 for seg in [bucket, *key.split("/")]):
            raise ValueError("object keys are at most 1024 bytes, each '/'-separated part at most 255")
        target = (self.root / bucket / key).resolve()
        if not target.is_relative_to(self.root):
            raise ValueError("object path escapes the storage root")
        return target

    def put(self, bucket: str, key: str, data: bytes | Iterable[bytes]) -> Path:
        """Write the object (0600) whole or not at all: ``data``'s bytes, or its chunks one at a time."""
        target = self.path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _part_file(target)
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
                fh.writelines([data] if isinstance(data, bytes) else data)
            tmp.replace(target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target

    async def put_stream(self, bucket: str, key: str, chunks: AsyncIterable[bytes]) -> tuple[Path, int]:
        """Write ``chunks`` to the object (0600) as they arrive, at most ``WRITE_BATCH`` bytes held
        in memory; the object appears whole or not at all (an error leaves no partial file)."""
        target = self.path(bucket, key)
        await run_in_threadpool(target.parent.mkdir, parents=True, exist_ok=True)
        tmp = _part_file(target)
        fh = os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
        size, pending = 0, bytearray()
        try:
            with fh:
                async for chunk in chunks:
                    size += len(chunk)
                    pending += chunk
                    if len(pending) >= WRITE_BATCH:
                        await run_in_threadpool(fh.write, bytes(pending))
                        pending.clear()
                await run_in_threadpool(fh.write, bytes(pending))
            await run_in_threadpool(tmp.replace, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target, size

    async def append_stream(self, bucket: str, key: str, offset: int, chunks: AsyncIterable[bytes],
                            limit: int) -> int:
        """BOS ``AppendObject``: add ``chunks`` at the end of the object (created at offset 0), which
        must be ``offset`` bytes long; returns the next offset. A failed append leaves the object as
        it was (cut back to ``offset``); :class:`AppendConflict` when ``offset`` is not its length or
        the object would pass ``limit`` bytes. Appends to one object are serialized (a file lock)."""
        target = self.path(bucket, key)
        await run_in_threadpool(target.parent.mkdir, parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            await run_in_threadpool(fcntl.flock, fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size != offset:
                raise AppendConflict("OffsetIncorrect", f"the object is {size} bytes long, not {offset}", size)
            try:
                pending = bytearray()
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise AppendConflict("EntityTooLarge", f"objects are limited to {limit} bytes here", offset)
                    pending += chunk
                    if len(pending) >= WRITE_BATCH:
                        await run_in_threadpool(_write_all, fd, bytes(pending))
                        pending.clear()
                await run_in_threadpool(_write_all, fd, bytes(pending))
                await run_in_threadpool(os.fsync, fd)
            except BaseException:
                os.ftruncate(fd, offset)
                raise
            return size
        finally:
            os.close(fd)  # closing drops the lock

    def remove_parts(self) -> int:
        """After a restart (no upload runs): the part files of uploads a kill cut short, removed (an upload
        writes its object aside and renames it into place when whole); returns how many."""
        parts = [p for p in self.root.rglob(".*.part") if p.is_file()] if self.root.is_dir() else []
        for part in parts:
            part.unlink(missing_ok=True)
        return len(parts)

    def from_uri(self, uri: str) -> Path:
        """``bos:/bucket/key`` (also ``bos://``) → the stored file; ValueError if malformed or missing."""
        if not uri.startswith(BOS_PREFIX):
            raise ValueError(f"only bos:/bucket/key files can be imported here, got {uri!r}")
        rest = uri[len(BOS_PREFIX):].lstrip("/")
        bucket, _, key = rest.partition("/")
        target = self.path(bucket, key)
        if not target.is_file():
            raise ValueError(f"no object at {uri}: upload it first with a signed PUT to /bos/{bucket}/{key}")
        return target


def _first_text(value: Any) -> str:
    while isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, str) else ""


def normalize_rows(raw: Any) -> list[dict[str, Any]]:
    """Rows of ``{prompt, response}`` from the platform's jsonl shapes.

    Accepts ``{"prompt", "response"}`` (response as str, ``[str]`` or ``[[str]]``; a ``system``
    prompt kept), a list of such turns (one row per turn), and prompt-only rows (query sets,
    response ``""``). Another train mode's record (a DPO pair, a KTO item, ``{"text"}``, OpenAI's
    preference or chat lines, a RFT prompt with other fields for its reward:
    :func:`qfnb.protocol.console.train_formats.looks_like`) is one row that keeps the record whole under
    ``record`` (its ``response`` empty: an SFT run does not train on it).
    """
    seen = train_formats.looks_like(raw)
    # a RFT prompt line with fields for its reward (a keyword, a reference answer) is kept whole too
    single = raw[0] if isinstance(raw, list) and len(raw) == 1 else raw
    extra = isinstance(single, dict) and bool(set(single) - {"prompt", "response", "system"})
    turns = raw if isinstance(raw, list) else [raw]
    if seen is not None and (not seen.startswith(("SFT", "prompts")) or (seen.startswith("prompts") and extra)):
        last = turns[-1] if turns and isinstance(turns[-1], dict) else {}
        prompt = last.get("prompt", last.get("user"))
        best = _first_text(last.get("response")) if seen.startswith("sorted") else ""  # SFT trains on the best
        return [{"prompt": prompt if isinstance(prompt, str) else "", "response": best, "record": raw}]
    return [{"prompt": turn["prompt"], "response": _first_text(turn.get("response")),
             **({"system": turn["system"]} if isinstance(turn.get("system"), str) and turn["system"] else {})}
            for turn in turns if isinstance(turn, dict) and isinstance(turn.get("prompt"), str)]


def iter_file_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows from a ``.jsonl`` or ``.json`` file (a ``.txt`` file: plain text, PostPretrain's, one row per
    paragraph), one at a time and never read whole: a ``.jsonl`` or ``.txt`` file line by line, a ``.json``
    file's top-level list an item at a time. A UTF-8 byte-order mark is skipped; ValueError names the bad
    line or item."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        yield from _text_rows(path)
        return
    if suffix == ".json":
        yield from _json_rows(path)
        return
    try:  # line by line, each under qfnb.protocol.bounded_jsonl's bounds: the file is never held whole
        for n, line in file_lines(path):
            if not line.strip():
                continue
            try:
                item = loads_line(line, n)
            except LineProblem as exc:
                raise ValueError(f"{path.name} line {n} is not JSON: {exc.message}") from None
            found = normalize_rows(item)
            if not found:
                raise ValueError(f"{path.name} line {n} has no 'prompt' field (nor any train mode's record: "
                                 "chosen/rejected, text, input/preferred_output, messages)")
            yield from found
    except LineProblem as exc:  # a line past a bound
        raise ValueError(f"{path.name} line {exc.line} {exc.message}") from None


def _json_rows(path: Path) -> Iterator[dict[str, Any]]:
    """A ``.json`` file's rows: a top-level list parsed an item at a time (a file of any size is never held
    whole), or a single record."""
    with open(path, "rb") as raw:
        head = raw.read(4096)
        bom = len(_UTF8_BOM) if head.startswith(_UTF8_BOM) else 0
        listed = head[bom:].lstrip().startswith(b"[")  # else one record (parsed whole: it is one row)
        raw.seek(bom)
        done = 0
        try:
            for item in ijson.items(raw, "item" if listed else "", use_float=True):
                yield from normalize_rows(item)
                done += 1
        except ijson.JSONError as exc:
            where = f"after item {done} of its list" if listed else "its record"
            raise ValueError(f"{path.name} is not JSON ({where}): {exc}") from exc


def _text_rows(path: Path) -> Iterator[dict[str, Any]]:
    """A plain-text file's rows, a paragraph at a time: an empty line ends one, as
    :func:`~qfnb.protocol.console.train_formats.text_chunks` splits the whole text."""
    def rows(text: str) -> list[dict[str, Any]]:
        return [{"prompt": "", "response": "", "record": train_formats.to_wire(t)}
                for t in train_formats.text_chunks(text)]

    with open(path, encoding="utf-8-sig") as lines:  # universal newlines, as read_text: '\r\n' is '\n'
        for blank, paragraph in itertools.groupby(lines, lambda line: line == "\n"):
            if not blank:
                yield from rows("".join(paragraph))


def dataset_rows(data_dir: Path, dataset: dict[str, Any]) -> list[dict[str, str]]:
    """The imported rows of a dataset record."""
    return list(iter_dataset_rows(data_dir, dataset))


def iter_dataset_rows(data_dir: Path, dataset: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The imported rows of a dataset record, one at a time."""
    path = data_dir / "datasets" / dataset["sid"] / "data.jsonl"
    if not path.exists():
        raise BodyError("datasetId", f"dataset {dataset['id']} has no imported data yet; import a file first")
    with open(path, encoding="utf-8") as lines:  # '\n' lines only: a row may hold U+2028 and the like
        yield from (json.loads(line) for line in lines if line.strip())


EXPORT_BUCKET = "qfnb-exports"


def export_lines(rows: list[dict[str, Any]]) -> bytes:
    """The platform's prompt/response export: one conversation (a JSON list of turns) per line;
    a result dataset's rows keep their ``completion``, another train mode's records are written whole."""
    def turn(r: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"prompt": r["prompt"], "response": [[r["response"]]]}
        if "completion" in r:
            out["completion"] = r["completion"]
        return out

    # another train mode's record goes back as it came (a DPO pair, a text, ...)
    return jsonl(r["record"] if "record" in r else [turn(r)] for r in rows).encode("utf-8")


def import_paths(objects: ObjectStore, files: Any) -> list[Path]:
    """The stored objects an import names (``files``: a non-empty list of ``bos:/`` URIs); BodyError naming
    the bad one."""
    if not isinstance(files, list) or not files:
        raise BodyError("files", "is required: a list of bos:/bucket/key URIs")
    paths: list[Path] = []
    for i, uri in enumerate(files):
        if not isinstance(uri, str):
            raise BodyError(f"files[{i}]", "must be a bos:/bucket/key string")
        try:
            paths.append(objects.from_uri(uri))
        except ValueError as exc:
            raise BodyError(f"files[{i}]", str(exc)) from exc
    return paths


def import_files(data_dir: Path, objects: ObjectStore, dataset: dict[str, Any], files: list[Any],
                 commit: Callable[[int], object] | None = None) -> int:
    """Append the rows of ``files`` (``bos:/`` URIs) to the dataset, read and written a batch at a time
    (:func:`append_rows`, ``commit`` with it): all of them, or none when one file is bad; returns the new
    row count."""
    paths = import_paths(objects, files)
    return append_rows(data_dir, dataset, (row for i, path in enumerate(paths) for row in _file_rows(i, path)),
                       commit)


def _file_rows(i: int, path: Path) -> Iterator[dict[str, Any]]:
    """The rows of ``files[i]``; BodyError naming it for a bad line."""
    try:
        yield from iter_file_rows(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(f"files[{i}]", str(exc)) from exc


def append_rows(data_dir: Path, dataset: dict[str, Any], rows: Iterable[dict[str, Any]],
                commit: Callable[[int], object] | None = None) -> int:
    """Append ``rows`` to the dataset's stored data; returns its row count. The rows are staged in a part
    file as they come (never all held), then appended in one pass under a file lock: all of them or, when
    ``rows`` raises, the append fails or the process dies, none. ``commit(count)`` (the record's update)
    runs under the lock once they are in: until it returns, the data file's size before is kept in a
    journal, which :func:`recover` cuts the file back to after a kill."""
    folder = data_dir / "datasets" / dataset["sid"]
    folder.mkdir(parents=True, exist_ok=True)
    part = _part_file(folder / "data.jsonl")
    try:
        with os.fdopen(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as staged:
            for row in rows:
                staged.write(jsonl((row,)))
        with os.fdopen(os.open(folder / "data.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as data, \
                open(part, "rb") as staged_bytes:
            fcntl.flock(data.fileno(), fcntl.LOCK_EX)  # closing drops it
            return _append_journaled(folder, data, staged_bytes, commit)
    finally:
        part.unlink(missing_ok=True)


def _append_journaled(folder: Path, data: BinaryIO, staged: BinaryIO, commit: Callable[[int], object] | None) -> int:
    """Copy ``staged`` to the end of ``data`` (locked), the size before in the journal until ``commit``
    has run; a failure cuts ``data`` back. Returns the row count."""
    journal = folder / APPEND_JOURNAL
    size = os.fstat(data.fileno()).st_size
    write_private_text(journal, str(size))
    try:
        shutil.copyfileobj(staged, data, COPY_CHUNK)
        data.flush()
        os.fsync(data.fileno())
        count = _count_rows(folder / "data.jsonl")
        if commit is not None:
            commit(count)
    except BaseException:
        os.ftruncate(data.fileno(), size)
        raise
    finally:
        journal.unlink(missing_ok=True)
    return count


def _count_rows(path: Path) -> int:
    with open(path, encoding="utf-8") as lines:  # counted line by line, never held whole
        return sum(1 for line in lines if line.strip())


def recover(data_dir: Path) -> list[str]:
    """After a restart (no import runs): each dataset's append that a kill cut short is undone (its data
    file cut back to the size its journal kept) and the files staged for it removed; returns the sids
    of the datasets whose append was undone."""
    undone: list[str] = []
    for folder in sorted(p for p in (data_dir / "datasets").glob("*") if p.is_dir()):
        for stale in [*folder.glob(".data.jsonl.*.part"), *folder.glob(".data.jsonl.*.tmp")]:
            stale.unlink(missing_ok=True)
        journal = folder / APPEND_JOURNAL
        if not journal.exists():
            continue
        with open(folder / "data.jsonl", "ab") as data:
            fcntl.flock(data.fileno(), fcntl.LOCK_EX)  # an append under way in another process ends first
            if not journal.exists():
                continue  # it ended: its journal went with it
            os.ftruncate(data.fileno(), int(journal.read_text(encoding="utf-8")))
            os.fsync(data.fileno())
        journal.unlink()
        undone.append(folder.name)
    return undone


def stored_count(data_dir: Path, dataset: dict[str, Any]) -> int:
    """The dataset's rows on disk (0 before its first import)."""
    path = data_dir / "datasets" / dataset["sid"] / "data.jsonl"
    return _count_rows(path) if path.exists() else 0


def write_rows(data_dir: Path, dataset: dict[str, Any], rows: list[dict[str, Any]]) -> int:
    """Replace the dataset's stored rows (written aside, then renamed over); returns their count."""
    write_private_text(data_dir / "datasets" / dataset["sid"] / "data.jsonl", jsonl(rows))
    return len(rows)
