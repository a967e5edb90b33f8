"""The ``quantization_config`` of ModelOpt and compressed-tensors checkpoints, as a WeightFormat.

Read as vLLM 0.32.0 reads them (``vllm/model_executor/layers/quantization/modelopt.py``,
``.../compressed_tensors/compressed_tensors.py``):

**ModelOpt** (NVIDIA TensorRT Model Optimizer), either the legacy ``hf_quant_config.json``
shape ``{"quantization": {"quant_algo", "kv_cache_quant_algo", "group_size",
"exclude_modules"}}`` or ``config.json``'s ``{"quant_method": "modelopt", "quant_algo",
"group_size", "kv_cache_scheme", "ignore"}``:

==============================  ==================
``quant_algo``                  format
==============================  ==================
``FP8``                         ``fp8`` (per tensor, W8A8)
``FP8_PER_CHANNEL_PER_TOKEN``   ``fp8-channel``
``FP8_PB_WO``, ``FP8_BLOCK_SCALES``  ``fp8-block`` (128 x 128)
``NVFP4`` (group 16)            ``nvfp4`` (W4A4)
``W4A16_NVFP4``                 ``nvfp4-w4a16``
``MXFP8``                       ``mxfp8``
==============================  ==================

**compressed-tensors** (``quant_method: compressed-tensors``): the scheme of its
``config_groups`` targeting linear layers (every group must agree), by ``weights`` and
``input_activations``:

=====================================================  ===================================
weights                                                format
=====================================================  ===================================
float 4, ``tensor_group``, group 16 (+ float 4 acts)    ``nvfp4`` (else ``nvfp4-w4a16``)
float 4, ``group`` 32                                   ``mxfp4``
float 8, ``group`` 32                                   ``mxfp8``
float 8, ``tensor`` / ``channel`` / ``block`` 128x128   ``fp8`` / ``fp8-channel-bf16`` /
                                                        ``fp8-block-bf16`` (no ``-bf16`` with
                                                        fp32 ``scale_dtype``)
int 4, ``group`` 128 + float 8 activations              ``w4a8`` (``w4a8-int8`` for the
                                                        ``int-quantized`` storage ``format``)
int 4, ``group`` g (``symmetric``)                      ``int4`` (fp16 scale per g; a zero
                                                        point too when not symmetric; int8
                                                        activations: W4A8 at the int8 peak)
int 8 + int 8 activations                               ``int8``
=====================================================  ===================================

Modules left out (``exclude_modules``/``ignore``): the LM head and embeddings are never
quantized here; where the attention projections are left out (``*self_attn*``) only the MLPs'
and experts' weights count as quantized (``experts_only``: dense MLPs then count unquantized too,
the one approximation). The KV-cache scheme of a checkpoint is not applied: vLLM's
``--kv-cache-dtype auto`` keeps the model dtype; pass ``--kv-dtype fp8`` as the engine's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mfubench.errors import ConfigError
from mfubench.model.quant import WeightFormat, block_weights

_MODELOPT: dict[str, str] = {
    "FP8": "fp8", "FP8_PER_CHANNEL_PER_TOKEN": "fp8-channel", "FP8_PB_WO": "fp8-block",
    "FP8_BLOCK_SCALES": "fp8-block", "NVFP4": "nvfp4", "W4A16_NVFP4": "nvfp4-w4a16",
    "MXFP8": "mxfp8",
}


def _attention_excluded(modules: Any) -> bool:
    return isinstance(modules, list) and any("attn" in str(m) for m in modules)


def _named(name: str, base: str, experts_only: bool) -> WeightFormat:
    if name == "fp8":  # the scheme --dtype fp8 names: W8A8 per tensor
        return WeightFormat(dtype=base, scheme="fp8", experts_only=experts_only,
                            activation_dtype="fp8")
    return block_weights(name, base, experts_only)


def from_modelopt(qc: Mapping[str, Any], base: str, where: str) -> WeightFormat:
    """A ModelOpt ``quantization_config`` (or ``hf_quant_config.json``) as a format."""
    inner = qc.get("quantization")
    cfg: Mapping[str, Any] = inner if isinstance(inner, Mapping) else qc
    field = "quantization.quant_algo" if isinstance(inner, Mapping) else "quant_algo"
    algo = str(cfg.get("quant_algo") or "").upper()
    if not algo:
        raise ConfigError(f"{where}: a ModelOpt quantization_config needs {field}")
    if algo not in _MODELOPT:
        raise ConfigError(f"{where}: {field} {algo!r} is not supported (supported: "
                          f"{', '.join(_MODELOPT)}; MIXED_PRECISION is per layer)")
    name = _MODELOPT[algo]
    group = cfg.get("group_size")
    if name.startswith("nvfp4") and group not in (None, 16):
        raise ConfigError(f"{where}: NVFP4 scales blocks of 16 values; group_size {group!r}")
    excluded = cfg.get("exclude_modules", cfg.get("ignore"))
    return _named(name, base, _attention_excluded(excluded))


def _scheme_of(weights: Mapping[str, Any], acts: Mapping[str, Any] | None, where: str,
               storage: str = "") -> WeightFormat | str:
    bits, kind = weights.get("num_bits"), str(weights.get("type", "int")).lower()
    strategy = str(weights.get("strategy", "")).lower()
    group = weights.get("group_size")
    act_bits = acts.get("num_bits") if acts else None
    act_kind = str(acts.get("type", "int")).lower() if acts else None
    if kind == "float" and bits == 4 and strategy == "tensor_group" and group == 16:
        return "nvfp4" if act_bits == 4 and act_kind == "float" else "nvfp4-w4a16"
    if kind == "float" and bits == 4 and strategy == "group" and group == 32:
        return "mxfp4"
    if kind == "float" and bits == 8 and strategy == "group" and group == 32:
        return "mxfp8"
    if kind == "float" and bits == 8 and strategy in ("tensor", "channel", "block"):
        if strategy == "block" and list(weights.get("block_structure") or []) != [128, 128]:
            raise ConfigError(f"{where}: FP8 block_structure {weights.get('block_structure')!r} "
                              "is not supported (128 x 128)")
        if strategy == "tensor":
            return "fp8"
        name = "fp8-block" if strategy == "block" else "fp8-channel"
        # compressed-tensors keeps scales in the model dtype unless the config says fp32
        return name if "float32" in str(weights.get("scale_dtype")) else name + "-bf16"
    if kind == "int" and bits == 4 and strategy in ("group", "channel"):
        if act_bits == 8 and act_kind == "float":
            if group != 128:
                raise ConfigError(f"{where}: W4A8 is counted for groups of 128, got {group!r}")
            return "w4a8-int8" if storage == "int-quantized" else "w4a8"
        g = int(group) if strategy == "group" and isinstance(group, int) and group > 0 else 128
        return WeightFormat(scheme="int4", group_size=g,  # W4A16, or W4A8 with int8 activations
                            zero_points=not weights.get("symmetric", True),
                            activation_dtype="int8" if act_bits == 8 and act_kind == "int" else "bf16")
    if kind == "int" and bits == 8 and act_bits == 8:
        return WeightFormat(scheme="int8", activation_dtype="int8")
    raise ConfigError(f"{where}: compressed-tensors weights {dict(weights)!r} with activations "
                      f"{dict(acts) if acts else None!r} are not a scheme mfubench counts")


def from_compressed_tensors(qc: Mapping[str, Any], base: str, where: str) -> WeightFormat:
    """A compressed-tensors ``quantization_config`` as a format (module doc)."""
    groups = qc.get("config_groups")
    if not isinstance(groups, Mapping) or not groups:
        raise ConfigError(f"{where}: compressed-tensors quantization_config needs config_groups")
    found: list[WeightFormat | str] = []
    for key, group in groups.items():
        if not isinstance(group, Mapping) or not isinstance(group.get("weights"), Mapping):
            raise ConfigError(f"{where}: config_groups.{key}.weights must be an object")
        acts = group.get("input_activations")
        found.append(_scheme_of(group["weights"], acts if isinstance(acts, Mapping) else None,
                                f"{where}: config_groups.{key}", str(qc.get("format") or "")))
    if any(f != found[0] for f in found):
        raise ConfigError(f"{where}: config_groups mix schemes ({found}): mfubench counts one "
                          "scheme for every quantized linear layer")
    scheme, experts_only = found[0], _attention_excluded(qc.get("ignore"))
    if isinstance(scheme, str):
        return _named(scheme, base, experts_only)
    activation = "int8" if scheme.activation_dtype == "int8" else base
    return WeightFormat(dtype=base, scheme=scheme.scheme, group_size=scheme.group_size,
                        zero_points=scheme.zero_points, experts_only=experts_only,
                        activation_dtype=activation)
