"""Serve a GGUF file with llama.cpp's own server, from the ``xllamacpp`` wheel (no compiler).

    python -m mfubench.measure.llamacpp_launcher MODEL.gguf --port 8000 [--ctx-per-slot N]
        [--parallel N] [--threads N] [--batch-threads N]

``xllamacpp.Server(params)`` starts llama.cpp's C++ HTTP server (``tools/server``) inside this
process, bound to 127.0.0.1; the process then waits until it is told to stop (SIGTERM or
SIGINT), so :func:`mfubench.measure.server.launch_llamacpp` can run and stop it like vLLM.

The parameters are llama.cpp's (``CommonParams``): ``n_parallel`` slots (the most requests it
decodes together; a static batch of B needs B slots), ``n_ctx`` the whole KV cache,
``ctx-per-slot x parallel`` (each slot gets its share), ``/metrics`` and ``/slots`` on,
``cache_prompt`` off by default (each request also says so), and the threads: one for the
model by default on a 2-core machine, the other core serving HTTP and the client, as for vLLM
(``shared/notes/vllm-cpu.md``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mfubench.measure.llamacpp_launcher")
    p.add_argument("model", help="the .gguf file")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ctx-per-slot", type=int, default=2048)
    p.add_argument("--parallel", type=int, default=1, help="slots: requests decoded together")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-threads", type=int, default=None, help="threads of prompt processing (default --threads)")
    p.add_argument("--n-batch", type=int, default=None, help="llama.cpp's logical batch (-b)")
    p.add_argument("--n-ubatch", type=int, default=None, help="llama.cpp's physical batch (-ub)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = args.model
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx_per_slot * args.parallel
    params.endpoint_metrics = True
    params.endpoint_slots = True
    params.cache_prompt = False
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.batch_threads or args.threads
    if args.n_batch:
        params.n_batch = args.n_batch
    if args.n_ubatch:
        params.n_ubatch = args.n_ubatch
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = xlc.Server(params)
    print(f"mfubench: llama.cpp (xllamacpp {getattr(xlc, '__version__', '?')}) serving {args.model} "
          f"at {server.listening_address} with {args.parallel} slot(s) of {args.ctx_per_slot} tokens, "
          f"{args.threads} thread(s)", flush=True)
    stop.wait()
    del server  # the C++ server stops with its object
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
