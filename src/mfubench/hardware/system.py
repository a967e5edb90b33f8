"""The system a device is sold in: GPUs per node, the scale-up (NVLink) domain, the network.

A catalog entry may carry a ``system`` table (``catalog.toml``)::

    [B200.system]
    name = "HGX B200"
    gpus_per_node = 8                  # GPUs in one server (a compute tray for NVL72)
    scaleup_domain = 8                 # GPUs one NVLink domain joins (HGX: the node; NVL72: 72)
    scaleout_bandwidth_per_direction = 50e9   # bytes/s per GPU, one direction (400 Gb/s NIC)
    source = "..."                     # where each figure comes from
    checked = "2026-12-01"

Collectives among GPUs of one scale-up domain run over the device's interconnect
(``Accelerator.interconnect``); a group that spans domains runs at the scale-out bandwidth per
GPU (the slowest link it crosses). Placement is TP innermost, then DP (and EP over TP x DP),
then PP outermost, so a group of ``g`` consecutive GPUs stays in one domain iff ``g <= domain``.

``--gpus-per-node N`` overrides the node size; where the domain is the node (HGX) it is the
domain too, where the domain spans nodes (NVL72) the domain stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from mfubench.errors import MfubenchError


@dataclass(frozen=True)
class System:
    """A device's system layout (module doc)."""

    name: str
    gpus_per_node: int
    scaleup_domain: int
    scaleout_bandwidth_per_direction: float
    source: str
    checked: str

    def __post_init__(self) -> None:
        if self.gpus_per_node < 1 or self.scaleup_domain < 1:
            raise MfubenchError(f"system {self.name}: gpus_per_node and scaleup_domain must be >= 1")
        if not self.scaleout_bandwidth_per_direction > 0:
            raise MfubenchError(f"system {self.name}: scaleout bandwidth must be positive")

    def with_gpus_per_node(self, n: int | None) -> System:
        """This system with ``n`` GPUs per node (``--gpus-per-node``): an HGX-like domain (the
        node) follows it; a domain that spans nodes (NVL72) does not."""
        if n is None:
            return self
        if n < 1:
            raise MfubenchError(f"--gpus-per-node must be >= 1, got {n}")
        spans_nodes = self.scaleup_domain > self.gpus_per_node
        domain = self.scaleup_domain if spans_nodes else n
        return System(self.name, n, domain, self.scaleout_bandwidth_per_direction, self.source,
                      self.checked)


def parse_system(entry: str, raw: Mapping[str, Any]) -> System:
    """The ``system`` table of catalog entry ``entry``; ValueError naming the field otherwise."""
    for key in ("name", "source", "checked"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ValueError(f"catalog entry {entry}: system.{key} missing")
    date.fromisoformat(raw["checked"])
    ints = {}
    for key in ("gpus_per_node", "scaleup_domain"):
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"catalog entry {entry}: system.{key} must be a positive integer")
        ints[key] = value
    bw = raw.get("scaleout_bandwidth_per_direction")
    if isinstance(bw, bool) or not isinstance(bw, int | float) or not bw > 0:
        raise ValueError(f"catalog entry {entry}: system.scaleout_bandwidth_per_direction must be "
                         "a positive number")
    return System(raw["name"], ints["gpus_per_node"], ints["scaleup_domain"], float(bw),
                  raw["source"], raw["checked"])
