"""An incremental Server-Sent-Events parser over byte chunks (pure; no I/O).

Feed it the body of a ``text/event-stream`` response in whatever chunks the network delivers;
it returns each complete event once its terminating blank line has arrived. It follows the
WHATWG event-stream rules that matter for LLM servers:

- lines end with ``\\r\\n``, ``\\n`` or ``\\r``, and a ``\\r\\n`` split across two chunks is one
  line end;
- lines are cut on bytes before decoding, so a UTF-8 character split across chunks is whole;
  invalid UTF-8 decodes with U+FFFD, as the standard says;
- lines starting with ``:`` are comments (keep-alives) and are dropped;
- ``data:`` lines of one event join with ``\\n``; one space after the colon is removed;
- ``event:`` and ``id:`` are kept; ``retry:`` and unknown fields are ignored;
- an event with no ``data`` line is not dispatched;
- an event (its pending line plus its data) over ``max_event_bytes`` raises
  :class:`SSEError`, so a hostile server cannot grow the buffer without bound.

``data: [DONE]`` is an ordinary event here; its meaning belongs to the OpenAI client.
"""

from __future__ import annotations

from typing import NamedTuple

#: Default cap on one event: 16 MiB, far above any completion chunk.
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


class SSEError(ValueError):
    """The byte stream is not a valid event stream (or an event exceeds the size limit)."""


class SSEEvent(NamedTuple):
    """One dispatched event: its ``data`` (lines joined by newlines), type and last id.

    A named tuple, not a dataclass: one is made per streamed token, and a tuple is the
    cheapest immutable record Python builds."""

    data: str
    event: str = "message"
    id: str | None = None


class SSEParser:
    """Incremental parser: ``feed(chunk)`` returns the events completed by ``chunk``.

    Call :meth:`close` at the end of the stream: it returns nothing (an unterminated event is
    dropped, as the standard says) but tells whether such a partial event was left over
    (:attr:`truncated`).
    """

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if max_event_bytes < 1:
            raise ValueError("max_event_bytes must be positive")
        self.max_event_bytes = max_event_bytes
        self._buffer = bytearray()
        self._pending_cr = False  # the previous chunk ended in "\r": skip one leading "\n"
        self._data: list[str] = []
        self._data_bytes = 0
        self._event_type = ""
        self._last_id: str | None = None
        self._has_fields = False
        self.truncated = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk`` and return the events it completed, in order."""
        if not chunk:
            return []
        if self._pending_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._pending_cr = False
        buf = self._buffer
        buf += chunk
        events = self._feed_general() if b"\r" in buf else self._feed_lf()
        if len(self._buffer) + self._data_bytes > self.max_event_bytes:
            raise SSEError(f"event larger than {self.max_event_bytes} bytes")
        return events

    def _feed_lf(self) -> list[SSEEvent]:
        """The hot path (one call per network read): every line ends in ``\\n``, so split once
        and handle ``data:`` lines and blank lines inline."""
        lines = self._buffer.split(b"\n")
        self._buffer = lines.pop()  # the unterminated rest
        events: list[SSEEvent] = []
        data = self._data
        limit = self.max_event_bytes
        for raw in lines:
            if raw[:6] == b"data: ":
                data.append(raw[6:].decode("utf-8", errors="replace"))
                self._data_bytes += len(raw)
                self._has_fields = True
                if self._data_bytes > limit:
                    raise SSEError(f"event larger than {limit} bytes")
            elif not raw:
                if data:
                    events.append(SSEEvent("\n".join(data), self._event_type or "message", self._last_id))
                self._reset_event()
                data = self._data
            else:
                event = self._line(bytes(raw))
                if event is not None:
                    events.append(event)
                data = self._data
        return events

    def _feed_general(self) -> list[SSEEvent]:
        """Any mix of ``\\r\\n``, ``\\n`` and ``\\r`` line ends."""
        events: list[SSEEvent] = []
        buf = self._buffer
        pos = scan = 0
        while True:
            end = _line_end(buf, scan)
            if end < 0:
                break
            line = bytes(buf[pos:end])
            if buf[end] == 0x0D:  # "\r": maybe "\r\n"
                if end + 1 < len(buf):
                    step = 2 if buf[end + 1] == 0x0A else 1
                else:
                    self._pending_cr = True
                    step = 1
            else:
                step = 1
            pos = scan = end + step
            event = self._line(line)
            if event is not None:
                events.append(event)
        del buf[:pos]
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: drop any unterminated event; set :attr:`truncated` if there was one."""
        self.truncated = bool(self._buffer) or self._has_fields
        self._buffer.clear()
        self._reset_event()
        return []

    def _line(self, raw: bytes) -> SSEEvent | None:
        if not raw:
            return self._dispatch()
        if raw[:1] == b":":
            return None  # comment / keep-alive
        line = raw.decode("utf-8", errors="replace")
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_bytes += len(raw)
            self._has_fields = True
            if self._data_bytes > self.max_event_bytes:
                raise SSEError(f"event larger than {self.max_event_bytes} bytes")
        elif name == "event":
            self._event_type = value
            self._has_fields = True
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
            self._has_fields = True
        return None  # "retry" and unknown fields are ignored

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._reset_event()
            return None
        event = SSEEvent(data="\n".join(self._data), event=self._event_type or "message", id=self._last_id)
        self._reset_event()
        return event

    def _reset_event(self) -> None:
        self._data = []
        self._data_bytes = 0
        self._event_type = ""
        self._has_fields = False


def _line_end(buf: bytearray, start: int) -> int:
    """Index of the first ``\\r`` or ``\\n`` at or after ``start``, or -1."""
    n = buf.find(b"\n", start)
    r = buf.find(b"\r", start, n if n >= 0 else len(buf))
    return r if r >= 0 else n
