"""A GGUF reader of our own: header, metadata, tensor infos, alignment and the data section.

Written from the GGUF specification, ggml-org/ggml ``docs/gguf.md`` at commit
d99724f2b141fed9e1a9f402213506c081433465, with the limits ggml's own reader applies
(``src/gguf.cpp`` at the same commit: version 2 or 3, at most 2^30 bytes per string and 2^30
elements per array, tensor names under 64 bytes, at most 4 dimensions, a known type whose block
size divides the row, a power-of-two ``general.alignment`` of type uint32). The layout, all
little-endian::

    magic "GGUF" | uint32 version | uint64 tensor_count | uint64 metadata_kv_count
    metadata_kv_count x (string key | uint32 value_type | value)
    tensor_count x (string name | uint32 n_dims | n_dims x uint64 ne | uint32 type | uint64 offset)
    padding to ALIGNMENT | tensor data (each tensor at data_offset + offset, offsets aligned)

where a string is ``uint64 length`` + UTF-8 bytes and an array is ``uint32 type | uint64 count``
+ values. ``ne[0]`` is the row length (the innermost dimension).

The file is untrusted input. It is read through ``mmap`` without touching the tensor data (a
70 GB file costs its header only), and every count, length and offset is checked against the
bytes that remain before anything is allocated, so a hostile or damaged file raises
:class:`~mfubench.errors.InputFileError` naming the file and the field, never another exception,
never a hang (the work is bounded by the file's size).
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from mfubench.errors import InputFileError
from mfubench.model.ggml_types import BY_ID, REMOVED_TYPE_IDS, GGMLType

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32  # gguf.md: "If the alignment is not specified, assume it is 32"

#: Limits (ggml's gguf.cpp: GGUF_MAX_STRING_LENGTH, GGUF_MAX_ARRAY_ELEMENTS, GGML_MAX_NAME,
#: GGML_MAX_DIMS); the counts of tensors and keys are capped far above any real model's (a few
#: thousand tensors, a few dozen keys) and, before that, by the bytes left in the file.
MAX_STRING = 1 << 30
MAX_ARRAY = 1 << 30
MAX_KEY = 65_535  # gguf.md: keys are at most 2^16-1 bytes
MAX_TENSOR_NAME = 63  # ggml: name.length() >= GGML_MAX_NAME (64) is refused
MAX_DIMS = 4
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 20
MAX_ARRAY_DEPTH = 8
_INT64_MAX = (1 << 63) - 1

# gguf_metadata_value_type (gguf.md): id -> (name, struct format or None, size)
_SCALARS: dict[int, tuple[str, str, int]] = {
    0: ("uint8", "B", 1), 1: ("int8", "b", 1), 2: ("uint16", "H", 2), 3: ("int16", "h", 2),
    4: ("uint32", "I", 4), 5: ("int32", "i", 4), 6: ("float32", "f", 4), 7: ("bool", "B", 1),
    10: ("uint64", "Q", 8), 11: ("int64", "q", 8), 12: ("float64", "d", 8),
}
STRING, ARRAY = 8, 9
VALUE_TYPE_NAMES: dict[int, str] = {k: v[0] for k, v in _SCALARS.items()} | {
    STRING: "string", ARRAY: "array"}


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor's info.

    Attributes:
        name: e.g. ``blk.0.attn_q.weight``.
        shape: ggml's ``ne``, the row length first (``token_embd.weight``: ``(hidden, vocab)``).
        type: its ggml type.
        offset: where its data starts, relative to the data section.
        data_start: where its data starts in the file.
        n_bytes: its data, exactly (``type.tensor_bytes(shape)``).
    """

    name: str
    shape: tuple[int, ...]
    type: GGMLType
    offset: int
    data_start: int
    n_bytes: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class GGUFFile:
    """What a GGUF file's header says (the tensor data is not read).

    Attributes:
        path: the file.
        version: the GGUF version (2 or 3).
        metadata: every key-value pair (arrays as tuples, strings decoded).
        value_types: each key's GGUF value type name (``uint32``, ``string``, ``array[string]``).
        tensors: the tensor infos in file order.
        alignment: ``general.alignment`` or 32.
        data_offset: where the data section starts in the file.
        file_size: the file's size in bytes.
    """

    path: str
    version: int
    metadata: Mapping[str, Any]
    value_types: Mapping[str, str]
    tensors: tuple[GGUFTensor, ...]
    alignment: int
    data_offset: int
    file_size: int
    _by_name: Mapping[str, GGUFTensor] = field(default_factory=dict, repr=False, compare=False)

    @property
    def architecture(self) -> str | None:
        arch = self.metadata.get("general.architecture")
        return arch if isinstance(arch, str) else None

    def tensor(self, name: str) -> GGUFTensor | None:
        """The tensor of that name, or None."""
        return self._by_name.get(name)

    @property
    def tensor_data_bytes(self) -> int:
        """Bytes of all tensor data (padding between tensors excluded)."""
        return sum(t.n_bytes for t in self.tensors)


