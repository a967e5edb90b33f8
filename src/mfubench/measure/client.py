"""An async streaming client for OpenAI-compatible ``POST /v1/completions`` (vLLM first).

One call of :meth:`CompletionClient.complete` sends one prompt of exact length (token ids, or a
:class:`TextPrompt` whose text was aligned to its length, see :mod:`mfubench.measure.prompts`) and
asks for exactly ``O`` tokens (``max_tokens = min_tokens = O``, ``ignore_eos``), streamed with
the usage chunk (``stream_options.include_usage``) and vLLM's ``return_token_ids``. It returns
one :class:`RequestRecord` and never raises: connection refused, HTTP error statuses, time-outs,
malformed chunks, an error object in the stream and a stream that ends without ``[DONE]`` or
usage all become the record's ``error`` (with ``error_kind`` saying which).

Timing is on one monotonic clock (``time.monotonic``, ``CLOCK_MONOTONIC`` on Linux: one clock for
every process of the machine, so records of several client processes merge):

- ``ttft_s`` = arrival of the first chunk carrying a token − send time;
- ``itl_s`` = for every later token, its arrival − the previous token's arrival; a chunk that
  carries ``k`` token ids (two engine steps merged in transit) contributes one gap and ``k − 1``
  zeros, exactly as observed, so ``sum(itl_s)`` = last token − first token;
- ``e2e_s`` = arrival of ``[DONE]`` − send time.

Token *counts* come from ``usage`` only, never from counting chunks; per-chunk ``token_ids``
only place token arrivals in time. Where a server sends no ``token_ids``, a chunk with
non-empty text stands for one token in the timing (``streamed_tokens`` then undercounts merged
chunks, which the sweep sees by comparing it with usage).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import aiohttp

from mfubench.errors import ServerError
from mfubench.measure.engine import LLAMA_CPP, OPENAI, VLLM, Engine, from_props
from mfubench.measure.sse import DEFAULT_MAX_EVENT_BYTES, SSEError, SSEParser

#: ``error_kind`` values of a :class:`RequestRecord`.
ERROR_KINDS = ("connect", "http", "timeout", "disconnect", "protocol", "server")

_EXCERPT_CHARS = 300

_fast_chunk: Callable[[str], tuple[Any, list[Any], Any] | None] | None
try:  # msgspec where installed (it comes with vLLM): the hot path's chunk decoder
    from mfubench.measure.fast_chunk import decode_chunk as _fast_chunk
except ImportError:
    _fast_chunk = None

T = TypeVar("T")


@dataclass(frozen=True)
class TextPrompt:
    """A prompt sent as text, for servers that take no token ids.

    Attributes:
        text: what goes in the body's ``prompt``.
        tokens: how many tokens the server's tokenizer makes of ``text`` (special tokens it
            adds included): the length it was aligned to, and what ``usage`` should report.
    """

    text: str
    tokens: int


Prompt = Sequence[int] | TextPrompt
"""What one request sends: token ids (their count is the length) or an aligned text."""


def prompt_tokens(prompt: Prompt) -> int:
    """The prompt's length in tokens, as asked of the server."""
    return prompt.tokens if isinstance(prompt, TextPrompt) else len(prompt)


