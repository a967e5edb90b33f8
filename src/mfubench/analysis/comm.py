"""Communication of a parallel layout, term by term, over NVLink or the network.

For one pass (a prefill chunk or a decode step) of ``t`` tokens per DP rank, ``T`` tokens in
the whole step, ``L`` layers of which ``M`` are MoE (top-``k``), hidden ``h`` and ``A = 2`` bytes
per activation (bf16), per GPU::

    tp_allreduce  = 2 L (a + 2 (tp-1)/tp  t h A / B(tp))                     tp > 1
    ep_alltoall   = 2 M (a + s k (T / (tp dp)) h A (ep-1)/ep / B(tp dp))     ep > 1
    dp_gather     = 2 M (a + (dp-1)/dp  T h A / B(tp dp))                     dp > 1, ep = 1
    pp_sendrecv   = (pp-1) (a + t h A / B(tp dp pp))                          pp > 1

``ep_alltoall`` is the dispatch and the combine of the routed tokens (each GPU sends its
``T / (tp dp)`` tokens' ``k`` copies, all but the ``1/ep`` staying local; ``s`` the imbalance on
the busiest rank); ``dp_gather`` is the all-gather of every DP rank's tokens before the MoE
layer and the reduce-scatter after (vLLM's ``allgather_reducescatter`` all2all backend) where
the experts are tensor-parallel over ``tp x dp``; ``pp_sendrecv`` the activations each stage
boundary passes, once per pass (one micro-batch). An expert set split ``expert_tp > 1`` ways
also gathers within the set; that traffic stays inside the set and is not counted.

``B(g)`` is the bandwidth a group of ``g`` consecutive GPUs runs at (TP innermost, then DP,
then PP): the device's interconnect per direction where ``g`` fits the scale-up domain, else
the scale-out network per GPU (:mod:`mfubench.hardware.system`); ``a`` the per-message latency
of that link (stated model parameters: NVLink 5 µs, network 10 µs by default). Nothing is
overlapped with compute, as the TP all-reduce of :mod:`.roofline`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mfubench.counting.layout import Layout
from mfubench.errors import MfubenchError
from mfubench.model.spec import ModelSpec, MoE

if TYPE_CHECKING:
    from mfubench.analysis.phases import Setup

#: Per-message latency of a collective over the scale-out network (InfiniBand/RoCE, a few hops):
#: a stated model parameter of the order nccl-tests report for small inter-node messages.
DEFAULT_SCALEOUT_LATENCY_S = 10e-6
ACTIVATION_BYTES = 2


@dataclass(frozen=True)
class Fabric:
    """The links a layout's collectives can run over, per GPU and direction."""

    scaleup_bandwidth: float
    scaleup_latency_s: float
    domain: int
    scaleout_bandwidth: float | None
    scaleout_latency_s: float = DEFAULT_SCALEOUT_LATENCY_S

    def link(self, group: int) -> tuple[float, float, str]:
        """(bandwidth, latency, ``nvlink``/``network``) of a group of ``group`` consecutive GPUs."""
        if group <= self.domain:
            return self.scaleup_bandwidth, self.scaleup_latency_s, "nvlink"
        if self.scaleout_bandwidth is None:
            raise MfubenchError(
                f"a group of {group} GPUs spans more than the scale-up domain of {self.domain} "
                "and the catalog gives no scale-out network for this device")
        return self.scaleout_bandwidth, self.scaleout_latency_s, "network"


def fabric_of(setup: Setup) -> Fabric:
    """The fabric of ``setup.hardware``: its interconnect within the system's scale-up domain
    (the whole device count where the catalog gives no system), the system's network beyond."""
    hw = setup.hardware
    link = hw.accelerator.interconnect
    if link is None:
        raise MfubenchError(f"{hw.name} has no interconnect in the catalog: a layout over several "
                            "devices cannot be modelled")
    system = hw.system
    domain = system.scaleup_domain if system else hw.count
    return Fabric(link.bandwidth_per_direction, setup.allreduce_latency_s, domain,
                  system.scaleout_bandwidth_per_direction if system else None)


def _moe(spec: ModelSpec) -> tuple[int, float]:
    moes = [layer.ffn for layer in spec.layers if isinstance(layer.ffn, MoE)]
    return len(moes), (sum(m.top_k for m in moes) / len(moes) if moes else 0.0)


def comm_terms(spec: ModelSpec, layout: Layout, fabric: Fabric, rank_tokens: int,
               step_tokens: int, passes: int) -> tuple[tuple[str, float], ...]:
    """Seconds of each communication term (module doc) for ``passes`` passes; named
    ``tp_allreduce``, ``ep_alltoall``, ``dp_gather``, ``pp_sendrecv`` with ``(nvlink)`` or
    ``(network)``; absent where zero."""
    h, a_bytes = spec.hidden_size, ACTIVATION_BYTES
    out: list[tuple[str, float]] = []
    tp, dp, pp, ep = layout.tp, layout.dp, layout.pp, layout.ep
    if tp > 1:
        bw, lat, where = fabric.link(tp)
        per = lat + 2 * (tp - 1) / tp * rank_tokens * h * a_bytes / bw
        out.append((f"tp_allreduce ({where})", 2 * spec.num_layers * passes * per))
    moe_layers, top_k = _moe(spec)
    group = layout.moe_group
    if moe_layers and ep > 1:
        bw, lat, where = fabric.link(group)
        skew = layout.imbalance
        sent = skew * top_k * step_tokens / group * h * a_bytes * (ep - 1) / ep
        out.append((f"ep_alltoall ({where})", 2 * moe_layers * passes * (lat + sent / bw)))
    elif moe_layers and dp > 1:
        bw, lat, where = fabric.link(group)
        gathered = (dp - 1) / dp * step_tokens * h * a_bytes
        out.append((f"dp_gather ({where})", 2 * moe_layers * passes * (lat + gathered / bw)))
    if pp > 1:
        bw, lat, where = fabric.link(group * pp)
        out.append((f"pp_sendrecv ({where})",
                    (pp - 1) * passes * (lat + rank_tokens * h * a_bytes / bw)))
    return tuple(out)


def comm_advice(terms: tuple[tuple[str, float], ...], layout: Layout, fabric: Fabric) -> str:
    """What would move a communication bound: the largest term and the change that shrinks it."""
    if not terms:
        return ""
    name, seconds = max(terms, key=lambda t: t[1])
    kind = name.split(" ")[0]
    over_network = "network" in name
    hint = {
        "tp_allreduce": "a smaller --tp (more --dp), or a TP group within the NVLink domain",
        "ep_alltoall": "fewer routed tokens per step per GPU, a MoE group (tp x dp) within the "
                       "NVLink domain, or dispatch overlapped with compute (DeepEP, two-batch "
                       "overlap)",
        "dp_gather": "--ep over the tp x dp GPUs (all-to-all of the routed copies instead of "
                     "gathering every token)",
        "pp_sendrecv": "fewer pipeline stages, or more micro-batches to hide the sends",
    }[kind]
    where = (f"over the network (the group spans more than the NVLink domain of {fabric.domain})"
             if over_network else "over NVLink")
    return f"{kind} {where} is the largest term ({seconds:.3g} s): {hint}"
