"""What is being counted: the conventions, and the three shapes of inference work.

Conventions (named on every output):

``causal`` (default)
    The work the model needs. A token at position ``t`` (1-based) attends ``min(t, window)``
    keys, itself included; the LM head runs only where a token is sampled: once per sequence in
    prefill, once per sequence in each decode step.
``palm``
    As the PaLM paper's MFU (and the seed document) count it: a chunk of ``n`` new tokens after
    ``c`` cached ones scores the full rectangle ``n * min(c + n, window)`` of query-key pairs
    (no causal halving), and the LM head runs on every position.
``vllm``
    What vLLM's ``--enable-mfu-metrics`` counter counts (``vllm/v1/metrics/perf.py``): attention
    as ``palm`` (``num_tokens * min(context_len, window)``), the LM head once per sampled token.

A decode step is the same under all three: one new token after ``C`` cached ones attends
``min(C + 1, window)`` keys and is sampled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from mfubench.errors import MfubenchError

#: The largest batch or token count mfubench accepts (2^40, about 10^12): a thousand times
#: beyond any deployment, and small enough that every count stays exact and quick.
MAX_COUNT = 2**40


def check_count(name: str, value: int, minimum: int = 1) -> None:
    """Refuse a batch or token count outside ``[minimum, MAX_COUNT]``, naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MfubenchError(f"{name} must be an integer, got {value!r}")
    if value < minimum or value > MAX_COUNT:
        raise MfubenchError(f"{name} {value} is outside [{minimum}, 2^40 = {MAX_COUNT}]: "
                            "far beyond any real deployment")

Convention = Literal["causal", "palm", "vllm"]
CONVENTIONS: tuple[str, ...] = get_args(Convention)
DEFAULT_CONVENTION: Convention = "causal"


def check_convention(name: str) -> Convention:
    """``name`` as a :data:`Convention`, or a clear error listing the conventions."""
    if name not in CONVENTIONS:
        raise MfubenchError(f"unknown convention {name!r}; choose one of {', '.join(CONVENTIONS)}")
    return name  # type: ignore[return-value]


@dataclass(frozen=True)
class PrefillChunk:
    """``batch`` sequences each prefilling ``new_tokens`` after ``cached_tokens`` already cached.

    ``samples``: the chunk ends the prompt, so a token is sampled (the LM head runs) at its end.
    """

    new_tokens: int
    cached_tokens: int = 0
    batch: int = 1
    samples: bool = True

    def __post_init__(self) -> None:
        if self.new_tokens < 1 or self.cached_tokens < 0 or self.batch < 1:
            raise MfubenchError(
                "a prefill chunk needs new_tokens >= 1, cached_tokens >= 0 and batch >= 1"
            )
        check_count("new_tokens", self.new_tokens)
        check_count("cached_tokens", self.cached_tokens, minimum=0)
        check_count("batch", self.batch)


@dataclass(frozen=True)
class DecodeStep:
    """One decode step: each sequence adds one token to its cache.

    ``groups`` holds ``(context, sequences)`` pairs: ``sequences`` sequences whose cache holds
    ``context`` tokens. Kept as counts, not one entry per sequence, so a step of any batch costs
    the same to count (a batch of 10^8 is one pair, not a tuple of 10^8 ints).
    """

    groups: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not self.groups or any(c < 0 or n < 1 for c, n in self.groups):
            raise MfubenchError("a decode step needs at least one sequence and contexts >= 0")
        for context, sequences in self.groups:
            check_count("decode context", context, minimum=0)
            check_count("decode batch", sequences)

    @classmethod
    def uniform(cls, batch: int, context: int) -> DecodeStep:
        """``batch`` sequences with the same cache length ``context``."""
        if batch < 1:
            raise MfubenchError("a decode step needs batch >= 1")
        return cls(((context, batch),))

    @classmethod
    def of(cls, contexts: Iterable[int]) -> DecodeStep:
        """One sequence per entry of ``contexts`` (grouped by length)."""
        return cls(tuple(sorted(Counter(contexts).items())))

    @property
    def batch(self) -> int:
        return sum(n for _, n in self.groups)


@dataclass(frozen=True)
class Request:
    """``batch`` whole requests: a prefill of ``input_tokens``, then ``output_tokens - 1`` decode
    steps (the first output token is sampled at the end of the prefill)."""

    input_tokens: int
    output_tokens: int = 1
    batch: int = 1

    def __post_init__(self) -> None:
        if self.input_tokens < 1 or self.output_tokens < 1 or self.batch < 1:
            raise MfubenchError("a request needs input_tokens, output_tokens and batch >= 1")
        check_count("input_tokens", self.input_tokens)
        check_count("output_tokens", self.output_tokens)
        check_count("batch", self.batch)


def keys_attended(first: int, last: int, window: int | None) -> int:
    """``sum(min(t, window) for t in first..last)``: keys attended by positions first..last.

    Closed form; 0 when ``last < first``.
    """
    if last < first:
        return 0
    if window is None or window >= last:
        return (first + last) * (last - first + 1) // 2
    if window < first:
        return window * (last - first + 1)
    below = (first + window) * (window - first + 1) // 2  # positions first..window see t keys
    return below + window * (last - window)


def prefill_pairs(chunk: PrefillChunk, window: int | None, convention: Convention) -> int:
    """Query-key pairs one sequence of the chunk scores in a layer with this window."""
    n, c = chunk.new_tokens, chunk.cached_tokens
    if convention == "causal":
        return keys_attended(c + 1, c + n, window)
    context = c + n if window is None else min(c + n, window)
    return n * context


def lm_head_rows_prefill(chunk: PrefillChunk, convention: Convention) -> int:
    """Rows the LM head computes for one sequence of the chunk."""
    if convention == "palm":
        return chunk.new_tokens
    return 1 if chunk.samples else 0
