"""The streaming client: records built from event sequences, and failures as records, not raises.

The network tests run a local aiohttp server in-process (a synthetic stream, no model).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from mfubench.measure.client import (
    CompletionClient,
    RequestRecord,
    StreamRecorder,
    completion_body,
    default_token_range,
    random_prompt,
)


def chunk(token_ids: list[int] | None, text: str = "x", finish: str | None = None) -> str:
    choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": finish}
    if token_ids is not None:
        choice["token_ids"] = token_ids
    return json.dumps({"choices": [choice]})


def usage(prompt: int, completion: int) -> str:
    return json.dumps({"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}})


def record(events: list[tuple[float, str]], sent: float = 10.0, i: int = 4, o: int = 3) -> RequestRecord:
    rec = StreamRecorder(batch_size=1, requested_input_tokens=i, requested_output_tokens=o, sent_s=sent)
    for t, data in events:
        if rec.on_data(data, t):
            break
    return rec.finish(events[-1][0] if events else sent)


def test_timing_and_counts_of_a_clean_stream() -> None:
    r = record([(10.5, chunk([7])), (10.75, chunk([8])), (11.0, chunk([9], finish="length")),
                (11.01, usage(4, 3)), (11.02, "[DONE]")])
    assert r.error is None and r.exact and not r.merged_first_chunk
    assert r.ttft_s == 0.5
    assert r.itl_s == (0.25, 0.25)
    assert r.e2e_s == pytest.approx(1.02)
    assert (r.input_tokens, r.output_tokens, r.streamed_tokens) == (4, 3, 3)
    assert r.finish_reason == "length"
    assert r.first_token_at_s == 10.5 and r.done_at_s == pytest.approx(11.02)


def test_merged_chunk_is_split_by_token_ids_not_counted_as_one() -> None:
    r = record([(10.5, chunk([7, 8])), (11.0, chunk([9, 10, 11], finish="length")),
                (11.0, usage(4, 5)), (11.0, "[DONE]")], o=5)
    assert r.streamed_tokens == 5
    assert r.itl_s == (0.0, 0.5, 0.0, 0.0)  # one gap per arrival, zeros inside a chunk
    assert r.merged_first_chunk  # the first chunk held two tokens: TTFT includes a decode step
    assert sum(r.itl_s) == pytest.approx(0.5)  # last token - first token


def test_empty_text_chunks_with_token_ids_count_and_without_them_do_not() -> None:
    r = record([(10.1, chunk([5], text="")), (10.2, chunk([], text="")), (10.3, chunk([6], text="", finish="length")),
                (10.3, usage(4, 2)), (10.4, "[DONE]")], o=2)
    assert r.streamed_tokens == 2 and r.itl_s == (pytest.approx(0.2),)


def test_counts_come_from_usage_even_when_chunks_disagree() -> None:
    r = record([(10.1, chunk(None, text="ab")), (10.2, chunk(None, text="cd", finish="length")),
                (10.2, usage(4, 3)), (10.3, "[DONE]")])
    assert r.output_tokens == 3 and r.streamed_tokens == 2  # without token_ids: a chunk per token
    assert r.exact


def test_short_output_is_not_exact() -> None:
    r = record([(10.1, chunk([1], finish="stop")), (10.1, usage(4, 1)), (10.2, "[DONE]")])
    assert r.error is None and not r.exact and r.finish_reason == "stop"


@pytest.mark.parametrize(
    ("events", "kind", "message"),
    [
        ([(10.1, chunk([1])), (10.2, "{not json")], "protocol", "malformed chunk"),
        ([(10.1, "[1, 2]")], "protocol", "not an object"),
        ([(10.1, json.dumps({"id": "x"}))], "protocol", "no choices"),
        ([(10.1, chunk([1])), (10.2, json.dumps({"error": {"message": "engine dead", "code": 500}}))], "server", "engine dead"),
        ([(10.1, chunk([1])), (10.2, usage(4, 1))], "protocol", "without \\[DONE\\]"),
        ([(10.1, chunk([1], finish="length")), (10.2, "[DONE]")], "protocol", "without a usage chunk"),
    ],
)
def test_bad_streams_become_errors(events: list[tuple[float, str]], kind: str, message: str) -> None:
    r = record(events)
    assert r.error_kind == kind
    assert r.error is not None
    assert pytest.approx(events[-1][0] - 10.0) == r.e2e_s
    import re

    assert re.search(message, r.error)
    assert not r.exact


def test_error_keeps_the_first_failure_and_times_it() -> None:
    rec = StreamRecorder(1, 4, 3, sent_s=0.0)
    rec.on_data(chunk([1]), 1.0)
    assert rec.on_data("garbage", 2.0) is True
    assert rec.on_data(json.dumps({"error": "later"}), 3.0) is True
    r = rec.finish(4.0)
    assert r.error_kind == "protocol" and r.e2e_s == 2.0 and r.ttft_s == 1.0


def test_request_body_asks_for_exact_lengths() -> None:
    body = completion_body("m", [5, 6, 7], 9)
    assert body["prompt"] == [5, 6, 7]
    assert body["max_tokens"] == body["min_tokens"] == 9
    assert body["ignore_eos"] is True and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["return_token_ids"] is True


def test_random_prompts_are_fresh_in_range_and_seedable() -> None:
    low, high = default_token_range(8192)
    assert (low, high) == (1000, 7372)
    a = random_prompt(random.Random(3), 64, (low, high))
    b = random_prompt(random.Random(3), 64, (low, high))
    assert a == b and len(a) == 64 and all(low <= t < high for t in a)
    rng = random.Random(3)
    assert random_prompt(rng, 64, (low, high)) != random_prompt(rng, 64, (low, high))
    assert default_token_range(128256)[1] < 128000  # Llama 3's special tokens sit at 128000+


def test_record_json_has_no_key_and_lists_itl() -> None:
    r = record([(10.5, chunk([7])), (10.75, chunk([8])), (11.0, chunk([9], finish="length")),
                (11.01, usage(4, 3)), (11.02, "[DONE]")])
    d = r.to_json()
    assert d["itl_s"] == [0.25, 0.25] and d["output_tokens"] == 3 and "sent_s" not in d


# --- over the network, against a synthetic local server ---------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(handler: Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/v1/completions", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)  # do not wait on handlers that never answer
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def complete_against(handler: Handler, timeout_s: float = 10.0, api_key: str | None = None) -> RequestRecord:
    async def go() -> RequestRecord:
        runner, url = await serve(handler)
        try:
            async with CompletionClient(url, model="m", timeout_s=timeout_s, api_key=api_key) as client:
                return await client.complete([1, 2, 3, 4], 3)
        finally:
            await runner.cleanup()

    return asyncio.run(go())


async def stream(request: web.Request, parts: list[bytes]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for part in parts:
        await resp.write(part)
        await asyncio.sleep(0.001)
    return resp


GOOD = [
    f"data: {chunk([7])}\n\n".encode(),
    b": keep-alive\n\n",
    f"data: {chunk([8, 9], finish='length')}\r\n\r\n".encode(),
    f"data: {usage(4, 3)}\n\n".encode(),
    b"data: [DONE]\n\n",
]


def test_good_stream_over_http_split_into_single_bytes() -> None:
    seen: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        seen["body"] = await request.json()
        seen["auth"] = request.headers.get("Authorization")
        data = b"".join(GOOD)
        return await stream(request, [data[i : i + 1] for i in range(len(data))])

    r = complete_against(handler, api_key="sk-planted-secret")
    assert r.error is None and r.exact and r.streamed_tokens == 3 and len(r.itl_s) == 2
    assert seen["body"]["prompt"] == [1, 2, 3, 4] and seen["body"]["min_tokens"] == 3
    assert seen["auth"] == "Bearer sk-planted-secret"
    assert "sk-planted-secret" not in json.dumps(r.to_json())


def test_http_error_status_keeps_status_and_body_excerpt() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "too many requests"}}, status=429)

    r = complete_against(handler)
    assert r.error_kind == "http" and r.error is not None and r.http_status == 429
    assert "429" in r.error and "too many requests" in r.error


def test_stream_cut_without_done_is_an_error() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream(request, GOOD[:3])

    r = complete_against(handler)
    assert r.error_kind == "protocol" and r.ttft_s is not None and r.streamed_tokens == 3


def test_error_object_mid_stream() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        err = json.dumps({"error": {"message": "kv cache exhausted", "code": 503}})
        return await stream(request, [GOOD[0], f"data: {err}\n\n".encode(), GOOD[4]])

    r = complete_against(handler)
    assert r.error_kind == "server" and r.error is not None and "kv cache exhausted" in r.error


def test_oversized_event_is_an_error() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream(request, [b"data: " + b"x" * 70_000])

    async def go() -> RequestRecord:
        runner, url = await serve(handler)
        try:
            async with CompletionClient(url, model="m", max_event_bytes=65_536) as client:
                return await client.complete([1], 1)
        finally:
            await runner.cleanup()

    r = asyncio.run(go())
    assert r.error_kind == "protocol" and r.error is not None and "65536" in r.error


def test_server_that_never_answers_times_out() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(1.0)
        return web.Response()

    r = complete_against(handler, timeout_s=0.3)
    assert r.error_kind == "timeout" and r.ttft_s is None


def test_connection_refused() -> None:
    async def go() -> RequestRecord:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await stream(request, GOOD)

        runner, url = await serve(handler)
        await runner.cleanup()  # the port is now closed
        async with CompletionClient(url, model="m") as client:
            return await client.complete([1], 1)

    r = asyncio.run(go())
    assert r.error_kind == "connect" and r.error is not None and "cannot connect" in r.error


def test_each_engine_gets_its_own_dialect_of_the_one_request() -> None:
    from mfubench.measure.engine import LLAMA_CPP, OPENAI, VLLM

    vllm, llama, other = (completion_body("m", [5, 6], 4, e) for e in (VLLM, LLAMA_CPP, OPENAI))
    assert vllm["min_tokens"] == vllm["max_tokens"] == 4 and vllm["ignore_eos"] is True
    assert "min_tokens" not in llama and llama["max_tokens"] == 4 and llama["ignore_eos"] is True
    assert llama["cache_prompt"] is False and "cache_prompt" not in vllm
    assert other == vllm  # an unknown OpenAI-compatible server takes vLLM's request
    assert LLAMA_CPP.headers == {"Connection": "close"} and not VLLM.headers


def test_the_engine_is_detected_by_what_the_server_answers() -> None:
    """``/props`` of llama.cpp's shape: llama.cpp; ``/version``: vLLM; neither: generic."""
    from mfubench.measure.engine import LLAMA_CPP, OPENAI, VLLM

    async def props(request: web.Request) -> web.Response:
        return web.json_response({"total_slots": 2, "build_info": "b1234-abc"})

    async def version(request: web.Request) -> web.Response:
        return web.json_response({"version": "0.32.0"})

    async def detect(routes: dict[str, Any]) -> tuple[Any, str | None]:
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_get(path, handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with CompletionClient(f"http://127.0.0.1:{port}") as client:
                return await client.identify()
        finally:
            await runner.cleanup()

    assert asyncio.run(detect({"/props": props})) == (LLAMA_CPP, "b1234-abc")
    assert asyncio.run(detect({"/version": version})) == (VLLM, "0.32.0")
    assert asyncio.run(detect({})) == (OPENAI, None)
