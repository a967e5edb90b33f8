"""The lengths of a measurement's requests when they differ: its :class:`RequestMix`.

A run whose requests all have one shape is described by ``input_tokens`` and
``output_tokens``. When lengths were drawn from a distribution or read from a workload file,
the means are not enough: the FLOPs of a prompt grow with the square of its length (causal
attention), so ``n * flops(mean I)`` undercounts a mix of short and long prompts
(``E[I^2] > E[I]^2``). The mix keeps every distinct ``(input, output)`` pair with its count,
and the analysis sums the work per pair::

    flops(mix) = sum over pairs of count * flops(one request of input in, output out)

Decode work is linear in the cache length, so one step of the mix is exactly a step at the
mean cache weighted by decode tokens::

    mean_cache = sum(count * (O - 1) * (I + (O - 2) / 2)) / sum(count * (O - 1))
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from mfubench.counting.workload import MAX_COUNT
from mfubench.errors import InputFileError

#: Distinct (input, output) pairs a mix keeps; beyond it the analysis would be slow for no
#: gain and the file would be large. Draws from wide distributions stay far below it.
MAX_PAIRS = 100_000


@dataclass(frozen=True)
class RequestMix:
    """Distinct request shapes with their counts: ``pairs[k] = (input, output, count)``."""

    pairs: tuple[tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        if not self.pairs:
            raise InputFileError("a request mix needs at least one request")
        if len(self.pairs) > MAX_PAIRS:
            raise InputFileError(f"a request mix of {len(self.pairs)} distinct lengths exceeds {MAX_PAIRS}")
        for item in self.pairs:
            if (not isinstance(item, tuple) or len(item) != 3
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)):
                raise InputFileError(f"a request mix entry must be (input, output, count), got {item!r}")
            i, o, n = item
            if not (1 <= i <= MAX_COUNT and 1 <= o <= MAX_COUNT and 1 <= n <= MAX_COUNT):
                raise InputFileError(
                    f"a request mix entry needs input, output and count in 1..2^40, got {item!r}")

    @classmethod
    def of(cls, lengths: Iterable[tuple[int, int]]) -> RequestMix:
        """The mix of the requests with these ``(input, output)`` lengths, in sorted order."""
        counts = Counter(lengths)
        return cls(tuple((i, o, n) for (i, o), n in sorted(counts.items())))

    @property
    def requests(self) -> int:
        return sum(n for _, _, n in self.pairs)

    @property
    def uniform(self) -> bool:
        """True when every request had the same lengths."""
        return len(self.pairs) == 1

    @property
    def mean_input(self) -> float:
        return math.fsum(i * n for i, _, n in self.pairs) / self.requests

    @property
    def mean_output(self) -> float:
        return math.fsum(o * n for _, o, n in self.pairs) / self.requests

    @property
    def decode_tokens(self) -> int:
        """Tokens generated after each request's first: ``sum(count * (O - 1))``."""
        return sum(n * (o - 1) for _, o, n in self.pairs)

    @property
    def mean_cache(self) -> float:
        """The cache length of the mean decode step, weighted by decode tokens (module doc);
        the mean prompt when no request decodes."""
        tokens = self.decode_tokens
        if not tokens:
            return self.mean_input
        return math.fsum(n * (o - 1) * (i + (o - 2) / 2) for i, o, n in self.pairs) / tokens

    def to_json(self) -> list[list[int]]:
        return [list(p) for p in self.pairs]