@dataclass(frozen=True)
class RequestRecord:
    """What one streamed completion request did.

    Attributes:
        batch_size: requests of its batch (sent at once).
        requested_input_tokens: prompt length sent (token ids, or an aligned text's tokens).
        requested_output_tokens: tokens asked for (``max_tokens = min_tokens``).
        input_tokens: ``usage.prompt_tokens``; None without usage.
        output_tokens: ``usage.completion_tokens``; None without usage.
        streamed_tokens: token ids seen in the stream's chunks (a cross-check of usage).
        sent_s: ``time.monotonic()`` when the request's body was handed to the socket
            (``CLOCK_MONOTONIC``: comparable across the processes of one Linux machine, for
            aligning the requests of a batch); TTFT and end-to-end count from here.
        send_lag_s: how late the request went out: ``sent_s`` − the time it was asked to go
            (the client's own delay, e.g. while it sent the rest of a large batch).
        ttft_s: seconds from sending to the first token; None if none came.
        itl_s: seconds between consecutive tokens (one per token after the first).
        e2e_s: seconds from sending to ``[DONE]`` (to the failure when there was an error).
        finish_reason: the choice's ``finish_reason`` (``"length"`` when the count was reached).
        error: one line saying what went wrong, or None.
        error_kind: one of :data:`ERROR_KINDS`, or None.
        http_status: the status of a non-200 answer (429, 503: worth a retry; 4xx: not).
        engine_prefill_s / engine_decode_s: the engine's own times of the request's prefill
            and decode, where it reports them (llama.cpp's ``timings.prompt_ms`` and
            ``predicted_ms``); None otherwise.
    """

    batch_size: int
    requested_input_tokens: int
    requested_output_tokens: int
    input_tokens: int | None = None
    output_tokens: int | None = None
    streamed_tokens: int = 0
    sent_s: float = 0.0
    send_lag_s: float = 0.0
    ttft_s: float | None = None
    itl_s: tuple[float, ...] = ()
    e2e_s: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    error_kind: str | None = None
    http_status: int | None = None
    engine_prefill_s: float | None = None
    engine_decode_s: float | None = None

    @property
    def first_token_at_s(self) -> float | None:
        """``time.monotonic()`` of the first token."""
        return None if self.ttft_s is None else self.sent_s + self.ttft_s

    @property
    def done_at_s(self) -> float | None:
        """``time.monotonic()`` of ``[DONE]`` (or of the failure)."""
        return None if self.e2e_s is None else self.sent_s + self.e2e_s

    @property
    def merged_first_chunk(self) -> bool:
        """True when the first chunk carried several tokens: decode steps reached the client
        together with the first token, so ``ttft_s`` includes them and the stream cannot
        separate prefill from decode (a busy server or client)."""
        return bool(self.itl_s) and self.itl_s[0] == 0.0

    @property
    def exact(self) -> bool:
        """True when the request succeeded with exactly the asked counts and ``length``."""
        return (
            self.error is None
            and self.input_tokens == self.requested_input_tokens
            and self.output_tokens == self.requested_output_tokens
            and self.finish_reason == "length"
        )

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (``itl_s`` as a list)."""
        return {
            "batch_size": self.batch_size,
            "requested_input_tokens": self.requested_input_tokens,
            "requested_output_tokens": self.requested_output_tokens,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "streamed_tokens": self.streamed_tokens,
            "send_lag_s": self.send_lag_s,
            "ttft_s": self.ttft_s,
            "itl_s": list(self.itl_s),
            "e2e_s": self.e2e_s,
            "finish_reason": self.finish_reason,
            "error": self.error,
            "error_kind": self.error_kind,
            "http_status": self.http_status,
            "engine_prefill_s": self.engine_prefill_s,
            "engine_decode_s": self.engine_decode_s,
        }


@dataclass
class StreamRecorder:
    """Builds a :class:`RequestRecord` from the events of one stream (pure; times passed in).

    Call :meth:`on_data` with each event's data and its arrival time, then :meth:`finish`.
    """

    batch_size: int
    requested_input_tokens: int
    requested_output_tokens: int
    sent_s: float
    planned_s: float | None = None
    first_token_s: float | None = None
    last_token_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    streamed_tokens: int = 0
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    finish_reason: str | None = None
    done_s: float | None = None
    error: str | None = None
    error_kind: str | None = None
    http_status: int | None = None

    def on_data(self, data: str, now_s: float) -> bool:
        """Consume one event's data; return True when the stream is over (``[DONE]``/error)."""
        if self.done_s is not None or self.error is not None:
            return True
        if _fast_chunk is not None and data[:1] == "{":
            fast = _fast_chunk(data)
            if fast is not None:
                if isinstance(fast[0], dict):
                    self.usage = fast[0]
                if isinstance(fast[2], dict):
                    self.timings = fast[2]
                for choice in fast[1]:
                    ids = choice.token_ids
                    count = len(ids) if isinstance(ids, list) else int(isinstance(choice.text, str) and bool(choice.text))
                    if count:
                        self._tokens(count, now_s)
                    if choice.finish_reason is not None:
                        self.finish_reason = str(choice.finish_reason)
                return False
        if data == "[DONE]" or data.strip() == "[DONE]":
            self.done_s = now_s
            return True
        try:
            chunk = _loads(data)
        except json.JSONDecodeError:
            return self.fail("protocol", f"malformed chunk (not JSON): {_excerpt(data)}", now_s)
        if not isinstance(chunk, dict):
            return self.fail("protocol", f"malformed chunk (not an object): {_excerpt(data)}", now_s)
        if "error" in chunk or chunk.get("object") == "error":
            return self.fail("server", f"error in stream: {_error_message(chunk)}", now_s)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        if isinstance(chunk.get("timings"), dict):
            self.timings = chunk["timings"]
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return self.fail("protocol", f"malformed chunk (no choices): {_excerpt(data)}", now_s)
        for choice in choices:
            if not isinstance(choice, dict):
                return self.fail("protocol", f"malformed choice: {_excerpt(data)}", now_s)
            self._tokens(_tokens_in(choice), now_s)
            if choice.get("finish_reason") is not None:
                self.finish_reason = str(choice["finish_reason"])
        return False

    def _tokens(self, count: int, now_s: float) -> None:
        if count <= 0:
            return
        if self.first_token_s is None:
            self.first_token_s = now_s
            self.itl_s.extend([0.0] * (count - 1))
        else:
            assert self.last_token_s is not None
            self.itl_s.append(now_s - self.last_token_s)
            self.itl_s.extend([0.0] * (count - 1))
        self.last_token_s = now_s
        self.streamed_tokens += count

    def fail(self, kind: str, message: str, now_s: float) -> bool:
        """Record the first failure (later ones are consequences); return True."""
        if self.error is None:
            self.error_kind = kind
            self.error = message
            self.done_s = now_s
        return True

    def finish(self, now_s: float, truncated: bool = False) -> RequestRecord:
        """The record; a stream that ended without ``[DONE]`` or usage is an error."""
        if self.error is None:
            if self.done_s is None:
                why = "a partial event" if truncated else "no [DONE]"
                self.fail("protocol", f"stream ended without [DONE] ({why})", now_s)
            elif self.usage is None:
                self.fail("protocol", "stream ended without a usage chunk", now_s)
        usage = self.usage or {}
        end_s = self.done_s if self.done_s is not None else now_s
        return RequestRecord(
            batch_size=self.batch_size,
            requested_input_tokens=self.requested_input_tokens,
            requested_output_tokens=self.requested_output_tokens,
            input_tokens=_int_or_none(usage.get("prompt_tokens")),
            output_tokens=_int_or_none(usage.get("completion_tokens")),
            streamed_tokens=self.streamed_tokens,
            sent_s=self.sent_s,
            send_lag_s=0.0 if self.planned_s is None else max(0.0, self.sent_s - self.planned_s),
            ttft_s=None if self.first_token_s is None else self.first_token_s - self.sent_s,
            itl_s=tuple(self.itl_s),
            e2e_s=end_s - self.sent_s,
            finish_reason=self.finish_reason,
            error=self.error,
            error_kind=self.error_kind,
            http_status=self.http_status,
            engine_prefill_s=_ms_or_none(self.timings, "prompt_ms"),
            engine_decode_s=_ms_or_none(self.timings, "predicted_ms"),
        )


