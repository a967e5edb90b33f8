"""How weights are stored: a plain dtype or a quantization scheme, and the bytes per parameter.

The bytes of a quantized weight include its scales and zero points, because a decode step reads
them too:

===========  ========================================  ===============================
scheme       storage                                    bytes per parameter
===========  ========================================  ===============================
``fp8``      e4m3, one fp32 scale per 128x128 block     1 + 4 / (128*128)  (DeepSeek-V3)
             (or per tensor: scale negligible)          1
``int8``     int8, per-channel scales (negligible)      1
``int4``     AWQ/GPTQ, fp16 scale + 4-bit zero          0.5 + 2.5 / group_size
             per group of ``group_size`` inputs
``mxfp4``    OCP MX: e2m1 + one e8m0 scale per 32       0.5 + 1 / 32 = 0.53125
===========  ========================================  ===============================

Which weights a scheme covers: ``fp8``/``int8``/``int4`` quantize the linear layers of the
decoder (attention projections, MLPs and experts); ``mxfp4`` (gpt-oss) only the routed experts.
Embeddings, the LM head, norms, routers and the depthwise convolutions of fixed-state layers
(``conv``: a few thousand weights per layer, left unquantized by the FP8 checkpoints) stay in
the model's dtype.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mfubench.errors import ConfigError, MfubenchError
from mfubench.hardware.dtypes import normalize_dtype as hw_normalize_dtype

DTYPE_BYTES: dict[str, int] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}


#: Names ``--dtype`` accepts: a plain storage dtype, a quantization scheme, or a block format
#: of :mod:`mfubench.model.formats` (exact scales; the peak each runs at depends on the device).
WEIGHT_FORMAT_NAMES = ("bf16", "fp16", "fp32", "fp8", "int8", "int4", "mxfp4", "nvfp4",
                       "nvfp4-w4a16", "mxfp8", "fp8-channel", "fp8-block", "w4a8")

Scheme = Literal["fp8", "int8", "int4", "mxfp4", "block"]
WeightKind = Literal["linear", "expert", "embedding", "lm_head", "norm", "router", "conv"]


def normalize_dtype(name: str) -> str:
    """A storage dtype's short name (``bfloat16`` -> ``bf16``, ``float16`` -> ``fp16``), by the
    aliases of :mod:`mfubench.hardware.dtypes`; ConfigError for anything that is not one of
    :data:`DTYPE_BYTES`."""
    try:
        key = hw_normalize_dtype(name)
    except MfubenchError:
        key = ""
    if key not in DTYPE_BYTES:
        raise ConfigError(f"unknown dtype {name!r}; known: {', '.join(sorted(DTYPE_BYTES))}")
    return key


@dataclass(frozen=True)
class WeightFormat:
    """How the weights are stored.

    Attributes:
        dtype: the model's own dtype, used by everything the scheme leaves alone.
        scheme: None for plain ``dtype`` weights, else the quantization scheme.
        group_size: int4: inputs per scale group.
        zero_points: int4: a 4-bit zero point per group beside the fp16 scale (AWQ/GPTQ
            asymmetric); False for symmetric (compressed-tensors ``symmetric: true``).
        block_scales: fp8: one fp32 scale per 128x128 block (else one per tensor).
        experts_only: the scheme covers only routed experts (mxfp4 as in gpt-oss).
        activation_dtype: the dtype the matmuls take their activations in: fp8 for W8A8 fp8,
            int8 for W8A8 int8, else the model dtype (weight-only schemes dequantize).
        format_name: scheme ``block``: the :data:`~mfubench.model.formats.FORMATS` entry
            (``nvfp4``, ``mxfp8``, ``fp8-channel``, ...), whose bytes and matmul dtype apply.
    """

    dtype: str = "bf16"
    scheme: Scheme | None = None
    group_size: int = 128
    block_scales: bool = False
    experts_only: bool = False
    activation_dtype: str = "bf16"
    format_name: str = ""
    zero_points: bool = True

    @property
    def name(self) -> str:
        """A short label: ``bf16``, ``fp8-block``, ``int4-g128``, ``mxfp4-experts``."""
        if self.scheme is None:
            return self.dtype
        if self.scheme == "block":
            return self.format_name + ("-experts" if self.experts_only else "")
        if self.scheme == "fp8":
            return "fp8-block" if self.block_scales else "fp8"
        if self.scheme == "int4":
            return f"int4-g{self.group_size}"
        if self.scheme == "mxfp4":
            return "mxfp4-experts" if self.experts_only else "mxfp4"
        return self.scheme

    def quantized_bytes(self) -> float:
        """Bytes per parameter of a weight the scheme covers (scales and zeros included)."""
        if self.scheme is None:
            return float(DTYPE_BYTES[self.dtype])
        if self.scheme == "block":
            from mfubench.model.formats import block_format

            return block_format(self.format_name).bytes_per_param
        if self.scheme == "fp8":
            return 1.0 + (4.0 / (128 * 128) if self.block_scales else 0.0)
        if self.scheme == "int8":
            return 1.0
        if self.scheme == "int4":  # fp16 scale (+ a 4-bit zero point) per group
            return 0.5 + (2.5 if self.zero_points else 2.0) / self.group_size
        return 0.5 + 1.0 / 32  # mxfp4

    def bytes_per_param(self, kind: WeightKind) -> float:
        """Bytes per parameter of a weight of this kind."""
        covered = kind == "expert" or (kind == "linear" and not self.experts_only)
        if self.scheme is not None and covered:
            return self.quantized_bytes()
        return float(DTYPE_BYTES[self.dtype])


def weight_format(name: str, model_dtype: str = "bf16") -> WeightFormat:
    """The format a ``--dtype`` name stands for (``bf16`` .. ``mxfp4``)."""
    key = name.strip().lower()
    base = normalize_dtype(model_dtype) if model_dtype else "bf16"
    if base not in ("bf16", "fp16", "fp32"):
        base = "bf16"
    if key == "int4":
        return WeightFormat(dtype=base, scheme="int4", activation_dtype=base)
    if key == "mxfp4":
        return WeightFormat(dtype=base, scheme="mxfp4", experts_only=False, activation_dtype=base)
    if key in ("fp8", "int8"):
        return WeightFormat(dtype=base, scheme=key, activation_dtype=key)  # type: ignore[arg-type]
    from mfubench.model.formats import FORMATS

    if key in FORMATS:
        return block_weights(key, base)
    try:
        plain = normalize_dtype(key)
    except ConfigError:
        raise ConfigError(
            f"unknown --dtype {name!r}; choose one of {', '.join(WEIGHT_FORMAT_NAMES)}"
        ) from None
    if plain not in ("bf16", "fp16", "fp32"):
        raise ConfigError(f"unknown --dtype {name!r}; choose one of {', '.join(WEIGHT_FORMAT_NAMES)}")
    return WeightFormat(dtype=plain, activation_dtype=plain)


def block_weights(name: str, base: str, experts_only: bool = False) -> WeightFormat:
    """Weights in the block format ``name`` (:mod:`mfubench.model.formats`) over a model of
    dtype ``base``; the activations are what the format's matmul takes (fp4 for NVFP4 W4A4,
    fp8 for MXFP8/FP8/W4A8, else ``base``)."""
    from mfubench.model.formats import block_format

    fmt = block_format(name)
    activation = fmt.matmul if fmt.matmul in ("fp4", "fp8") else base
    return WeightFormat(dtype=base, scheme="block", format_name=fmt.name, experts_only=experts_only,
                        activation_dtype=activation)


def from_hf_quantization(qc: Mapping[str, Any] | None, model_dtype: str, where: str) -> WeightFormat:
    """The format a config's ``quantization_config`` describes (None: plain ``model_dtype``)."""
    base = model_dtype if model_dtype in ("bf16", "fp16", "fp32") else "bf16"
    if not qc:
        return WeightFormat(dtype=base, activation_dtype=base)
    if not isinstance(qc, Mapping):
        raise ConfigError(f"{where}: quantization_config must be an object")
    method = str(qc.get("quant_method", "")).lower()
    if method == "fp8":
        block = qc.get("weight_block_size")
        return WeightFormat(
            dtype=base, scheme="fp8", block_scales=bool(block), activation_dtype="fp8"
        )
    if method in ("awq", "gptq"):
        bits = int(qc.get("bits", qc.get("w_bit", 4)))
        group = int(qc.get("group_size", qc.get("q_group_size", 128)))
        if bits == 4:
            return WeightFormat(dtype=base, scheme="int4", group_size=group if group > 0 else 128,
                                activation_dtype=base)
        if bits == 8:
            return WeightFormat(dtype=base, scheme="int8", activation_dtype=base)
        raise ConfigError(f"{where}: quantization_config.bits {bits} is not supported (4 or 8)")
    if method == "mxfp4":
        not_converted = [str(m) for m in qc.get("modules_to_not_convert") or []]
        experts_only = any("self_attn" in m for m in not_converted) or not not_converted
        return WeightFormat(dtype=base, scheme="mxfp4", experts_only=experts_only,
                            activation_dtype=base)
    if method in ("modelopt", "modelopt_fp4") or isinstance(qc.get("quantization"), Mapping):
        from mfubench.model.quant_configs import from_modelopt

        return from_modelopt(qc, base, where)
    if method == "compressed-tensors":
        from mfubench.model.quant_configs import from_compressed_tensors

        return from_compressed_tensors(qc, base, where)
    raise ConfigError(
        f"{where}: quantization_config.quant_method {method!r} is not supported "
        "(supported: fp8, awq, gptq, mxfp4, modelopt, compressed-tensors); pass --dtype to say "
        "how the weights are stored"
    )
