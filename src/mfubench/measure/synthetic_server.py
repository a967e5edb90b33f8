"""Synthetic: no model. A local OpenAI-compatible streaming server for client benchmarks and faults.

It answers ``POST /v1/completions`` (streamed as Server-Sent Events, vLLM's chunk shape, the
usage chunk when ``stream_options.include_usage`` asks, then ``data: [DONE]``), ``GET
/v1/models``, ``/health``, ``/version`` and ``/metrics`` (vLLM-named token counters). It
computes nothing: each request gets ``max_tokens`` chunks of text ``" x"``.

Its tokenizer is synthetic too: a text prompt has as many tokens as whitespace-separated words.
``POST /tokenize`` (``{"prompt"}`` → ``{"count", "tokens"}``; word ``t<id>`` is id ``<id>``, any
other word 0) and ``POST /detokenize`` (``{"tokens"}`` → ``{"prompt": "t<id> t<id> ..."}``)
answer in vLLM's shape. With ``text_only`` it refuses token-id prompts (HTTP 400), as servers
that take text only do.

Timing, like an engine with continuous batching: a request joins the running set ``ttft_s``
after it arrived; one *step* then writes the next chunk of every running stream; steps follow
each other every ``itl_s`` seconds (on a fixed schedule), or as fast as the server can go when
``itl_s`` is 0. A stream whose socket is full (the client is not reading) skips steps until it
drains, so a slow client gets fewer tokens, never an unbounded buffer.

The server stamps its own times on ``time.monotonic_ns()`` (``CLOCK_MONOTONIC``: one clock for
every process of a Linux machine): when each request arrived and when each chunk carrying a
token was handed to the socket. With ``trace`` on, ``GET /synthetic/trace`` returns and clears
them, keyed by the first eight prompt token ids, so a benchmark can compute the latency its
client adds (arrival at the client − send by the server).

Faults, for the robustness tests, by request number (1-based, over completion requests):
``http429``, ``http500``, ``http503`` (an error status and a JSON error body), ``hang`` (read
the request, never answer), ``truncate`` (half the tokens, a partial event, a clean end without
``[DONE]``), ``malformed`` (a chunk that is not JSON), ``huge`` (a valid chunk of several MB),
``abort`` (reset the connection mid-stream), ``kill`` (the server process exits mid-stream).

With ``api_key`` set, ``/v1/*`` routes demand ``Authorization: Bearer <key>`` (401 otherwise).

It is written on bare ``asyncio`` (HTTP/1.1, keep-alive, chunked transfer encoding) so that
the server costs far less per token than any client it measures:

    python -m mfubench.measure.synthetic_server --port 8001 [--itl-ms 0] [--ttft-ms 0]
        [--fault KIND@N | KIND@N+ ...] [--api-key-env VAR] [--trace] [--text-only] [--port-file PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAULTS = ("http429", "http500", "http503", "hang", "truncate", "malformed", "huge", "abort", "kill")
MODEL_NAME = "synthetic-no-model"
HUGE_CHUNK_BYTES = 4 * 1024 * 1024
_TOKEN_ID = 100
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(frozen=True)
class FaultRule:
    """``kind`` for request ``number`` (and every later one when ``onwards``)."""

    kind: str
    number: int
    onwards: bool = False

    def matches(self, n: int) -> bool:
        return n == self.number or (self.onwards and n >= self.number)


def parse_fault(text: str) -> FaultRule:
    """``"http500@3"`` (request 3) or ``"http500@3+"`` (3 and later) as a :class:`FaultRule`."""
    kind, sep, where = text.partition("@")
    onwards = where.endswith("+")
    try:
        number = int(where.rstrip("+")) if sep else 1
    except ValueError:
        raise ValueError(f"fault {text!r}: expected KIND@N or KIND@N+") from None
    if kind not in FAULTS or number < 1:
        raise ValueError(f"fault {text!r}: kind must be one of {', '.join(FAULTS)}, N >= 1")
    return FaultRule(kind, number, onwards)


@dataclass
class SyntheticConfig:
    """What the server does.

    Attributes:
        itl_s: seconds between steps (0: as fast as possible).
        ttft_s: seconds from a request's arrival to its joining the running set.
        faults: which requests misbehave, and how.
        api_key: the bearer token ``/v1/*`` demands (None: open).
        trace: keep per-request send times for ``GET /synthetic/trace``.
        burst: with ``itl_s`` 0, chunks written per stream and step (in one socket write), so
            that the server outruns the client it measures.
        text_only: refuse token-id prompts (HTTP 400), like a server that takes text only.
    """

    itl_s: float = 0.0
    ttft_s: float = 0.0
    faults: list[FaultRule] = field(default_factory=list)
    api_key: str | None = None
    trace: bool = False
    burst: int = 1
    text_only: bool = False


def synthetic_tokenize(text: str) -> list[int]:
    """The synthetic tokenizer: one token per whitespace-separated word; ``t<id>`` is ``<id>``."""
    return [int(w[1:]) if w[:1] == "t" and w[1:].isdigit() else 0 for w in text.split()]


def synthetic_detokenize(ids: list[int]) -> str:
    """The inverse of :func:`synthetic_tokenize`: ``"t<id> t<id> ..."``."""
    return " ".join(f"t{i}" for i in ids)


class _Stream:
    """One running completion: its connection, what is left to send, its trace."""

    __slots__ = ("conn", "left", "total", "token_chunk", "last_chunk", "tail", "fault", "sent_ns", "key",
                 "received_ns", "prompt_tokens")

    def __init__(self, conn: _Connection, total: int, body: Mapping[str, Any], fault: str | None,
                 received_ns: int) -> None:
        self.conn = conn
        self.total = self.left = total
        prompt = body.get("prompt")
        ids = prompt if isinstance(prompt, list) else None
        self.prompt_tokens = len(ids) if ids is not None else len(str(prompt or "").split())
        self.key = ",".join(str(t) for t in ids[:8]) if ids is not None else str(prompt)[:64]
        with_ids = bool(body.get("return_token_ids"))
        self.token_chunk, self.last_chunk = _TOKEN_CHUNKS[with_ids]
        options = body.get("stream_options")
        usage = isinstance(options, dict) and bool(options.get("include_usage"))
        self.tail = _tail(self.prompt_tokens, total, usage)
        self.fault = fault
        self.sent_ns: list[int] = []
        self.received_ns = received_ns


def _tail(prompt_tokens: int, total: int, usage: bool) -> bytes:
    """The usage chunk (when asked), ``[DONE]`` and the end of the chunked body."""
    body = b"data: [DONE]\n\n"
    if usage:
        body = _event({"id": "cmpl-synthetic", "object": "text_completion", "created": 0, "model": MODEL_NAME,
                       "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": total,
                                                "total_tokens": prompt_tokens + total}}) + body
    return _frame(body) + b"0\r\n\r\n"


def _chunk(finish: str | None, with_ids: bool) -> bytes:
    choice: dict[str, Any] = {"index": 0, "text": " x", "logprobs": None, "finish_reason": finish,
                              "stop_reason": None}
    if with_ids:
        choice["token_ids"] = [_TOKEN_ID]
    return _event({"id": "cmpl-synthetic", "object": "text_completion", "created": 0, "model": MODEL_NAME,
                   "choices": [choice]})


def _event(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _frame(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk of ``payload`` (chunked transfer encoding)."""
    return b"%x\r\n%s\r\n" % (len(payload), payload) if payload else b""


#: The framed token chunk and last chunk, without and with ``token_ids``: built once.
_TOKEN_CHUNKS = {w: (_frame(_chunk(None, w)), _frame(_chunk("length", w))) for w in (False, True)}


class SyntheticEngine:
    """The step loop and the server's state (counters, traces, request numbers)."""

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        self.running: list[_Stream] = []
        self.requests = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.traces: list[dict[str, Any]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def fault_for(self, number: int) -> str | None:
        for rule in self.config.faults:
            if rule.matches(number):
                return rule.kind
        return None

    def admit(self, stream: _Stream) -> None:
        """Add ``stream`` to the running set after the configured TTFT."""
        loop = asyncio.get_running_loop()
        if self.config.ttft_s > 0:
            loop.call_later(self.config.ttft_s, self._join, stream)
        else:
            self._join(stream)

    def _join(self, stream: _Stream) -> None:
        if stream.conn.closed:
            return
        self.running.append(stream)
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._steps())

    async def _steps(self) -> None:
        itl = self.config.itl_s
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            if not self.running:
                assert self._wake is not None
                self._wake.clear()
                await self._wake.wait()
                next_at = loop.time()
            wrote = self._step()
            if itl > 0:
                next_at += itl
                await asyncio.sleep(max(0.0, next_at - loop.time()))
            elif wrote:
                await asyncio.sleep(0)
            else:  # every socket is full: wait for one to drain
                assert self._wake is not None
                self._wake.clear()
                await self._wake.wait()

    def _step(self) -> bool:
        """Write the next chunk of every running stream whose socket has room."""
        wrote = False
        keep: list[_Stream] = []
        trace = self.config.trace
        burst = self.config.burst if self.config.itl_s <= 0 else 1
        running, self.running = self.running, []  # streams that join during the step wait for the next
        for s in running:
            conn = s.conn
            if conn.closed:
                continue
            if conn.paused:
                keep.append(s)
                continue
            wrote = True
            n = s.total - s.left
            if s.fault is not None and n == s.total // 2 and self._fault_mid_stream(s):
                continue
            k = min(burst, s.left - 1) if s.fault is None else 1
            if k > 1:
                s.left -= k
                conn.transport.write(s.token_chunk * k)
                if trace:
                    s.sent_ns.extend([time.monotonic_ns()] * k)
                keep.append(s)
                continue
            s.left -= 1
            conn.transport.write(s.token_chunk if s.left else s.last_chunk)
            if trace:
                s.sent_ns.append(time.monotonic_ns())
            if s.left:
                keep.append(s)
            else:
                self.prompt_tokens += s.prompt_tokens
                self.generation_tokens += s.total
                if trace:
                    self.traces.append({"key": s.key, "received_ns": s.received_ns, "sent_ns": s.sent_ns})
                conn.transport.write(s.tail)
                conn.stream_done()
        self.running = keep + self.running
        return wrote

    def _fault_mid_stream(self, s: _Stream) -> bool:
        """Apply a mid-stream fault; True when the stream is over."""
        fault, s.fault = s.fault, None
        transport = s.conn.transport
        if fault == "kill":
            os._exit(17)
        if fault == "abort":
            s.conn.closed = True
            transport.abort()
            return True
        if fault == "truncate":
            transport.write(_frame(b'data: {"choices": [{"index": 0, "te') + b"0\r\n\r\n")
            s.conn.closed = True
            transport.close()
            return True
        if fault == "malformed":
            transport.write(_frame(b"data: {this is not json}\n\n"))
        elif fault == "huge":
            text = "x" * HUGE_CHUNK_BYTES
            big = {"id": "cmpl-synthetic", "object": "text_completion", "created": 0, "model": MODEL_NAME,
                   "choices": [{"index": 0, "text": text, "finish_reason": None, "token_ids": [_TOKEN_ID]}]}
            transport.write(_frame(_event(big)))
            s.left -= 1
            if self.config.trace:
                s.sent_ns.append(time.monotonic_ns())
        return False

    def resumed(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def metrics(self) -> bytes:
        labels = f'{{engine="0",model_name="{MODEL_NAME}"}}'
        return (
            "# TYPE vllm:prompt_tokens_total counter\n"
            f"vllm:prompt_tokens_total{labels} {float(self.prompt_tokens)}\n"
            "# TYPE vllm:generation_tokens_total counter\n"
            f"vllm:generation_tokens_total{labels} {float(self.generation_tokens)}\n"
        ).encode()


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: requests in order, keep-alive, one streamed answer at a time."""

    def __init__(self, engine: SyntheticEngine) -> None:
        self.engine = engine
        self.buffer = bytearray()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.paused = False
        self.closed = False
        self.busy = False
        self.arrived_ns = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.engine.resumed()

    def data_received(self, data: bytes) -> None:
        if not self.buffer:  # the first bytes of a request: its arrival, before any parsing
            self.arrived_ns = time.monotonic_ns()
        self.buffer += data
        # parse after every socket of this wake-up has been stamped, so that a burst of requests
        # is not stamped late by the server's own work on the ones before
        asyncio.get_running_loop().call_soon(self._next_request)

    def stream_done(self) -> None:
        self.busy = False
        self._next_request()

    def _next_request(self) -> None:
        while not self.busy and not self.closed:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self.buffer[:head_end]).decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, target, _ = lines[0].split(" ", 2)
            except ValueError:
                self._reply(400, b'{"error": "bad request line"}')
                self.transport.close()
                self.closed = True
                return
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(self.buffer) < head_end + 4 + length:
                return
            body = bytes(self.buffer[head_end + 4 : head_end + 4 + length])
            del self.buffer[: head_end + 4 + length]
            if self.buffer:  # a pipelined request already waits: it arrived with these bytes
                self.arrived_ns = self.arrived_ns or time.monotonic_ns()
            self._handle(method, target.split("?", 1)[0], headers, body)

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.transport.write(head + body)

    def _handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> None:
        engine = self.engine
        key = engine.config.api_key
        if key is not None and path.startswith("/v1/") and headers.get("authorization") != f"Bearer {key}":
            self._reply(401, b'{"error": {"message": "missing or wrong API key", "code": 401}}')
            return
        if method == "GET":
            self._get(path)
        elif method == "POST" and path == "/v1/completions":
            self._complete(body)
        elif method == "POST" and path in ("/tokenize", "/detokenize"):
            self._tokenizer(path, body)
        else:
            self._reply(404, b'{"error": "not found"}')

    def _get(self, path: str) -> None:
        engine = self.engine
        if path == "/health":
            self._reply(200, b"")
        elif path == "/version":
            self._reply(200, json.dumps({"version": MODEL_NAME}).encode())
        elif path == "/v1/models":
            self._reply(200, json.dumps({"object": "list", "data": [{"id": MODEL_NAME, "object": "model"}]}).encode())
        elif path == "/metrics":
            self._reply(200, engine.metrics(), "text/plain; version=0.0.4")
        elif path == "/synthetic/trace":
            traces, engine.traces = engine.traces, []
            self._reply(200, json.dumps(traces).encode())
        else:
            self._reply(404, b'{"error": "not found"}')

    def _tokenizer(self, path: str, raw: bytes) -> None:
        """``/tokenize`` and ``/detokenize`` of the synthetic tokenizer, in vLLM's shape."""
        try:
            body = json.loads(raw)
            if path == "/tokenize":
                tokens = synthetic_tokenize(str(body["prompt"]))
                reply: dict[str, Any] = {"count": len(tokens), "max_model_len": 1 << 20, "tokens": tokens}
            else:
                reply = {"prompt": synthetic_detokenize([int(t) for t in body["tokens"]])}
        except (ValueError, TypeError, KeyError):
            self._reply(400, b'{"error": {"message": "malformed tokenizer request"}}')
            return
        self._reply(200, json.dumps(reply).encode())

    def _complete(self, raw: bytes) -> None:
        received_ns = self.arrived_ns or time.monotonic_ns()
        engine = self.engine
        engine.requests += 1
        fault = engine.fault_for(engine.requests)
        try:
            body = json.loads(raw)
            total = int(body.get("max_tokens", 16))
        except (ValueError, TypeError, AttributeError):
            self._reply(400, b'{"error": {"message": "body is not a JSON object with max_tokens"}}')
            return
        if engine.config.text_only and isinstance(body.get("prompt"), list):
            self._reply(400, b'{"error": {"message": "this server takes text prompts only", "code": 400}}')
            return
        if fault in ("http429", "http500", "http503"):
            status = int(fault[4:])
            self._reply(status, json.dumps({"error": {"message": f"synthetic {fault}", "code": status}}).encode())
            return
        self.busy = True
        if fault == "hang":
            return  # read, never answered: the connection stays busy
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
        engine.admit(_Stream(self, max(1, total), body, fault, received_ns))


async def serve(config: SyntheticConfig, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """Start listening; the caller runs the loop (``server.sockets[0]`` has the port)."""
    engine = SyntheticEngine(config)
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Connection(engine), host, port, backlog=4096)


class SyntheticServer:
    """The server on a thread of its own (for tests in the same process): ``.url``, ``.close()``."""

    def __init__(self, config: SyntheticConfig | None = None) -> None:
        self.config = config or SyntheticConfig()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="synthetic-server")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("synthetic server did not start")
        assert self._server is not None
        self.url: str = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(serve(self.config))
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:  # the step loop: ended here, not destroyed pending with the loop
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> SyntheticServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mfubench.measure.synthetic_server", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    p.add_argument("--itl-ms", type=float, default=0.0, help="ms between steps (0: as fast as possible)")
    p.add_argument("--ttft-ms", type=float, default=0.0, help="ms from arrival to the first step")
    p.add_argument("--fault", action="append", default=[], type=parse_fault, metavar="KIND@N[+]")
    p.add_argument("--api-key-env", metavar="VAR", help="demand the key held by this variable")
    p.add_argument("--trace", action="store_true", help="keep send times for GET /synthetic/trace")
    p.add_argument("--burst", type=int, default=1, help="with --itl-ms 0: chunks per stream and step")
    p.add_argument("--text-only", action="store_true", help="refuse token-id prompts (HTTP 400)")
    p.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    args = p.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and not key:
        print(f"synthetic server: {args.api_key_env} is not set", file=sys.stderr)
        return 2
    config = SyntheticConfig(args.itl_ms / 1e3, args.ttft_ms / 1e3, args.fault, key, args.trace, max(1, args.burst),
                             args.text_only)

    async def go() -> None:
        server = await serve(config, args.host, args.port)
        port = server.sockets[0].getsockname()[1]
        if args.port_file is not None:
            tmp = args.port_file.with_name(args.port_file.name + ".tmp")
            tmp.write_text(str(port))
            tmp.replace(args.port_file)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
