"""How long each request of a run under load is: a fixed length, or one drawn per request.

``--input-tokens`` and ``--output-tokens`` take, per comma-separated item:

=================== ==========================================================================
``512``             every request exactly 512 tokens
``128:1024``        uniform whole numbers from 128 to 1024, both included
``512~128``         normal, mean 512 and standard deviation 128, rounded to whole tokens and
                    truncated to ``mean ± 3 sd`` (and at least 1): its longest is known, so a
                    level can be checked against the context before it runs
=================== ==========================================================================

Every request is still exact in length: a drawn length is the prompt's token count and the
``max_tokens = min_tokens`` of that request, checked against the server's usage.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Literal

from mfubench.counting.workload import MAX_COUNT
from mfubench.errors import MfubenchError

LengthKind = Literal["fixed", "uniform", "normal"]
#: Standard deviations a normal length is truncated at.
NORMAL_TRUNCATION_SD = 3.0

_UNIFORM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_NORMAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*~\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Lengths:
    """A length per request (module doc): ``fixed`` at ``a``, ``uniform`` on ``[a, b]``, or
    ``normal`` with mean ``a`` and standard deviation ``b``."""

    kind: LengthKind
    a: float
    b: float = 0.0

    def __post_init__(self) -> None:
        if self.kind == "fixed" and (self.a != int(self.a) or not 1 <= self.a <= MAX_COUNT):
            raise MfubenchError(f"a length must be a whole number from 1 to 2^40, got {self.a:g}")
        if self.kind == "uniform" and not 1 <= self.a <= self.b <= MAX_COUNT:
            raise MfubenchError(f"a uniform length LO:HI needs 1 <= LO <= HI <= 2^40, got {self.label}")
        if self.kind == "normal" and not (1 <= self.a <= MAX_COUNT and 0 <= self.b <= MAX_COUNT):
            raise MfubenchError(f"a normal length MEAN~SD needs a mean of at least 1, got {self.label}")

    @classmethod
    def parse(cls, text: str) -> Lengths:
        """``512``, ``128:1024`` or ``512~128`` (module doc); anything else is an error."""
        text = text.strip()
        if text.isdigit():
            return cls("fixed", int(text))
        if match := _UNIFORM.match(text):
            return cls("uniform", int(match[1]), int(match[2]))
        if match := _NORMAL.match(text):
            return cls("normal", float(match[1]), float(match[2]))
        raise MfubenchError(f"length {text!r}: expected N, LO:HI (uniform) or MEAN~SD (normal)")

    @property
    def is_fixed(self) -> bool:
        return self.kind == "fixed"

    @property
    def label(self) -> str:
        """As written on the command line: ``512``, ``128:1024``, ``512~128``."""
        if self.kind == "fixed":
            return f"{self.a:g}"
        sep = ":" if self.kind == "uniform" else "~"
        return f"{self.a:g}{sep}{self.b:g}"

    @property
    def low(self) -> int:
        """The shortest length a draw can give."""
        if self.kind == "normal":
            return max(1, math.ceil(self.a - NORMAL_TRUNCATION_SD * self.b))
        return int(self.a)

    @property
    def high(self) -> int:
        """The longest length a draw can give (what must fit the context)."""
        if self.kind == "fixed":
            return int(self.a)
        if self.kind == "uniform":
            return int(self.b)
        return max(self.low, math.floor(self.a + NORMAL_TRUNCATION_SD * self.b))

    @property
    def mean(self) -> float:
        """The mean a draw aims at (a truncated, rounded normal's is close to ``a``)."""
        return self.a if self.kind != "uniform" else (self.a + self.b) / 2

    def draw(self, rng: random.Random) -> int:
        """One length."""
        if self.kind == "fixed":
            return int(self.a)
        if self.kind == "uniform":
            return rng.randint(int(self.a), int(self.b))
        if self.b == 0:
            return max(1, round(self.a))
        while True:  # rejection keeps the truncated normal's shape; at 3 sd it rarely loops
            n = round(rng.gauss(self.a, self.b))
            if self.low <= n <= self.high:
                return n


def lengths_list(text: str) -> list[Lengths]:
    """``--input-tokens``/``--output-tokens``: comma-separated lengths (module doc)."""
    items = [item for item in text.split(",") if item.strip()]
    if not items:
        raise MfubenchError("expected at least one length")
    return [Lengths.parse(item) for item in items]
