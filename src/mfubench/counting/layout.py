"""A parallel layout: how a deployment splits one model over its devices.

``Layout(tp=T, dp=D, pp=P, ep=E)`` is what ``--tp T --dp D --pp P --ep E`` says, in vLLM's
terms (``--tensor-parallel-size``, ``--data-parallel-size``, ``--pipeline-parallel-size``,
``--enable-expert-parallel``)::

    devices        = T * D * P
    moe_group      = T * D             GPUs one MoE layer of a pipeline stage spans
    expert_tp      = T * D / E         ways each routed expert's matrices are split in its group
    local_experts  = num_experts / E   routed experts an EP rank holds

* **Tensor parallelism** ``T`` splits attention heads, dense MLPs, shared experts, the
  embedding and the LM head within a DP rank (as today: :mod:`mfubench.counting.components`).
* **Attention data parallelism** ``D`` runs ``D`` copies of everything but the routed experts,
  each on its own ``1/D`` of the batch (its own requests and KV cache); the routed experts of a
  stage span all ``T * D`` GPUs and take the tokens of every DP rank (vLLM's DP attention with
  MoE: the MoE layer all-gathers or dispatches the ranks' tokens).
* **Expert parallelism** ``E`` partitions the routed experts of the MoE group into ``E`` sets;
  each expert is split ``T * D / E`` ways within its set. ``E = 1`` is TP of every expert over
  the ``T * D`` GPUs (vLLM without ``--enable-expert-parallel``); ``E = T * D`` is vLLM's
  ``--enable-expert-parallel`` (whole experts, one set per GPU).
* **Pipeline parallelism** ``P`` splits the decoder layers into ``P`` consecutive stages as
  vLLM's ``get_pp_indices`` does (``vllm/distributed/utils.py``, vllm 0.32.0): ``L // P`` layers
  each, the remainder added one each to the stages before the last, from the second-to-last
  backwards. The embedding is on the first stage; the final norm and the LM head on the last.

``imbalance`` is the routing skew the EP ranks see: the busiest EP set receives ``imbalance``
times the mean routed token-expert pairs (1.0: perfectly balanced, what vLLM's counter assumes).
Without EP every GPU holds a slice of every expert, so skew does not unbalance the GPUs.

The default ``Layout()`` (and ``Layout(tp=T)``) is today's single tensor-parallel replica.
"""

from __future__ import annotations

from dataclasses import dataclass

from mfubench.errors import MfubenchError


@dataclass(frozen=True)
class Layout:
    """A parallel layout (see the module doc): ``tp x dp x pp`` devices, ``ep`` expert sets."""

    tp: int = 1
    dp: int = 1
    pp: int = 1
    ep: int = 1
    imbalance: float = 1.0

    def __post_init__(self) -> None:
        for flag, value in (("--tp", self.tp), ("--dp", self.dp), ("--pp", self.pp),
                            ("--ep", self.ep)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MfubenchError(f"{flag} must be a positive integer, got {value!r}")
        if self.moe_group % self.ep:
            raise MfubenchError(
                f"--ep {self.ep} must divide --tp x --dp = {self.tp} x {self.dp} = "
                f"{self.moe_group}: each expert set spans (tp x dp) / ep whole GPUs")
        if not self.imbalance >= 1.0:
            raise MfubenchError(f"--ep-imbalance must be >= 1 (the busiest EP rank's share of the "
                                f"routed tokens over the mean), got {self.imbalance!r}")

    @property
    def devices(self) -> int:
        """GPUs the layout uses: ``tp * dp * pp``."""
        return self.tp * self.dp * self.pp

    @property
    def moe_group(self) -> int:
        """GPUs one MoE layer of a stage spans: ``tp * dp``."""
        return self.tp * self.dp

    @property
    def expert_tp(self) -> int:
        """Ways each routed expert is split within its EP set: ``tp * dp / ep``."""
        return self.moe_group // self.ep

    @property
    def plain_tp(self) -> bool:
        """True for a single tensor-parallel replica (today's only layout)."""
        return self.dp == 1 and self.pp == 1 and self.ep == 1

    @property
    def label(self) -> str:
        """``TP4``, ``TP2 DP4 EP8``, ``TP8 PP2``: the degrees that are not 1 (TP always)."""
        parts = [f"TP{self.tp}"]
        parts += [f"{name}{n}" for name, n in (("DP", self.dp), ("EP", self.ep), ("PP", self.pp))
                  if n > 1]
        return " ".join(parts)


def stage_layers(num_layers: int, pp: int) -> tuple[range, ...]:
    """The decoder layers of each of ``pp`` pipeline stages, as vLLM's ``get_pp_indices``
    partitions them (module doc): ``L // pp`` each, the ``L % pp`` remaining layers one each to
    stages ``pp-2, pp-3, ...``."""
    if pp > num_layers:
        raise MfubenchError(f"--pp {pp} is more than the model's {num_layers} layers: every "
                            "pipeline stage needs at least one layer")
    sizes = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        sizes[-i] += 1
    starts = [sum(sizes[:s]) for s in range(pp)]
    return tuple(range(a, a + n) for a, n in zip(starts, sizes, strict=True))
