"""The ggml tensor types: id, block size (values per block) and bytes per block.

A GGUF tensor of type ``T`` stores its values in blocks of ``T.block_size`` values, each
``T.type_size`` bytes (scales included), so a tensor of ``n`` values takes exactly
``n / block_size * type_size`` bytes, and ``n`` must be a whole number of blocks along each row
(ggml refuses a row of ``ne[0]`` values that is not a multiple of the block size). For example a
``Q4_K`` super-block holds 256 values in 144 bytes: two fp16 super-scales, 12 bytes of packed
6-bit sub-block scales and mins, and 128 bytes of 4-bit quants: 4.5 bits per value.

Read from ggml-org/ggml at commit d99724f2b141fed9e1a9f402213506c081433465 (2026-08-21):

- ``include/ggml.h``: ``enum ggml_type`` (the ids, including the removed ones: 4, 5, 31-33, 36-38);
- ``src/ggml-common.h``: the ``block_*`` structs and the ``static_assert`` on each one's size,
  which is where the bytes per block below come from (the formula is in each row's source);
- ``src/ggml.c``: ``type_traits[]`` (``blck_size`` and ``type_size`` of every type).

The same files live under ``ggml/`` in ggml-org/llama.cpp, which syncs them from ggml. The table is
checked in the tests against the ``gguf`` package's own ``GGML_QUANT_SIZES`` (an independent copy
of the same numbers, maintained in llama.cpp's ``gguf-py``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Where the table was read.
GGML_SOURCE = "ggml-org/ggml@d99724f2b141fed9e1a9f402213506c081433465"

QK_K = 256  # values per K-quant and IQ super-block (ggml-common.h)
_HALF = 2  # sizeof(ggml_half): fp16


@dataclass(frozen=True)
class GGMLType:
    """One ggml tensor type.

    Attributes:
        id: the ``enum ggml_type`` value stored in a GGUF tensor info.
        name: the name in upper case as GGUF tools print it (``Q4_K``, ``IQ4_XS``, ``BF16``).
        block_size: values per block (1 for plain types).
        type_size: bytes per block, scales and mins included.
        quantized: ggml's ``is_quantized``.
        source: the struct or C type in ggml the size is read from, with its size formula.
    """

    id: int
    name: str
    block_size: int
    type_size: int
    quantized: bool
    source: str

    @property
    def bits_per_value(self) -> float:
        """``8 * type_size / block_size``: 4.5 for Q4_K, 16 for F16."""
        return 8.0 * self.type_size / self.block_size

    def row_bytes(self, values_per_row: int) -> int:
        """Bytes of one row of ``values_per_row`` values (ggml's ``ggml_row_size``).

        Raises ValueError when the row is not a whole number of blocks.
        """
        if values_per_row < 0:
            raise ValueError(f"a row of {values_per_row} values")
        blocks, rest = divmod(values_per_row, self.block_size)
        if rest:
            raise ValueError(
                f"{self.name} stores {self.block_size} values per block: a row of "
                f"{values_per_row} values is not a whole number of blocks"
            )
        return blocks * self.type_size

    def tensor_bytes(self, shape: tuple[int, ...] | list[int]) -> int:
        """Bytes of a tensor of ggml shape ``shape`` (``ne``: the row length first), as
        ``ggml_nbytes``: ``row_bytes(ne[0]) * ne[1] * ne[2] * ...``."""
        if not shape:
            return self.row_bytes(1)  # a 0-dimensional tensor holds one value
        rows = 1
        for n in shape[1:]:
            if n < 0:
                raise ValueError(f"negative dimension in {tuple(shape)}")
            rows *= n
        return self.row_bytes(shape[0]) * rows


def _q(id_: int, name: str, block: int, size: int, source: str) -> GGMLType:
    return GGMLType(id_, name, block, size, True, source)


def _plain(id_: int, name: str, size: int, source: str) -> GGMLType:
    return GGMLType(id_, name, 1, size, False, source)


#: Every ggml type a GGUF file may hold, by id (ggml.h ``enum ggml_type``; sizes from
#: ggml-common.h ``static_assert(sizeof(block_*) == ...)``).
GGML_TYPES: tuple[GGMLType, ...] = (
    _plain(0, "F32", 4, "float"),
    _plain(1, "F16", _HALF, "ggml_fp16_t"),
    _q(2, "Q4_0", 32, _HALF + 32 // 2, "block_q4_0: fp16 d + QK4_0/2"),
    _q(3, "Q4_1", 32, 2 * _HALF + 32 // 2, "block_q4_1: 2*fp16 (d, m) + QK4_1/2"),
    _q(6, "Q5_0", 32, _HALF + 4 + 32 // 2, "block_q5_0: fp16 d + uint32 qh + QK5_0/2"),
    _q(7, "Q5_1", 32, 2 * _HALF + 4 + 32 // 2, "block_q5_1: 2*fp16 + uint32 qh + QK5_1/2"),
    _q(8, "Q8_0", 32, _HALF + 32, "block_q8_0: fp16 d + QK8_0"),
    _q(9, "Q8_1", 32, 2 * _HALF + 32, "block_q8_1: 2*fp16 (d, s) + QK8_1"),
    _q(10, "Q2_K", QK_K, 2 * _HALF + QK_K // 16 + QK_K // 4,
       "block_q2_K: 2*fp16 + QK_K/16 + QK_K/4"),
    _q(11, "Q3_K", QK_K, _HALF + QK_K // 4 + QK_K // 8 + 12,
       "block_q3_K: fp16 + QK_K/4 + QK_K/8 + 12"),
    _q(12, "Q4_K", QK_K, 2 * _HALF + 12 + QK_K // 2,
       "block_q4_K: 2*fp16 + K_SCALE_SIZE (12) + QK_K/2"),
    _q(13, "Q5_K", QK_K, 2 * _HALF + 12 + QK_K // 2 + QK_K // 8,
       "block_q5_K: 2*fp16 + K_SCALE_SIZE (12) + QK_K/2 + QK_K/8"),
    _q(14, "Q6_K", QK_K, _HALF + QK_K // 16 + 3 * QK_K // 4,
       "block_q6_K: fp16 + QK_K/16 + 3*QK_K/4"),
    _q(15, "Q8_K", QK_K, 4 + QK_K + QK_K // 16 * 2,
       "block_q8_K: float + QK_K + QK_K/16*sizeof(int16_t)"),
    _q(16, "IQ2_XXS", QK_K, _HALF + QK_K // 8 * 2, "block_iq2_xxs: fp16 + QK_K/8*sizeof(uint16_t)"),
    _q(17, "IQ2_XS", QK_K, _HALF + QK_K // 8 * 2 + QK_K // 32,
       "block_iq2_xs: fp16 + QK_K/8*sizeof(uint16_t) + QK_K/32"),
    _q(18, "IQ3_XXS", QK_K, _HALF + 3 * (QK_K // 8), "block_iq3_xxs: fp16 + 3*(QK_K/8)"),
    _q(19, "IQ1_S", QK_K, _HALF + QK_K // 8 + QK_K // 16, "block_iq1_s: fp16 + QK_K/8 + QK_K/16"),
    _q(20, "IQ4_NL", 32, _HALF + 32 // 2, "block_iq4_nl: fp16 + QK4_NL/2"),
    _q(21, "IQ3_S", QK_K, _HALF + 13 * (QK_K // 32) + QK_K // 64,
       "block_iq3_s: fp16 + 13*(QK_K/32) + IQ3S_N_SCALE (QK_K/64)"),
    _q(22, "IQ2_S", QK_K, _HALF + QK_K // 4 + QK_K // 16, "block_iq2_s: fp16 + QK_K/4 + QK_K/16"),
    _q(23, "IQ4_XS", QK_K, _HALF + 2 + QK_K // 64 + QK_K // 2,
       "block_iq4_xs: fp16 + uint16 scales_h + QK_K/64 + QK_K/2"),
    _plain(24, "I8", 1, "int8_t"),
    _plain(25, "I16", 2, "int16_t"),
    _plain(26, "I32", 4, "int32_t"),
    _plain(27, "I64", 8, "int64_t"),
    _plain(28, "F64", 8, "double"),
    _q(29, "IQ1_M", QK_K, QK_K // 8 + QK_K // 16 + QK_K // 32,
       "block_iq1_m: QK_K/8 + QK_K/16 + QK_K/32 (the fp16 scale is packed in the scales)"),
    _plain(30, "BF16", 2, "ggml_bf16_t"),
    _q(34, "TQ1_0", QK_K, _HALF + QK_K // 64 + (QK_K - 4 * QK_K // 64) // 5,
       "block_tq1_0: fp16 + QK_K/64 + (QK_K - 4*QK_K/64)/5"),
    _q(35, "TQ2_0", QK_K, _HALF + QK_K // 4, "block_tq2_0: fp16 + QK_K/4"),
    _q(39, "MXFP4", 32, 1 + 32 // 2, "block_mxfp4: uint8 e (E8M0) + QK_MXFP4/2"),
    _q(40, "NVFP4", 64, 64 // 16 + 64 // 2,
       "block_nvfp4: QK_NVFP4/QK_NVFP4_SUB UE4M3 scales + QK_NVFP4/2"),
    _q(41, "Q1_0", 128, _HALF + 128 // 8, "block_q1_0: fp16 + QK1_0/8"),
    _q(42, "Q2_0", 64, _HALF + 64 // 4, "block_q2_0: fp16 + QK2_0/4"),
)

#: Ids ggml once used and no longer reads from GGUF files (ggml.h comments), with their names.
REMOVED_TYPE_IDS: dict[int, str] = {
    4: "Q4_2", 5: "Q4_3", 31: "Q4_0_4_4", 32: "Q4_0_4_8", 33: "Q4_0_8_8",
    36: "IQ4_NL_4_4", 37: "IQ4_NL_4_8", 38: "IQ4_NL_8_8",
}

BY_ID: dict[int, GGMLType] = {t.id: t for t in GGML_TYPES}
BY_NAME: dict[str, GGMLType] = {t.name: t for t in GGML_TYPES}


def ggml_type(key: int | str) -> GGMLType:
    """The type of an id (``12``) or a name (``"Q4_K"``, ``"q4_k"``, ``"bf16"``).

    Raises KeyError naming what is known when there is no such type.
    """
    if isinstance(key, int):
        if key in BY_ID:
            return BY_ID[key]
        if key in REMOVED_TYPE_IDS:
            raise KeyError(f"ggml type id {key} ({REMOVED_TYPE_IDS[key]}) was removed from GGUF files")
        raise KeyError(f"unknown ggml type id {key} (known: {', '.join(str(i) for i in BY_ID)})")
    found = BY_NAME.get(key.strip().upper())
    if found is None:
        raise KeyError(f"unknown ggml type {key!r} (known: {', '.join(BY_NAME)})")
    return found


def tensor_bytes(type_: GGMLType | int | str, shape: tuple[int, ...] | list[int]) -> int:
    """Bytes a tensor of ``type_`` and ggml shape ``shape`` (row length first) takes."""
    t = type_ if isinstance(type_, GGMLType) else ggml_type(type_)
    return t.tensor_bytes(shape)
