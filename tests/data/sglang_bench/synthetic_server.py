"""A synthetic streaming ``/v1/completions`` server (no model), for SGLang's benchmark client.

Like ``tests/data/vllm_bench/synthetic_server.py`` (20 ms before the first chunk of text
``" x"``, 5 ms between the others, ``max_tokens`` chunks), except that the ``usage`` rides in the
last text chunk: SGLang's client reads ``choices[0]`` of every chunk, so a usage-only chunk with
``"choices": []`` (vLLM's) would crash it. With a second argument N, every N-th request after the
first is answered with HTTP 500.

    python synthetic_server.py PORT [FAIL_EVERY]
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys

from aiohttp import web

FAIL_EVERY = int(sys.argv[2]) if len(sys.argv) > 2 else 0
_counter = itertools.count()


async def completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    number = next(_counter)
    if FAIL_EVERY and number > 0 and number % FAIL_EVERY == 0:
        return web.Response(status=500, reason="synthetic failure")
    tokens = int(body.get("max_tokens", 8))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await asyncio.sleep(0.02)
    for i in range(tokens):
        if i:
            await asyncio.sleep(0.005)
        chunk: dict[str, object] = {"choices": [{"index": 0, "text": " x", "finish_reason": None}]}
        if i == tokens - 1:
            chunk["usage"] = {"completion_tokens": tokens}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    return response


async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "tiny", "object": "model"}]})


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