def looks_like_gguf(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a file that starts with the GGUF magic."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == MAGIC
    except OSError:
        return False


class _Cursor:
    """Bounds-checked little-endian reads from a buffer; every failure names the field."""

    def __init__(self, buf: mmap.mmap | bytes, where: str) -> None:
        self.buf = buf
        self.size = len(buf)
        self.pos = 0
        self.where = where

    def fail(self, field_name: str, problem: str) -> InputFileError:
        return InputFileError(f"{self.where}: {field_name}: {problem}")

    def need(self, n: int, field_name: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(field_name, f"truncated: needs {n} bytes at offset {self.pos}, "
                                        f"the file has {self.size}")

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def scalar(self, fmt: str, size: int, field_name: str) -> Any:
        self.need(size, field_name)
        (value,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return value

    def u32(self, field_name: str) -> int:
        value: int = self.scalar("I", 4, field_name)
        return value

    def u64(self, field_name: str) -> int:
        value: int = self.scalar("Q", 8, field_name)
        return value

    def string(self, field_name: str, limit: int = MAX_STRING) -> str:
        length = self.u64(f"{field_name} (length)")
        if length > limit:
            raise self.fail(field_name, f"string of {length} bytes, above the limit of {limit}")
        self.need(length, field_name)
        raw = self.buf[self.pos:self.pos + length]
        self.pos += length
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(field_name, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None

    def value(self, vtype: int, field_name: str, depth: int = 0) -> tuple[Any, str]:
        """A metadata value of type ``vtype`` and its type's name."""
        if vtype in _SCALARS:
            name, fmt, size = _SCALARS[vtype]
            v = self.scalar(fmt, size, field_name)
            if vtype == 7:
                if v not in (0, 1):
                    raise self.fail(field_name, f"bool byte is {v}, not 0 or 1")
                return bool(v), name
            return v, name
        if vtype == STRING:
            return self.string(field_name), "string"
        if vtype == ARRAY:
            if depth >= MAX_ARRAY_DEPTH:
                raise self.fail(field_name, f"arrays nested deeper than {MAX_ARRAY_DEPTH}")
            etype = self.u32(f"{field_name} (array type)")
            count = self.u64(f"{field_name} (array length)")
            if etype not in VALUE_TYPE_NAMES:
                raise self.fail(field_name, f"array of unknown value type {etype}")
            if count > MAX_ARRAY:
                raise self.fail(field_name, f"array of {count} elements, above the limit of {MAX_ARRAY}")
            min_size = _SCALARS[etype][2] if etype in _SCALARS else (8 if etype == STRING else 12)
            if count * min_size > self.remaining:
                raise self.fail(field_name, f"array of {count} elements needs at least "
                                            f"{count * min_size} bytes, {self.remaining} remain")
            ename = VALUE_TYPE_NAMES[etype]
            if etype in _SCALARS and etype != 7:
                _, fmt, size = _SCALARS[etype]
                items = struct.unpack_from(f"<{count}{fmt}", self.buf, self.pos)
                self.pos += count * size
                return items, f"array[{ename}]"
            out = []
            for i in range(count):
                item, inner = self.value(etype, f"{field_name}[{i}]", depth + 1)
                out.append(item)
                if etype == ARRAY:
                    ename = inner
            return tuple(out), f"array[{ename}]"
        raise self.fail(field_name, f"unknown value type {vtype}")


def read_gguf(path: str | os.PathLike[str]) -> GGUFFile:
    """Read the header of a GGUF file (metadata and tensor infos), validating every field.

    Raises InputFileError naming the file and the field for anything malformed.
    """
    where = str(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 4:
                raise InputFileError(f"{where}: header: truncated: {size} bytes, not a GGUF file")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(buf, where, size)
    except OSError as exc:
        raise InputFileError(f"{where}: cannot read: {exc.strerror or exc}") from None


def read_gguf_bytes(data: bytes, where: str = "<bytes>") -> GGUFFile:
    """:func:`read_gguf` of a file's bytes held in memory (``where`` names it in errors)."""
    if len(data) < 4:
        raise InputFileError(f"{where}: header: truncated: {len(data)} bytes, not a GGUF file")
    return _parse(data, where, len(data))


def _parse(buf: mmap.mmap | bytes, where: str, size: int) -> GGUFFile:
    cur = _Cursor(buf, where)
    cur.need(4, "header: magic")
    magic = bytes(buf[0:4])
    if magic != MAGIC:
        raise cur.fail("header: magic", f"{magic!r}, not {MAGIC!r}: not a GGUF file")
    cur.pos = 4
    version = cur.u32("header: version")
    if version not in SUPPORTED_VERSIONS:
        hint = ""
        if version == 1:
            hint = " (GGUFv1 is no longer supported by ggml)"
        elif version & 0xFFFF == 0:
            hint = " (a big-endian file?)"
        raise cur.fail("header: version", f"unsupported version {version}{hint}; supported: "
                                          + ", ".join(map(str, SUPPORTED_VERSIONS)))
    n_tensors = cur.u64("header: tensor_count")
    n_kv = cur.u64("header: metadata_kv_count")
    # a tensor info takes at least 8 (name length) + 4 + 4 + 8 bytes; a kv 8+1 (a key is never
    # empty) + 4 + 1
    if n_tensors > MAX_TENSORS or n_tensors * 24 > cur.remaining:
        raise cur.fail("header: tensor_count", f"{n_tensors} tensors cannot fit in a file of "
                                               f"{size} bytes (limit {MAX_TENSORS})")
    if n_kv > MAX_KV or n_kv * 14 > cur.remaining:
        raise cur.fail("header: metadata_kv_count", f"{n_kv} key-value pairs cannot fit in a "
                                                    f"file of {size} bytes (limit {MAX_KV})")
    metadata: dict[str, Any] = {}
    types: dict[str, str] = {}
    for i in range(n_kv):
        key = cur.string(f"metadata key #{i}", MAX_KEY)
        if not key:
            raise cur.fail(f"metadata key #{i}", "empty key")
        if key in metadata:
            raise cur.fail(f"metadata key #{i}", f"duplicate key {key!r}")
        vtype = cur.u32(f"metadata {key!r} (value type)")
        value, tname = cur.value(vtype, f"metadata {key!r}")
        metadata[key] = value
        types[key] = tname

    alignment = DEFAULT_ALIGNMENT
    if "general.alignment" in metadata:
        if types["general.alignment"] != "uint32":
            raise cur.fail("metadata 'general.alignment'",
                           f"must be uint32, is {types['general.alignment']}")
        alignment = int(metadata["general.alignment"])
        if alignment == 0 or alignment & (alignment - 1):
            raise cur.fail("metadata 'general.alignment'", f"{alignment} is not a power of 2")

    infos: list[tuple[str, tuple[int, ...], GGMLType, int, int]] = []
    seen: set[str] = set()
    for i in range(n_tensors):
        label = f"tensor info #{i}"
        name = cur.string(f"{label} (name)", MAX_STRING)
        if len(name.encode("utf-8")) > MAX_TENSOR_NAME:
            raise cur.fail(f"{label} (name)", f"name of {len(name.encode())} bytes, above ggml's "
                                              f"limit of {MAX_TENSOR_NAME}")
        label = f"tensor {name!r}"
        if name in seen:
            raise cur.fail(label, "duplicate tensor name")
        seen.add(name)
        n_dims = cur.u32(f"{label} (n_dims)")
        if n_dims > MAX_DIMS:
            raise cur.fail(f"{label} (n_dims)", f"{n_dims} dimensions, ggml allows at most {MAX_DIMS}")
        shape = tuple(cur.u64(f"{label} (ne[{j}])") for j in range(n_dims))
        elements = 1
        for j, d in enumerate(shape):
            if d > _INT64_MAX:
                raise cur.fail(f"{label} (ne[{j}])", f"{d} is negative as ggml's int64")
            elements *= d
            if elements > _INT64_MAX:
                raise cur.fail(f"{label} (shape)", f"{shape} holds more than 2^63 elements")
        type_id = cur.u32(f"{label} (type)")
        ttype = BY_ID.get(type_id)
        if ttype is None:
            removed = REMOVED_TYPE_IDS.get(type_id)
            problem = (f"type id {type_id} ({removed}) was removed from GGUF files" if removed
                       else f"unknown ggml type id {type_id}")
            raise cur.fail(f"{label} (type)", problem)
        row = shape[0] if shape else 1
        if row % ttype.block_size:
            raise cur.fail(f"{label} (shape)", f"rows of {row} values are not a whole number of "
                                               f"{ttype.name} blocks of {ttype.block_size}")
        offset = cur.u64(f"{label} (offset)")
        if offset % alignment:
            raise cur.fail(f"{label} (offset)", f"{offset} is not a multiple of the alignment "
                                                f"{alignment}")
        infos.append((name, shape, ttype, offset, ttype.tensor_bytes(shape)))

    data_offset = cur.pos
    if n_tensors:
        data_offset += (alignment - cur.pos % alignment) % alignment
        if data_offset > size:
            raise cur.fail("data section", f"starts at {data_offset}, beyond the end of the file "
                                           f"({size} bytes): truncated")
    tensors = tuple(
        GGUFTensor(name, shape, ttype, offset, data_offset + offset, n_bytes)
        for name, shape, ttype, offset, n_bytes in infos
    )
    end_prev, prev = 0, ""
    for t in sorted(tensors, key=lambda t: t.offset):
        if t.data_start + t.n_bytes > size:
            raise cur.fail(f"tensor {t.name!r} (offset)",
                           f"data [{t.data_start}, {t.data_start + t.n_bytes}) lies beyond the end "
                           f"of the file ({size} bytes): truncated")
        if t.offset < end_prev:
            raise cur.fail(f"tensor {t.name!r} (offset)",
                           f"data at {t.offset} overlaps tensor {prev!r} (ends at {end_prev})")
        end_prev, prev = t.offset + t.n_bytes, t.name
    return GGUFFile(
        path=where,
        version=version,
        metadata=MappingProxyType(metadata),
        value_types=MappingProxyType(types),
        tensors=tensors,
        alignment=alignment,
        data_offset=data_offset,
        file_size=size,
        _by_name=MappingProxyType({t.name: t for t in tensors}),
    )