def _ms_or_none(timings: dict[str, Any] | None, key: str) -> float | None:
    """``timings[key]`` milliseconds in seconds; None when absent or not a finite number >= 0."""
    value = (timings or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e12:
        return None
    return float(value) / 1e3


def completion_body(model: str, prompt: Prompt, output_tokens: int, engine: Engine = VLLM) -> dict[str, Any]:
    """The request body asking for exactly ``output_tokens`` tokens after ``prompt``, streamed,
    in ``engine``'s dialect (:mod:`mfubench.measure.engine`)."""
    return engine.body({
        "model": model,
        "prompt": prompt.text if isinstance(prompt, TextPrompt) else list(prompt),
        "max_tokens": output_tokens,
        "min_tokens": output_tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
        "return_token_ids": True,
    })


def default_token_range(vocab_size: int) -> tuple[int, int]:
    """Ids ``[low, high)`` to draw prompts from: clear of special tokens at either end.

    Tokenizers put their special tokens first (Llama 2, the tiny model: ids 0–2) or last
    (Llama 3, Qwen: above 90 % of the config's vocab, which may also exceed the tokenizer's
    own size), so prompts use ids from ``min(1000, vocab/8)`` up to 90 % of the vocab.
    """
    if vocab_size < 16:
        raise ValueError(f"vocab_size too small to draw prompts from: {vocab_size}")
    return min(1000, vocab_size // 8), int(vocab_size * 0.9)


def random_prompt(rng: random.Random, length: int, token_range: tuple[int, int]) -> list[int]:
    """``length`` token ids drawn uniformly from ``token_range`` (fresh per request, so that
    prefix caching cannot hide work)."""
    low, high = token_range
    return [rng.randrange(low, high) for _ in range(length)]


class CompletionClient:
    """A session against one server: streamed completions plus the small GET endpoints.

    Use as ``async with CompletionClient(url, model=...) as client:``. ``api_key`` is sent as
    ``Authorization: Bearer`` and never stored in records.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "",
        api_key: str | None = None,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.engine: Engine = VLLM  # what the server speaks: detect_engine() finds out
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
        self._max_event_bytes = max_event_bytes
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> CompletionClient:
        trace = aiohttp.TraceConfig()
        trace.on_request_chunk_sent.append(_stamp_sent)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), headers=self._headers, timeout=self._timeout,
            trace_configs=[trace],
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("CompletionClient used outside 'async with'")
        return self._session

    async def complete(self, prompt: Prompt, output_tokens: int, batch_size: int = 1) -> RequestRecord:
        """Stream one completion of exactly ``output_tokens`` tokens; never raises."""
        planned_s = time.monotonic()
        recorder = StreamRecorder(batch_size, prompt_tokens(prompt), output_tokens, planned_s, planned_s)
        parser = SSEParser(self._max_event_bytes)
        body = completion_body(self.model, prompt, output_tokens, self.engine)
        sent: dict[str, float] = {}
        try:
            async with self.session.post(f"{self.base_url}/v1/completions", json=body, trace_request_ctx=sent,
                                         headers=self.engine.headers or None) as resp:
                recorder.sent_s = sent.get("sent_s", planned_s)
                if resp.status != 200:
                    text = await resp.text(errors="replace")
                    recorder.http_status = resp.status
                    recorder.fail("http", f"HTTP {resp.status}: {_excerpt(text)}", time.monotonic())
                else:
                    await self._stream(resp, parser, recorder)
            parser.close()
        except SSEError as exc:
            recorder.fail("protocol", f"bad event stream: {exc}", time.monotonic())
        except aiohttp.ClientConnectorError as exc:
            recorder.fail("connect", f"cannot connect to {self.base_url}: {exc.os_error}", time.monotonic())
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            recorder.fail("disconnect", f"server closed the stream: {_one_line(exc)}", time.monotonic())
        except TimeoutError:
            recorder.fail("timeout", f"no complete answer within {self._timeout.total:.0f} s", time.monotonic())
        except aiohttp.ClientError as exc:
            recorder.fail("disconnect", f"{type(exc).__name__}: {_one_line(exc)}", time.monotonic())
        return recorder.finish(time.monotonic(), truncated=parser.truncated)

    @staticmethod
    async def _stream(resp: aiohttp.ClientResponse, parser: SSEParser, recorder: StreamRecorder) -> None:
        """The hot loop: one iteration per network read, one ``on_data`` per event."""
        on_data, feed, clock = recorder.on_data, parser.feed, time.monotonic
        async for chunk in resp.content.iter_any():
            now_s = clock()
            for event in feed(chunk):
                if on_data(event.data, now_s):
                    return

    async def get_json(self, path: str) -> Any:
        """``GET path`` as JSON; :class:`ServerError` on any failure."""
        text = await self.get_text(path)
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ServerError(f"{self.base_url}{path} did not answer JSON: {_excerpt(text)}") from exc

    async def get_text(self, path: str, timeout_s: float = 30.0) -> str:
        """``GET path`` as text; :class:`ServerError` on any failure."""
        return await self._request("GET", path, None, timeout_s)

    async def post_json(self, path: str, body: Any, timeout_s: float = 30.0) -> Any:
        """``POST path`` with a JSON body, answered as JSON; :class:`ServerError` on any failure."""
        text = await self._request("POST", path, body, timeout_s)
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ServerError(f"POST {self.base_url}{path} did not answer JSON: {_excerpt(text)}") from exc

    async def _request(self, method: str, path: str, body: Any, timeout_s: float) -> str:
        """One non-streaming request's text, every failure (refused, time-out, an HTTP status
        other than 200, a broken connection) as one :class:`ServerError` line."""
        url = f"{self.base_url}{path}"
        try:
            async with self.session.request(method, url, json=body,
                                            timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                text = await resp.text(errors="replace")
                if resp.status != 200:
                    raise ServerError(f"{method} {url}: HTTP {resp.status}: {_excerpt(text)}")
                return text
        except aiohttp.ClientConnectorError as exc:
            raise ServerError(f"cannot connect to {self.base_url}: {exc.os_error}") from exc
        except TimeoutError as exc:
            raise ServerError(f"{method} {url}: no answer within {timeout_s:.0f} s") from exc
        except aiohttp.ClientError as exc:
            raise ServerError(f"{method} {url}: {type(exc).__name__}: {_one_line(exc)}") from exc

    async def models(self) -> list[str]:
        """Ids of the models ``/v1/models`` lists."""
        reply = await self.get_json("/v1/models")
        data = reply.get("data") if isinstance(reply, dict) else None
        if not isinstance(data, list):
            raise ServerError(f"{self.base_url}/v1/models: no 'data' list in {_excerpt(json.dumps(reply))}")
        return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]

    async def version(self) -> str | None:
        """vLLM's ``/version`` (``{"version": ...}``); None where the server has no such route."""
        try:
            reply = await self.get_json("/version")
        except ServerError:
            return None
        return str(reply["version"]) if isinstance(reply, dict) and "version" in reply else None

    async def detect_engine(self) -> Engine:
        """The engine behind the URL (:meth:`identify`); also set as :attr:`engine`."""
        engine, _ = await self.identify()
        return engine

    async def identify(self) -> tuple[Engine, str | None]:
        """The engine behind the URL (:mod:`mfubench.measure.engine`), also set as
        :attr:`engine`, and its version: llama.cpp when ``/props`` is its (its build from
        ``build_info``), vLLM when ``/version`` answers (that version), else a generic
        OpenAI-compatible server (no version). Each route is asked once."""
        try:
            props = await self.get_json("/props")
        except ServerError:
            props = None
        if from_props(props):
            self.engine = LLAMA_CPP
            build = props.get("build_info")
            return self.engine, str(build) if build else None
        version = await self.version()
        self.engine = VLLM if version is not None else OPENAI
        return self.engine, version

    async def health(self) -> bool:
        """True when ``/health`` answers 200."""
        try:
            await self.get_text("/health", timeout_s=5.0)
        except ServerError:
            return False
        return True


async def get_models(url: str, api_key: str | None = None) -> list[str]:
    """The model ids served at ``url`` (``GET /v1/models``)."""
    async with CompletionClient(url, api_key=api_key) as client:
        return await client.models()


async def get_version(url: str, api_key: str | None = None) -> str | None:
    """The engine version at ``url`` (vLLM ``GET /version``), None where unavailable."""
    async with CompletionClient(url, api_key=api_key) as client:
        return await client.version()


async def health(url: str, api_key: str | None = None) -> bool:
    """True when ``GET url/health`` answers 200."""
    async with CompletionClient(url, api_key=api_key) as client:
        return await client.health()


async def _stamp_sent(session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestChunkSentParams) -> None:
    """aiohttp's signal after a body chunk went to the socket: the request's true send time."""
    stamps = ctx.trace_request_ctx
    if isinstance(stamps, dict):
        stamps["sent_s"] = time.monotonic()


_scan_once = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # the C scanner, without json.loads' two Python layers


def _loads(data: str) -> Any:
    """``json.loads(data)``, faster for the usual chunk (an object with nothing around it)."""
    try:
        obj, end = _scan_once(data, 0)
    except (StopIteration, json.JSONDecodeError):
        return json.loads(data)  # raises the proper JSONDecodeError, or accepts leading space
    if end != len(data):
        return json.loads(data)
    return obj




def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` on uvloop's event loop where uvloop is installed (its socket
    reads and callbacks cost the client less per token), else on asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _tokens_in(choice: dict[str, Any]) -> int:
    ids = choice.get("token_ids")
    if isinstance(ids, list):
        return len(ids)
    text = choice.get("text")
    return 1 if isinstance(text, str) and text else 0


def _error_message(chunk: dict[str, Any]) -> str:
    err = chunk.get("error", chunk)
    if isinstance(err, dict):
        msg = err.get("message", err)
        code = err.get("code")
        return _excerpt(f"{msg} (code {code})" if code is not None else str(msg))
    return _excerpt(str(err))


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _one_line(exc: BaseException) -> str:
    return _excerpt(str(exc) or type(exc).__name__)


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _EXCERPT_CHARS else flat[: _EXCERPT_CHARS - 1] + "…"


__all__ = [
    "ERROR_KINDS",
    "CompletionClient",
    "Prompt",
    "RequestRecord",
    "StreamRecorder",
    "TextPrompt",
    "completion_body",
    "default_token_range",
    "get_models",
    "get_version",
    "health",
    "prompt_tokens",
    "random_prompt",
    "run_async",
]
