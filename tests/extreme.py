"""Hypothesis strategies of extreme values, shared by the fuzzers: huge, tiny, negative, NaN and
infinite numbers, and huge lists (the inputs a careless user or a broken script sends)."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

#: Numbers at and beyond every limit: 2^40 (mfubench's largest count) on both sides, 64-bit
#: overflow, the float extremes, and the non-finite values JSON readers let through.
EDGE_NUMBERS: tuple[Any, ...] = (
    0, -1, 1, 2**31, 2**40, 2**40 + 1, 2**53 + 1, 2**63, -(2**63), 10**30, 10**400,
    0.5, 1e-300, 5e-324, -0.0, 1e308, -1e308, math.inf, -math.inf, math.nan,
)

extreme_numbers = (
    st.sampled_from(EDGE_NUMBERS)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
)


def huge_lists(element: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """Lists of one repeated element, up to 100,000 long (cheap to draw, costly to mishandle);
    give it scalars: a huge list of huge lists is a fuzzer's own blow-up, not an input's."""
    return st.builds(lambda value, n: [value] * n, element, st.sampled_from([1_000, 100_000]))
