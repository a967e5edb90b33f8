"""What a benchmark tool says it loaded and ran on, applied to one measured point.

A published ``llama-bench`` result has no GGUF file beside it: the model comes from ``--model``
(a bundled id or a config, counted in its own dtype), while the tool wrote the bytes it loaded
(``model_size``), the KV-cache type and the devices. :class:`AsRun` carries that on the
:class:`~mfubench.analysis.measurement.Measurement`, and :func:`point_setup` turns the analysis'
:class:`~mfubench.analysis.phases.Setup` into the one the point ran under:

- **Weight bytes.** :class:`MeasuredWeights` wraps the model's weight format and scales every
  weight kind's bytes per parameter by one factor, so the counted weight bytes equal the tool's
  figure exactly (vectors stored in the model dtype, such as biases, are left as they are and
  the factor is solved with them in)::

      scale = (measured_bytes - vector_bytes) / (counted_bytes - vector_bytes)

  Decode reads every weight of a dense model once per step, so its bytes are then the measured
  ones exactly; a MoE decode step touches only some experts, and there the common scale assumes
  the quantization is spread evenly over the kinds (said in a flag). The label names the file
  type (``Q4_K_M``) and where the bytes came from.
- **Parameters.** A tool's parameter count far from the model's (over 2 %) means ``--model`` is
  not the model that ran: flagged ``model-mismatch``.
- **KV type** (``f16``, ``bf16``, ``f32``; ``q8_0`` counted at 1 byte per element, its scales
  left out and flagged): replaces ``--kv-dtype``.
- **The GEMM peak** (``peak_dtype``): llama.cpp's CUDA backend multiplies fp16 with fp16
  accumulation, so its MFU divides by ``fp16_acc16`` where the device has that figure (GeForce:
  twice ``fp16``), else by ``fp16``; the table title names it.
- **Layer split** (``pipeline`` N > 1: llama.cpp's ``--split-mode layer`` over N GPUs): the
  layers run on one GPU after another, so a single sequence keeps one GPU busy at a time. The
  point is analysed as one device of the kind (its bandwidth and peak), holding the memory of
  the N (``Nx`` in the name, ``(layer split)``): not as tensor parallelism, which would credit
  N devices' bandwidth at once.
- **Partial offload** (``gpu_layers`` below the model's layers): the rest run on the CPU, whose
  memory the device's bandwidth does not cover: flagged ``partial-offload`` with the count.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from mfubench.counting.components import components
from mfubench.counting.memory import params_total, weight_bytes
from mfubench.errors import MfubenchError
from mfubench.hardware.dtypes import acc16_or_fp16
from mfubench.hardware.spec import HardwareSpec
from mfubench.model.quant import DTYPE_BYTES, WeightFormat, WeightKind

if TYPE_CHECKING:
    from mfubench.analysis.measurement import Measurement
    from mfubench.analysis.phases import Setup
    from mfubench.model.spec import ModelSpec

#: llama.cpp KV-cache types (``ggml_type_name``) mfubench counts, as its dtype names.
KV_TYPES: dict[str, str] = {"f16": "fp16", "bf16": "bf16", "f32": "fp32", "q8_0": "int8"}
#: How far a tool's parameter count may be from the model's before the point is flagged.
PARAMS_TOLERANCE = 0.02


@dataclass(frozen=True)
class AsRun:
    """What the tool reported about the run (every field optional).

    Attributes:
        tool: who reported it (``llama-bench``), for messages.
        weight_bytes: the weights' bytes as loaded (llama-bench ``model_size``).
        weight_label: the file type of those weights (``Q4_K_M``).
        params: the tool's parameter count (llama-bench ``model_n_params``).
        kv_type: the KV cache's type as the tool names it (``f16``, ``q8_0``).
        engine_gemm: ``cuda`` when the GEMMs ran in llama.cpp's CUDA backend (fp16 with fp16
            accumulation), else None (the dtype rule applies).
        pipeline: devices the layers were split over (1: one device or no split).
        gpu_layers: layers offloaded to the GPU (None: all, or not a GPU run).
        weight_dtype: the weights' plain type where they are not quantized (``bf16``, ``fp32``):
            the GEMM peak follows it.
    """

    tool: str = ""
    weight_bytes: float | None = None
    weight_label: str = ""
    params: int | None = None
    kv_type: str | None = None
    engine_gemm: str | None = None
    pipeline: int = 1
    gpu_layers: int | None = None
    weight_dtype: str | None = None


@dataclass(frozen=True)
class MeasuredWeights(WeightFormat):
    """Weights whose total bytes are a measured figure: ``base`` scaled by ``scale`` per kind.

    Attributes:
        base: the model's own weight format.
        scale: the factor on every kind's bytes per parameter.
        measured_bytes: the figure the weights now count to.
        label: the file type and where the figure came from.
        kv_dtype: the KV cache's dtype the run used (None: the base's default).
    """

    base: WeightFormat = WeightFormat()
    scale: float = 1.0
    measured_bytes: float = 0.0
    label: str = ""
    kv_dtype: str | None = None

    @property
    def name(self) -> str:
        return self.label or "measured"

    def bytes_per_param(self, kind: WeightKind) -> float:
        return self.base.bytes_per_param(kind) * self.scale


def measured_weights(spec: ModelSpec, measured_bytes: float, label: str,
                     kv_dtype: str | None = None) -> MeasuredWeights:
    """``spec``'s weights scaled so that their counted bytes (one device) are ``measured_bytes``."""
    counted = sum(weight_bytes(spec, 1).values())
    vectors = sum(c.biases for c in components(spec)) * DTYPE_BYTES[spec.weights.dtype]
    if not measured_bytes > vectors or not counted > vectors:
        raise MfubenchError(f"measured weight bytes {measured_bytes:.4g} cannot be those of "
                            f"this model (its vectors alone take {vectors:.4g} bytes)")
    base = spec.weights
    return MeasuredWeights(dtype=base.dtype, scheme=base.scheme, group_size=base.group_size,
                           block_scales=base.block_scales, experts_only=base.experts_only,
                           activation_dtype=base.activation_dtype, base=base,
                           scale=(measured_bytes - vectors) / (counted - vectors),
                           measured_bytes=measured_bytes, label=label, kv_dtype=kv_dtype)


