"""The dtype rule: which peak FLOP/s a matmul is measured against.

A GEMM runs at the rate of the dtype its multiply units take, which is set by both operands:

* weight-only quantization (W4A16, W8A16, fp8 weights with bf16 activations, ...) dequantizes the
  weights to the activation dtype, so the matmul runs at the activation dtype's peak
  (``compute_dtype("int4", "bf16") == "bf16"``); the quantized weights only change the *bytes*;
* both operands quantized to the same type (fp8 x fp8, int8 x int8, fp4 x fp4) run at that
  type's peak;
* mixed low-precision operands run in the wider one (int4 weights x int8 activations -> int8,
  fp4 weights x fp8 activations -> fp8), because the narrower side is widened to meet it;
* low-precision activations with high-precision weights run in the weights' dtype.

A device that has no figure for the resulting dtype yields no MFU (``None``), never the figure of
another dtype.
"""

from __future__ import annotations

from collections.abc import Mapping

from mfubench.errors import MfubenchError

#: Dtypes a catalog peak can be given for (the inputs of a tensor-core / matrix-core GEMM).
COMPUTE_DTYPES: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp16_acc16", "fp8", "int8", "fp4")

#: fp16 tensor-core math that accumulates in fp16 rather than fp32. Its own peak because GeForce
#: cards run it at twice their fp32-accumulate rate (the ``fp16`` figure); workstation and data
#: centre cards run both at one rate. cuBLAS's ``CUBLAS_COMPUTE_16F``, which llama.cpp's CUDA
#: backend uses for its fp16 GEMMs, runs at this peak. A device without the figure falls back to
#: ``fp16`` only where a caller asks for it (:func:`acc16_or_fp16`).
FP16_ACC16 = "fp16_acc16"

#: Dtypes weights can be stored in but no GEMM takes as an operand: widened before the multiply.
WEIGHT_ONLY_DTYPES: tuple[str, ...] = ("int4",)

#: Bits per element (storage width of one operand element, scales excluded).
DTYPE_BITS: dict[str, int] = {
    "fp32": 32, "tf32": 32, "bf16": 16, "fp16": 16, "fp16_acc16": 16, "fp8": 8, "int8": 8, "fp4": 4, "int4": 4,
}

_ALIASES: dict[str, str] = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32", "f32": "fp32",
    "tf32": "tf32", "tensorfloat32": "tf32", "tensorfloat-32": "tf32",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", "f16": "fp16",
    "fp16_acc16": "fp16_acc16", "fp16-acc16": "fp16_acc16", "fp16acc16": "fp16_acc16",
    "fp8": "fp8", "float8": "fp8", "e4m3": "fp8", "e5m2": "fp8", "fp8_e4m3": "fp8",
    "fp8_e5m2": "fp8", "float8_e4m3fn": "fp8", "float8_e4m3fnuz": "fp8", "float8_e5m2": "fp8",
    "float8_e5m2fnuz": "fp8", "mxfp8": "fp8",
    "int8": "int8", "i8": "int8", "uint8": "int8",
    "fp4": "fp4", "float4": "fp4", "e2m1": "fp4", "mxfp4": "fp4", "nvfp4": "fp4",
    "float4_e2m1fn_x2": "fp4",
    "int4": "int4", "uint4": "int4", "i4": "int4", "nf4": "int4",
}


def normalize_dtype(name: str) -> str:
    """``bfloat16`` -> ``bf16``, ``torch.float16`` -> ``fp16``, ``nvfp4`` -> ``fp4``, ...

    Returns one of :data:`COMPUTE_DTYPES` or ``int4``; raises :class:`MfubenchError` otherwise.
    """
    key = str(name).strip().lower().removeprefix("torch.")
    if key not in _ALIASES:
        known = ", ".join(COMPUTE_DTYPES + WEIGHT_ONLY_DTYPES)
        raise MfubenchError(f"unknown dtype {name!r}; known: {known} (and aliases like bfloat16)")
    return _ALIASES[key]


def normalize_compute_dtype(name: str) -> str:
    """Like :func:`normalize_dtype`, but only dtypes a GEMM can take (so not ``int4``)."""
    dtype = normalize_dtype(name)
    if dtype not in COMPUTE_DTYPES:
        raise MfubenchError(
            f"{name!r} is a weight storage format, not a matmul dtype; "
            f"matmul dtypes: {', '.join(COMPUTE_DTYPES)}"
        )
    return dtype


def compute_dtype(weight_dtype: str, activation_dtype: str = "bf16") -> str:
    """The dtype whose peak a matmul of these operands is measured against (rule in the module doc).

    >>> compute_dtype("fp8", "fp8"), compute_dtype("int4", "bf16"), compute_dtype("int8", "fp16")
    ('fp8', 'bf16', 'fp16')
    >>> compute_dtype("int4", "int8"), compute_dtype("fp4", "fp8"), compute_dtype("bf16", "fp8")
    ('int8', 'fp8', 'bf16')
    """
    weight = normalize_dtype(weight_dtype)
    activation = normalize_compute_dtype(activation_dtype)
    if DTYPE_BITS[activation] >= 16:
        # High-precision activations: narrower weights are dequantized to them, wider ones are
        # cast down (autocast); either way the multiply runs in the activation dtype.
        return activation
    if weight == activation:
        return activation
    if DTYPE_BITS[weight] >= 16:
        # fp8/int8/fp4 activations against unquantized weights: the multiply runs in the weights'.
        return "fp32" if weight == "tf32" else weight
    if DTYPE_BITS[weight] > DTYPE_BITS[activation]:
        # fp8 weights x fp4 activations -> fp8: the activations are widened.
        return weight
    # int4 x int8 -> int8, fp4 x fp8 -> fp8: the narrow weights are widened; same width but
    # another family (int8 weights x fp8 activations): the weights are converted.
    return activation


def acc16_or_fp16(peaks: Mapping[str, float]) -> str:
    """``fp16_acc16`` where ``peaks`` (a dtype -> FLOP/s mapping) has that figure, else ``fp16``:
    the peak fp16 GEMMs that accumulate in fp16 run at (a device without a separate figure runs
    both accumulations at its ``fp16`` rate: every non-GeForce tensor core NVIDIA documents)."""
    return FP16_ACC16 if FP16_ACC16 in peaks else "fp16"
