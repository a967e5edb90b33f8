"""Block-scaled and low-precision weight formats: their exact bytes and the peak they run at.

A format stores ``bits`` per value and one scale per block of values (along a row's inputs, or
a 2-D tile), and sometimes per-tensor scalars. For a ``rows x cols`` weight (``cols`` the
inputs)::

    bytes = rows cols bits / 8
          + scale_count(rows, cols) (scale_bytes + zero_bytes)
          + tensor_scalars
    scale_count = rows ceil(cols / block)                 (1-D blocks along the inputs)
                = ceil(rows / block_rows) ceil(cols / block)   (2-D tiles)
                = rows                                    (per channel: one per output row)
                = 0                                       (per tensor)

and per parameter, for whole blocks, ``bits/8 + (scale_bytes + zero_bytes) / (block block_rows)``.
The per-tensor scalars (NVFP4's fp32 ``weight_scale_2`` and ``input_scale``, FP8's fp32
``weight_scale`` and ``input_scale``) are a few bytes per matrix and are left out of a model's
per-parameter figure (below 1e-6 of any real weight); :func:`tensor_bytes` counts them.

==============  ====  =====================  ========================  =================  ========
format          bits  scale per block        tensor scalars            matmul at          source
==============  ====  =====================  ========================  =================  ========
``nvfp4``       4     E4M3 (1 B) per 16      fp32 x2 (weight, input)   fp4 (W4A4)         [1][2]
``nvfp4-w4a16`` 4     E4M3 (1 B) per 16      fp32 (weight)             activations' dtype [1]
``mxfp4``       4     E8M0 (1 B) per 32      -                         activations' dtype [3][4]
``mxfp8``       8     E8M0 (1 B) per 32      -                         fp8 (W8A8)         [1][3]
``fp8``         8     -                      fp32 x2 (weight, input)   fp8                [1]
``fp8-channel`` 8     fp32 per output row    -                         fp8                [1][5]
``fp8-block``   8     fp32 per 128x128 tile  -                         fp8                [1][6]
``w4a8``        4     bf16 per 128 inputs    -                         fp8                [5]
==============  ====  =====================  ========================  =================  ========

Two variants are how compressed-tensors 0.17.0 (the producer, ``compressors``) writes them:
``fp8-block-bf16`` and ``fp8-channel-bf16`` keep the 128x128 and per-channel scales in the
model dtype (2 B; DeepSeek's and ModelOpt's checkpoints keep fp32), and ``w4a8-int8`` is its ``int-quantized`` format, one int4 value per int8 byte
(``pack-quantized`` packs eight per int32: ``w4a8``). Its FP8 per-tensor scalars are in the
model dtype (2 B each, not fp32): per-tensor scalars only, outside the per-parameter figure.

**Where the hardware lacks the math.** The block-scaled MMA of NVFP4 and the MX formats (scales
applied inside the tensor core) is Blackwell's and CDNA 4's (devices with an ``fp4`` peak in
the catalog); elsewhere the weights are dequantized and the matmul runs in the activations'
dtype (vLLM's Marlin NVFP4 and MXFP4 kernels on Hopper and Ampere are W4A16): ``nvfp4`` and
``mxfp8`` on an H100 run at its bf16 peak, :func:`matmul_dtype` says so. FP8 needs an ``fp8``
peak (Hopper, Ada, Blackwell, CDNA 3+); without it FP8 weights run as W8A16.

Sources (read 2026-12-01):
[1] vLLM 0.32.0 ``vllm/model_executor/layers/quantization/modelopt.py`` (``LINEAR_ALGOS``: FP8,
    FP8_PER_CHANNEL_PER_TOKEN, FP8_PB_WO 128x128, NVFP4 W4A4, W4A16_NVFP4, MXFP8 "e4m3 weights
    with per-32-block e8m0 scales"; the NVFP4 ``weight_scale_2``/``input_scale`` fp32 scalars).
[2] NVIDIA, "Introducing NVFP4 for efficient and accurate low-precision inference" (E2M1 values,
    one FP8 E4M3 scale per 16 values, an FP32 per-tensor scale),
    https://developer.nvidia.com/blog/introducing-nvfp4-for-efficient-and-accurate-low-precision-inference/
[3] OCP Microscaling Formats (MX) Specification v1.0 (blocks of 32, E8M0 shared scale;
    MXFP4 = E2M1 elements, MXFP8 = E4M3/E5M2 elements),
    https://www.opencompute.org/documents/ocp-microscaling-formats-mx-v1-0-spec-final-pdf
[4] gpt-oss checkpoints (``quant_method: mxfp4``, experts only; ``*_blocks`` uint8 of 2 values,
    ``*_scales`` uint8 E8M0 per 32): openai/gpt-oss-120b ``config.json``.
[5] vLLM 0.32.0 ``compressed_tensors/compressed_tensors.py`` (``_is_nvfp4_format``: 4-bit float,
    ``tensor_group``, group 16; ``_is_mxfp4``/``_is_mxfp8``: group 32; ``_is_fp8_w4a8``: 4-bit
    int weights by group with 8-bit float per-token activations).
[6] DeepSeek-V3 ``config.json`` ``quantization_config.weight_block_size [128, 128]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mfubench.errors import MfubenchError

if TYPE_CHECKING:
    from mfubench.model.quant import WeightFormat

ScaleGrid = Literal["block", "tile", "channel", "tensor"]


@dataclass(frozen=True)
class BlockFormat:
    """One storage format (module doc).

    Attributes:
        name: the ``--dtype`` name.
        bits: bits per value.
        grid: where the scales sit: ``block`` (1-D, ``block`` inputs of a row), ``tile``
            (``block_rows x block``), ``channel`` (one per output row), ``tensor`` (none).
        block / block_rows: the block's width (inputs) and height (rows, tiles only).
        scale_bytes / zero_bytes: bytes of one block's scale and zero point.
        tensor_scalars: bytes of per-tensor scalars, per matrix.
        matmul: the dtype of the multiply where the hardware has the math (``fp4``, ``fp8``,
            or ``activation``: weight-only, the activations' dtype).
        needs: the catalog peak a device must have for ``matmul`` (``fp4``: block-scaled MMA).
    """

    name: str
    bits: int
    grid: ScaleGrid
    block: int = 1
    block_rows: int = 1
    scale_bytes: float = 0.0
    zero_bytes: float = 0.0
    tensor_scalars: int = 0
    matmul: str = "activation"
    needs: str = ""

    def scale_count(self, rows: int, cols: int) -> int:
        if self.grid == "block":
            return rows * -(-cols // self.block)
        if self.grid == "tile":
            return -(-rows // self.block_rows) * -(-cols // self.block)
        if self.grid == "channel":
            return rows
        return 0

    def tensor_bytes(self, rows: int, cols: int) -> float:
        """Exact bytes of one ``rows x cols`` weight in this format (module doc)."""
        if rows < 1 or cols < 1:
            raise MfubenchError(f"a weight needs positive rows and cols, got {rows} x {cols}")
        return (rows * cols * self.bits / 8
                + self.scale_count(rows, cols) * (self.scale_bytes + self.zero_bytes)
                + self.tensor_scalars)

    @property
    def bytes_per_param(self) -> float:
        """Bytes per parameter of whole blocks, per-tensor scalars left out (module doc);
        per-channel scales (one fp32 per row, ``4 / cols``) are left out as for int8."""
        if self.grid in ("block", "tile"):
            return self.bits / 8 + (self.scale_bytes + self.zero_bytes) / (self.block * self.block_rows)
        return self.bits / 8


FORMATS: dict[str, BlockFormat] = {f.name: f for f in (
    BlockFormat("nvfp4", 4, "block", 16, scale_bytes=1, tensor_scalars=8, matmul="fp4", needs="fp4"),
    BlockFormat("nvfp4-w4a16", 4, "block", 16, scale_bytes=1, tensor_scalars=4),
    BlockFormat("mxfp4", 4, "block", 32, scale_bytes=1),
    BlockFormat("mxfp8", 8, "block", 32, scale_bytes=1, matmul="fp8", needs="fp4"),
    BlockFormat("fp8", 8, "tensor", tensor_scalars=8, matmul="fp8", needs="fp8"),
    BlockFormat("fp8-channel", 8, "channel", scale_bytes=4, matmul="fp8", needs="fp8"),
    BlockFormat("fp8-channel-bf16", 8, "channel", scale_bytes=2, matmul="fp8", needs="fp8"),
    BlockFormat("fp8-block", 8, "tile", 128, 128, scale_bytes=4, matmul="fp8", needs="fp8"),
    BlockFormat("fp8-block-bf16", 8, "tile", 128, 128, scale_bytes=2, matmul="fp8", needs="fp8"),
    BlockFormat("w4a8", 4, "block", 128, scale_bytes=2, matmul="fp8", needs="fp8"),
    BlockFormat("w4a8-int8", 8, "block", 128, scale_bytes=2, matmul="fp8", needs="fp8"),
)}

#: KV-cache element formats beyond the plain dtypes: bytes per element, scales included.
#: ``nvfp4`` KV: E2M1 values with an E4M3 scale per 16 (TensorRT-LLM's NVFP4 KV cache, [2]).
KV_FORMAT_BYTES: dict[str, float] = {"nvfp4": 0.5 + 1 / 16, "fp4": 0.5 + 1 / 16}


def block_format(name: str) -> BlockFormat:
    """The format ``name`` names; an error listing them otherwise."""
    key = name.strip().lower()
    if key not in FORMATS:
        raise MfubenchError(f"unknown weight format {name!r}; known: {', '.join(FORMATS)}")
    return FORMATS[key]


def matmul_dtype(w: WeightFormat, peaks: Mapping[str, float]) -> tuple[str, str | None]:
    """The dtype whose peak the model's matmuls run at on a device with ``peaks``, and a note
    where the device lacks the format's math (module doc). The schemes that existed before
    the block formats keep their rule (:func:`mfubench.hardware.dtypes.compute_dtype`)."""
    from mfubench.hardware.dtypes import compute_dtype

    fmt = FORMATS.get(w.format_name) if w.format_name else None
    if fmt is None:
        weight = {"fp8": "fp8", "int8": "int8", "int4": "int4", "mxfp4": "fp4"}.get(
            w.scheme or "", w.dtype)
        if w.experts_only:
            weight = w.dtype  # most matmuls (attention, router, LM head) stay unquantized
        return compute_dtype(weight, w.activation_dtype), None
    if w.experts_only or fmt.matmul == "activation":
        return w.dtype, None
    if fmt.needs and fmt.needs not in peaks:
        return w.dtype, (f"{fmt.name} weights on a device without {fmt.needs} block-scaled math "
                         f"run dequantized, at the {w.dtype} peak (W{fmt.bits}A16)")
    return fmt.matmul, None