def pipeline_hardware(hardware: HardwareSpec, devices: int) -> HardwareSpec:
    """One device of ``hardware``'s kind holding the memory of ``devices`` (a layer split)."""
    acc = hardware.accelerator
    split = replace(acc, name=f"{devices}x{acc.name} (layer split)",
                    memory_capacity=acc.memory_capacity * devices)
    return HardwareSpec(split, 1, hardware.calibration)


def point_setup(setup: Setup, m: Measurement) -> tuple[Setup, list[str]]:
    """The setup point ``m`` ran under (its :class:`AsRun` applied) and the flags that says."""
    run = m.as_run
    if not isinstance(run, AsRun):
        return setup, []
    flags: list[str] = []
    tool = run.tool or "the tool"
    spec = setup.spec
    if run.params is not None:
        counted = params_total(spec)
        if abs(run.params - counted) > PARAMS_TOLERANCE * counted:
            flags.append(f"model-mismatch: {tool} ran a model of {run.params:,} parameters, "
                         f"--model counts {counted:,}: check --model")
    kv = setup.kv_dtype
    if run.kv_type is not None:
        if run.kv_type not in KV_TYPES:
            raise MfubenchError(
                f"{m.source}: KV cache type {run.kv_type!r} is not one mfubench counts "
                f"({', '.join(KV_TYPES)}); its bytes per element would be a guess")
        kv = KV_TYPES[run.kv_type]
        if run.kv_type == "q8_0":
            flags.append("kv-q8_0: the q8_0 KV cache is counted at 1 byte per element (its "
                         "per-32 fp16 scales, 6 % more, are left out)")
    if run.weight_bytes is not None:
        spec = spec.with_weights(measured_weights(
            spec, run.weight_bytes, f"{run.weight_label or 'gguf'} ({tool} model_size)", kv))
        if spec.is_moe:
            flags.append("moe-bytes-scaled: the measured weight bytes are spread over the "
                         "weight kinds by one factor; a decode step's expert bytes assume it")
    hardware, tp = setup.hardware, setup.tp
    if run.pipeline > 1:
        if hardware.count not in (1, run.pipeline):
            raise MfubenchError(f"{m.source}: the layers were split over {run.pipeline} GPUs, "
                                f"but --hardware names {hardware.count}")
        hardware, tp = pipeline_hardware(hardware, run.pipeline), 1
        flags.append(f"layer-split: the layers ran on {run.pipeline} GPUs one after another "
                     "(llama.cpp --split-mode layer), so the figures are against one GPU's "
                     "bandwidth and peak, with the memory of all")
    if run.gpu_layers is not None and 0 <= run.gpu_layers < spec.num_layers:
        flags.append(f"partial-offload: {run.gpu_layers} of {spec.num_layers} layers on the "
                     "GPU; the rest ran on the CPU, whose memory the figures do not include")
    peak = setup.peak_dtype
    if run.weight_dtype in ("bf16", "fp32"):
        peak = run.weight_dtype
    elif run.engine_gemm == "cuda":
        peak = acc16_or_fp16(hardware.accelerator.peak_flops)
    elif run.engine_gemm is not None or run.weight_bytes is not None:
        peak = "fp16"
    return replace(setup, spec=spec, hardware=hardware, tp=tp, kv_dtype=kv, peak_dtype=peak), flags


def shown_setup(setup: Setup, measurements: list[Measurement]) -> Setup:
    """The setup a table title should name: the points' own (:func:`point_setup`) where every
    point carries an :class:`AsRun` and they agree on the device and the GEMM peak, else
    ``setup``. (Each row always names its own ``dtype`` and ``hardware``.)"""
    runs = [m for m in measurements if isinstance(m.as_run, AsRun)]
    if not runs or len(runs) != len(measurements):
        return setup
    shown = {(s.hardware.name, s.dtype): s for s in (point_setup(setup, m)[0] for m in runs)}
    return next(iter(shown.values())) if len(shown) == 1 else setup
