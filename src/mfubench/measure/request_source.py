"""What each request of a load level is: its lengths, and for a trace its arrival time.

Two sources, both exact in length per request:

- :class:`Drawn`: lengths from ``--input-tokens`` and ``--output-tokens``, fixed or drawn per
  request (:mod:`mfubench.measure.lengths`); a fixed shape is the plain case.
- :class:`Replayed`: the requests of a workload file (:mod:`mfubench.measure.workload_file`)
  in order, cycled when more are sent; with arrival times, a trace.

``key`` identifies the source in a results file (``--resume`` skips a level whose load and
source match): the lengths for a fixed shape, the written distributions, or the workload
file's name and digest.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mfubench.measure.lengths import Lengths
from mfubench.measure.workload_file import Workload

SourceKey = tuple[int | str, int | str]


@dataclass(frozen=True)
class Drawn:
    """Requests of ``input`` and ``output`` lengths, each drawn afresh (fixed: always the same)."""

    input: Lengths
    output: Lengths

    def lengths(self, index: int, rng: random.Random) -> tuple[int, int]:
        del index  # every draw is independent
        return self.input.draw(rng), self.output.draw(rng)

    @property
    def is_fixed(self) -> bool:
        return self.input.is_fixed and self.output.is_fixed

    @property
    def key(self) -> SourceKey:
        return tuple(int(x.a) if x.is_fixed else x.label for x in (self.input, self.output))  # type: ignore[return-value]

    @property
    def longest(self) -> tuple[int, int]:
        return self.input.high, self.output.high

    @property
    def nominal(self) -> tuple[int, int]:
        """The lengths a point line records: exact when fixed, the rounded means otherwise."""
        return round(self.input.mean), round(self.output.mean)

    @property
    def label(self) -> str:
        return f"input {self.input.label} output {self.output.label}"

    @property
    def arrivals_s(self) -> None:
        return None


@dataclass(frozen=True)
class Replayed:
    """The requests of a workload file, in its order (cycled)."""

    workload: Workload

    def lengths(self, index: int, rng: random.Random) -> tuple[int, int]:
        del rng
        return self.workload.lengths[index % len(self.workload.lengths)]

    @property
    def is_fixed(self) -> bool:
        return len(set(self.workload.lengths)) == 1

    @property
    def key(self) -> SourceKey:
        return self.workload.label, self.workload.label

    @property
    def longest(self) -> tuple[int, int]:
        return self.workload.longest

    @property
    def nominal(self) -> tuple[int, int]:
        n = len(self.workload.lengths)
        return (round(sum(i for i, _ in self.workload.lengths) / n),
                round(sum(o for _, o in self.workload.lengths) / n))

    @property
    def label(self) -> str:
        return self.workload.label

    @property
    def arrivals_s(self) -> tuple[float, ...] | None:
        return self.workload.arrivals_s


RequestSource = Drawn | Replayed
