"""The usual completion chunk decoded into typed structs with msgspec (several times faster than
``json.loads`` into dicts, on the client's hot path). Importing this module fails without msgspec;
the client then keeps to ``json``.

:func:`decode_chunk` answers ``(usage, choices, timings)`` for a chunk of the usual shape and None for
anything else (an error object, malformed JSON, no ``choices`` list of objects), which the
client then reads on its general path, with its exact checks and messages.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Choice(msgspec.Struct):
    """One choice of a chunk: only what the client reads (unknown fields are skipped)."""

    text: Any = None
    token_ids: Any = None
    finish_reason: Any = None


class Chunk(msgspec.Struct):
    """A completion chunk; ``error`` stays UNSET unless the server sent an error object."""

    choices: list[Choice]
    usage: Any = None
    timings: Any = None  # llama.cpp's engine-side times, on its last chunk
    error: Any = msgspec.UNSET
    object: Any = None


_decode = msgspec.json.Decoder(Chunk).decode


def decode_chunk(data: str) -> tuple[Any, list[Choice], Any] | None:
    """``(usage, choices, timings)`` of a usual chunk; None for anything the general path must judge."""
    try:
        chunk = _decode(data)
    except msgspec.DecodeError:  # malformed, or another shape (ValidationError)
        return None
    if chunk.error is not msgspec.UNSET or chunk.object == "error":
        return None
    return chunk.usage, chunk.choices, chunk.timings
