"""The roofline model of a phase of inference on a tensor-parallel group.

For one GPU of the ``tp`` that hold the model::

    compute_s  = flops_per_gpu / peak_flops               (dense peak for the matmul dtype)
    memory_s   = bytes_per_gpu / memory_bandwidth
    comm_s     = messages * (latency + 2 (tp - 1) / tp * message_bytes / link_bandwidth)
    roofline_s = max(compute_s, memory_s) + comm_s
    bound      = whichever of the three terms is largest

``comm_s`` is a ring all-reduce of the activations after attention and after the MLP of every
layer (2 per layer per forward pass), not overlapped with compute, as in Megatron-style TP.
``latency`` is a per-message cost: the interconnect's datasheet gives no figure for it, so it is
a stated model parameter (default :data:`DEFAULT_ALLREDUCE_LATENCY_S`), printed with every result.

Arithmetic intensity is ``flops_per_gpu / bytes_per_gpu`` (FLOP/byte); the ridge point is
``peak_flops / memory_bandwidth``: a phase whose intensity is below the ridge is memory-bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mfubench.errors import MfubenchError

Bound = Literal["compute", "memory", "communication"]

#: Per-message all-reduce latency assumed when none is given: the order of a small-message
#: NCCL all-reduce over NVLink within one node (nccl-tests report a few to ~10 µs).
DEFAULT_ALLREDUCE_LATENCY_S = 5e-6


@dataclass(frozen=True)
class Machine:
    """The per-GPU figures a roofline needs, for one matmul dtype, and where they come from.

    Attributes:
        name: the hardware as given (``4xH100-SXM``, ``cpu:1``).
        devices: GPUs holding the model (the TP degree).
        peak_flops: dense peak FLOP/s of one device for ``dtype``.
        memory_bandwidth: bytes/s of one device.
        memory_capacity: bytes of one device.
        link_bandwidth: interconnect bytes/s per direction of one device (None: no TP possible).
        dtype: the matmul dtype the peak is for.
        peak_source: ``datasheet`` or ``measured``.
        allreduce_latency_s: per-message all-reduce latency (a model parameter).
        tp: GPUs of one tensor-parallel group, the all-reduce ring (0: ``devices``, one TP
            replica over every device).
    """

    name: str
    devices: int
    peak_flops: float
    memory_bandwidth: float
    memory_capacity: float
    link_bandwidth: float | None
    dtype: str
    peak_source: str
    allreduce_latency_s: float = DEFAULT_ALLREDUCE_LATENCY_S
    tp: int = 0

    def __post_init__(self) -> None:
        if self.peak_flops <= 0 or self.memory_bandwidth <= 0 or self.devices < 1:
            raise MfubenchError("a machine needs positive peaks and at least one device")
        if self.devices > 1 and not self.link_bandwidth:
            raise MfubenchError(
                f"{self.name} has no interconnect bandwidth in the catalog: "
                "tensor parallelism across devices cannot be modelled"
            )

    @property
    def ridge(self) -> float:
        """FLOP/byte where compute time equals memory time."""
        return self.peak_flops / self.memory_bandwidth

    @property
    def total_peak_flops(self) -> float:
        return self.peak_flops * self.devices


@dataclass(frozen=True)
class Roofline:
    """The roofline terms of one phase (seconds, per GPU; all GPUs run in lock step)."""

    compute_s: float
    memory_s: float
    comm_s: float
    arithmetic_intensity: float
    ridge: float
    comm_breakdown: tuple[tuple[str, float], ...] = ()  # a layout's terms (.comm), seconds

    @property
    def roofline_s(self) -> float:
        return max(self.compute_s, self.memory_s) + self.comm_s

    @property
    def bound(self) -> Bound:
        terms: dict[Bound, float] = {
            "compute": self.compute_s, "memory": self.memory_s, "communication": self.comm_s
        }
        return max(terms, key=lambda k: terms[k])

    @property
    def mfu_ceiling(self) -> float:
        """The MFU a run at exactly the roofline time would reach."""
        return self.compute_s / self.roofline_s if self.roofline_s else 0.0

    @property
    def mbu_ceiling(self) -> float:
        """The MBU a run at exactly the roofline time would reach."""
        return self.memory_s / self.roofline_s if self.roofline_s else 0.0


def allreduce_s(machine: Machine, messages: float, message_bytes: float) -> float:
    """Ring all-reduce time of ``messages`` all-reduces of ``message_bytes`` each."""
    tp = machine.tp or machine.devices
    if tp == 1 or messages == 0:
        return 0.0
    assert machine.link_bandwidth
    per_message = machine.allreduce_latency_s + 2 * (tp - 1) / tp * message_bytes / machine.link_bandwidth
    return messages * per_message


def roofline(
    machine: Machine,
    flops_per_gpu: float,
    bytes_per_gpu: float,
    messages: float = 0.0,
    message_bytes: float = 0.0,
) -> Roofline:
    """The roofline of a phase that computes ``flops_per_gpu`` and moves ``bytes_per_gpu`` on
    each GPU, with ``messages`` TP all-reduces of ``message_bytes``."""
    return Roofline(
        compute_s=flops_per_gpu / machine.peak_flops,
        memory_s=bytes_per_gpu / machine.memory_bandwidth,
        comm_s=allreduce_s(machine, messages, message_bytes),
        arithmetic_intensity=flops_per_gpu / bytes_per_gpu if bytes_per_gpu else float("inf"),
        ridge=machine.ridge,
    )
