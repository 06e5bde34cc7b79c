"""What a GGUF file's header says: its metadata and its tensors' names, shapes, types and places,
read without touching the tensor data.

gguf's own ``GGUFReader`` builds a numpy view for every value of every field; a model's vocabulary
is an array of some 262,000 strings, so opening Gemma 3's 250 MB GGUF with it took 23 s of CPU on
this 2-core machine, and every fine-tune launch, publish and model check paid it. This reads the
same header with ``struct`` over a memory map in well under a second, skipping array contents, and
takes the format's constants (value types, block sizes) from the gguf package.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
_SCALARS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H", GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i", GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q", GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d",
}


class GGUFHeaderError(ValueError):
    """The bytes are not a readable GGUF header (the message says where it broke)."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the file: where its data lies (absolute offset) and how long it is."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    data_offset: int
    n_bytes: int

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class GGUFHeader:
    """A GGUF file's version, metadata (arrays given as their length only) and tensors."""

    version: int
    fields: dict[str, Any]
    array_lengths: dict[str, int]
    tensors: tuple[TensorInfo, ...]

    @property
    def parameters(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def end(self) -> int:
        """The byte the last tensor's data ends at: a complete file is at least this long."""
        return max((t.data_offset + t.n_bytes for t in self.tensors), default=0)


class _Cursor:
    """Little-endian reads over a buffer, each checked against its end."""

    def __init__(self, buf: mmap.mmap | bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: str) -> Any:
        start = self.pos
        self.skip(struct.calcsize(fmt))
        return struct.unpack_from(fmt, self.buf, start)[0]

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise GGUFHeaderError(f"the header is cut off at byte {self.pos}")
        self.pos += n

    def string(self) -> str:
        n = self.take("<Q")
        start = self.pos
        self.skip(n)
        return bytes(self.buf[start:self.pos]).decode("utf-8", errors="replace")

    def value_type(self) -> GGUFValueType:
        raw = self.take("<I")
        try:
            return GGUFValueType(raw)
        except ValueError:
            raise GGUFHeaderError(f"unknown value type {raw} at byte {self.pos - 4}") from None

    def value(self, kind: GGUFValueType) -> Any:
        if kind == GGUFValueType.STRING:
            return self.string()
        return self.take(_SCALARS[kind])

    def skip_array(self) -> int:
        """Pass over an array value; its length."""
        kind, n = self.value_type(), self.take("<Q")
        if kind == GGUFValueType.STRING:
            for _ in range(n):
                self.skip(self.take("<Q"))
        elif kind == GGUFValueType.ARRAY:
            for _ in range(n):
                self.skip_array()
        else:
            self.skip(n * struct.calcsize(_SCALARS[kind]))
        return int(n)


def read_header(path: Path | str) -> GGUFHeader:
    """The header of the GGUF file at ``path``; :class:`GGUFHeaderError` if it cannot be read."""
    with open(path, "rb") as fh:
        try:
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise GGUFHeaderError("the file is empty") from None
        with buf:
            return _parse(_Cursor(buf))


def _parse(cur: _Cursor) -> GGUFHeader:
    if bytes(cur.buf[:4]) != MAGIC:
        raise GGUFHeaderError("it does not start with the GGUF magic bytes")
    cur.skip(4)
    version, n_tensors, n_fields = cur.take("<I"), cur.take("<Q"), cur.take("<Q")
    if version < 2:
        raise GGUFHeaderError(f"GGUF version {version} (32-bit counts) is not read")
    fields: dict[str, Any] = {}
    arrays: dict[str, int] = {}
    for _ in range(n_fields):
        key, kind = cur.string(), cur.value_type()
        if kind == GGUFValueType.ARRAY:
            arrays[key] = cur.skip_array()
        else:
            fields[key] = cur.value(kind)
    raw: list[tuple[str, tuple[int, ...], int, int]] = []
    for _ in range(n_tensors):
        name = cur.string()
        dims = tuple(int(cur.take("<Q")) for _ in range(cur.take("<I")))
        raw.append((name, dims, cur.take("<I"), cur.take("<Q")))
    align = int(fields.get("general.alignment", DEFAULT_ALIGNMENT)) or DEFAULT_ALIGNMENT
    data_start = -(-cur.pos // align) * align
    tensors = tuple(TensorInfo(name, dims, kind, data_start + offset, _n_bytes(name, dims, kind))
                    for name, dims, kind, offset in raw)
    return GGUFHeader(version, fields, arrays, tensors)


def _n_bytes(name: str, dims: tuple[int, ...], kind: int) -> int:
    try:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
    except (ValueError, KeyError):
        raise GGUFHeaderError(f"tensor {name!r} has unknown type {kind}") from None
    return math.prod(dims) * size // block
