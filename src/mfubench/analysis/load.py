"""How the requests of a measurement arrived: its load model.

=============== ===========================================================================
kind            what was held
=============== ===========================================================================
``static``      a batch of B requests sent at once, decoded in lockstep (``level`` = B)
``concurrency`` C requests in flight, a new one sent as one finishes: a closed loop
                (``level`` = C)
``rate``        requests sent at λ per second whatever the server does: an open loop
                (``level`` = λ; ``arrival`` ``poisson``, ``gamma`` with ``burstiness``, or
                ``constant``)
``trace``       requests sent at recorded times (``level`` None)
=============== ===========================================================================

Under every load but ``static`` the engine batches continuously: prefill chunks of arriving
requests share steps with the decode of the others, and a request's TTFT and TPOT are its own,
not a batch's. :mod:`mfubench.analysis.under_load` analyses such measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from mfubench.errors import InputFileError

LoadKind = Literal["static", "concurrency", "rate", "trace"]
LOAD_KINDS: tuple[str, ...] = get_args(LoadKind)
ARRIVALS: tuple[str, ...] = ("poisson", "gamma", "constant")


@dataclass(frozen=True)
class Load:
    """The load model of a measurement (module doc); the default is a static batch."""

    kind: LoadKind = "static"
    level: float | None = None
    arrival: str | None = None
    burstiness: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in LOAD_KINDS:
            raise InputFileError(f"load kind {self.kind!r}: expected one of {', '.join(LOAD_KINDS)}")
        if self.level is not None and (not math.isfinite(self.level) or self.level <= 0):
            raise InputFileError(f"load level must be a positive number, got {self.level!r}")
        if self.kind in ("concurrency", "rate") and self.level is None:
            raise InputFileError(f"a {self.kind} load needs its level")
        if self.arrival is not None and self.arrival not in ARRIVALS:
            raise InputFileError(f"arrival {self.arrival!r}: expected one of {', '.join(ARRIVALS)}")
        if self.burstiness is not None and (not math.isfinite(self.burstiness) or self.burstiness <= 0):
            raise InputFileError(f"burstiness must be a positive number, got {self.burstiness!r}")

    @property
    def continuous(self) -> bool:
        """True when the engine batched continuously (every kind but ``static``)."""
        return self.kind != "static"

    @property
    def label(self) -> str:
        """``static``, ``concurrency 64``, ``rate 4 req/s (poisson)``, ``trace``."""
        if self.kind == "static":
            return "static" if self.level is None else f"static batch {self.level:g}"
        if self.kind == "concurrency":
            return f"concurrency {self.level:g}"
        if self.kind == "rate":
            how = self.arrival or "arrivals unknown"
            if self.arrival == "gamma" and self.burstiness is not None:
                how += f", burstiness {self.burstiness:g}"
            return f"rate {self.level:g} req/s ({how})"
        return "trace"


STATIC = Load()
