"""``mfubench monitor``: how well a live deployment uses its hardware now, from its own metrics.

Every ``--sample`` seconds each ``--endpoint``'s ``/metrics`` is read; every ``--interval``
seconds a window closes per endpoint with its MFU and MBU over wall time, and while serving
(over the share of samples with a request running), tokens/s, running and waiting requests and
the KV cache's fill (:mod:`mfubench.measure.monitor`, :mod:`mfubench.analysis.window`). The
work is the engine's own FLOP and byte counters where it has them (vLLM
``--enable-mfu-metrics``), else its token counters through mfubench's count; every line says
which. A live table in the terminal, or with ``--json`` one JSON object per window and
endpoint; ``--serve-metrics PORT`` also exposes ``mfubench_mfu_ratio`` and
``mfubench_mbu_ratio`` for Prometheus. A restarted server, an absent counter, an endpoint that
stops answering: said on its line, and the watch goes on. Stops after ``--duration`` seconds,
or at Ctrl-C.

With ``--prometheus URL`` the fleet is read through Prometheus's HTTP API instead (PromQL over
every instance it scrapes: hundreds of replicas are one query per counter). With
``--prometheus-rules FILE`` (and ``--grafana-dashboard FILE``) it writes recording rules
(``mfubench:mfu:ratio``, ``mfubench:mbu:ratio``) that compute the same figures inside
Prometheus, and exits (``--engine`` names whose counters; :mod:`mfubench.report.prometheus_rules`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from mfubench.commands.analyze import add_setup_options, setup_from_args
from mfubench.commands.argtypes import positive_int
from mfubench.errors import MfubenchError


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value <= 1e7:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser("monitor", help="MFU and MBU of a live deployment from its own /metrics",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", action="append", default=None, metavar="URL",
                   help="a server to watch (repeat for several replicas)")
    add_setup_options(p)
    p.add_argument("--interval", type=_seconds, default=10.0, metavar="S",
                   help="seconds per window (default 10)")
    p.add_argument("--sample", type=_seconds, default=None, metavar="S",
                   help="seconds between scrapes inside a window (default: interval / 10, at most 1)")
    p.add_argument("--duration", type=_seconds, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--input-tokens", type=positive_int, default=None, metavar="I",
                   help="mean prompt to count token work at when no request finished in a window")
    p.add_argument("--output-tokens", type=positive_int, default=None, metavar="O",
                   help="mean output, as --input-tokens")
    p.add_argument("--json", action="store_true", help="one JSON object per window and endpoint")
    p.add_argument("--serve-metrics", type=positive_int, default=None, metavar="PORT",
                   help="expose mfubench_mfu_ratio / mfubench_mbu_ratio on 127.0.0.1:PORT for Prometheus")
    p.add_argument("--prometheus", default=None, metavar="URL",
                   help="read the fleet through this Prometheus's HTTP API (PromQL over every "
                        "instance it scrapes) instead of scraping each --endpoint")
    p.add_argument("--prometheus-rules", default=None, metavar="FILE",
                   help="write Prometheus recording rules computing the same figures, and exit")
    p.add_argument("--grafana-dashboard", default=None, metavar="FILE",
                   help="with --prometheus-rules: also write a Grafana dashboard of them")
    p.add_argument("--engine", default="vllm", help="with --prometheus-rules: whose counters (vllm, llama.cpp, sglang, tgi)")
    p.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API key")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    setup = setup_from_args(args)
    if args.prometheus_rules:
        return _write_rules(args, setup)
    if args.grafana_dashboard:
        raise MfubenchError("--grafana-dashboard goes with --prometheus-rules")
    if args.prometheus:
        if args.endpoint:
            raise MfubenchError("give --endpoint URLs or --prometheus URL, not both")
        if args.serve_metrics:
            raise MfubenchError("--serve-metrics exports what --endpoint scrapes; with --prometheus "
                                "use --prometheus-rules to record the figures there")
        try:
            asyncio.run(_fleet(args, setup))
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
        return 0
    if not args.endpoint:
        raise MfubenchError("give --endpoint URL (one per replica), --prometheus URL, or --prometheus-rules FILE")
    from mfubench.commands.run import _api_key

    api_key = _api_key(args.api_key_env)
    exporter = _exporter(args.serve_metrics) if args.serve_metrics else None
    try:
        asyncio.run(_watch(args, setup, api_key, exporter))
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return 0


def _write_rules(args: argparse.Namespace, setup: Any) -> int:
    from mfubench.commands.report import write_text
    from mfubench.report import prometheus_rules

    text = prometheus_rules.recording_rules(setup, engine=args.engine, input_tokens=args.input_tokens,
                                            output_tokens=args.output_tokens)
    write_text(args.prometheus_rules, text)
    print(f"wrote {args.prometheus_rules}", file=sys.stderr)
    if args.grafana_dashboard:
        board = prometheus_rules.grafana_dashboard()
        write_text(args.grafana_dashboard, json.dumps(board, indent=2))
        print(f"wrote {args.grafana_dashboard}", file=sys.stderr)
    return 0


async def _fleet(args: argparse.Namespace, setup: Any) -> None:
    """``--prometheus URL``: every ``--interval``, each instance's window over the last interval
    from PromQL (``increase()`` of the engine's counters), one line per instance."""
    from mfubench.analysis.window import window_figures
    from mfubench.measure.engine import engine_named
    from mfubench.measure.monitor import Window, window_json
    from mfubench.measure.promql import PrometheusAPI

    try:
        engine = engine_named(args.engine)
    except ValueError as exc:
        raise MfubenchError(f"--engine: {exc}") from None
    started = time.monotonic()
    render = _Live(setup) if not args.json else None
    async with PrometheusAPI(args.prometheus) as prom:
        try:
            while True:
                await asyncio.sleep(args.interval)
                fleet = await prom.fleet_counters(engine, args.interval)
                if not fleet:
                    print(json.dumps({"prometheus": args.prometheus, "status": "no-series",
                                      "notes": [f"no {engine.name} counters in {args.prometheus}"]}), flush=True)
                for (instance, model), counters in fleet.items():
                    figures = window_figures(setup, counters, args.input_tokens, args.output_tokens)
                    window = Window(instance, 0.0, counters.seconds, counters)
                    line = window_json(window, figures, model or str(args.model))
                    line["engine"] = engine.name
                    if render is None:
                        print(json.dumps(line, allow_nan=False), flush=True)
                    else:
                        render.add(line)
                if args.duration is not None and time.monotonic() - started >= args.duration:
                    return
        finally:
            if render is not None:
                render.close()


class _Exporter:
    """``mfubench_mfu_ratio`` / ``mfubench_mbu_ratio`` gauges (labels endpoint, model, phase)."""

    def __init__(self, port: int) -> None:
        import prometheus_client

        self.registry = prometheus_client.CollectorRegistry()
        labels = ("endpoint", "model", "phase")
        self.mfu = prometheus_client.Gauge("mfubench_mfu_ratio", "MFU over the last window (FLOPs per "
                                           "GPU over seconds x the dense peak per GPU)", labels,
                                           registry=self.registry)
        self.mbu = prometheus_client.Gauge("mfubench_mbu_ratio", "MBU over the last window (bytes per "
                                           "GPU over seconds x the memory bandwidth per GPU)", labels,
                                           registry=self.registry)
        self.server, self.thread = prometheus_client.start_http_server(port, addr="127.0.0.1",
                                                                       registry=self.registry)

    def set(self, endpoint: str, model: str, figures: Any) -> None:
        for gauge, value in ((self.mfu, figures.mfu), (self.mbu, figures.mbu)):
            if value is not None:
                gauge.labels(endpoint, model, "total").set(value)


def _exporter(port: int) -> _Exporter:
    try:
        return _Exporter(port)
    except ImportError:
        raise MfubenchError("--serve-metrics needs prometheus_client: pip install 'mfubench[monitor]'") from None
    except OSError as exc:
        raise MfubenchError(f"--serve-metrics {port}: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None


async def _watch(args: argparse.Namespace, setup: Any, api_key: str | None, exporter: _Exporter | None) -> None:
    from mfubench.analysis.window import window_figures
    from mfubench.measure.monitor import Watcher, window_json

    sample_s = args.sample or min(1.0, args.interval / 10)
    started = time.monotonic()
    model = str(args.model)
    render = _Live(setup) if not args.json else None
    async with Watcher(list(args.endpoint), api_key=api_key) as watcher:
        next_close = started + args.interval
        await watcher.sample()
        try:
            while args.duration is None or time.monotonic() - started < args.duration:
                await asyncio.sleep(max(0.0, min(sample_s, next_close - time.monotonic())))
                await watcher.sample()
                if time.monotonic() < next_close:
                    continue
                next_close += args.interval
                for window in watcher.close_windows():
                    figures = (None if window.counters is None else
                               window_figures(setup, window.counters, args.input_tokens, args.output_tokens))
                    line = window_json(window, figures, model)
                    line["engine"] = watcher.engines().get(window.endpoint)
                    if exporter is not None and figures is not None:
                        exporter.set(window.endpoint, model, figures)
                    if render is None:
                        print(json.dumps(line, allow_nan=False), flush=True)
                    else:
                        render.add(line)
        finally:
            if render is not None:
                render.close()


class _Live:
    """The terminal view: one row per endpoint, updated each window (rich)."""

    def __init__(self, setup: Any) -> None:
        from rich.live import Live

        from mfubench.report.console import make_console

        self.setup = setup
        self.rows: dict[str, dict[str, Any]] = {}
        self.live = Live(self._table(), console=make_console(), refresh_per_second=2, transient=False)
        self.live.start()

    def _table(self) -> Any:
        from rich.table import Table

        from mfubench.report.units import util

        table = Table(title=f"{self.setup.hardware.name}, TP {self.setup.tp}: MFU vs {self.setup.peak_label}",
                      title_justify="left")
        for h in ("endpoint", "engine", "window s", "MFU", "MBU", "busy", "MFU busy", "tok/s", "run", "wait",
                  "KV", "work from", "notes"):
            table.add_column(h, justify="left" if h in ("endpoint", "notes", "work from") else "right")
        for ep, r in self.rows.items():
            over = {f.split(":")[0].split()[-1] for f in r.get("flags", [])}
            table.add_row(ep, str(r.get("engine") or "-"), f"{r['window_s']:.3g}",
                          util(r.get("mfu"), 2, "MFU" in str(r.get("flags"))),
                          util(r.get("mbu"), 1, "MBU" in str(r.get("flags"))),
                          util(r.get("busy_share"), 0), util(r.get("mfu_busy"), 2, bool(over)),
                          "-" if r.get("tokens_per_s") is None else f"{r['tokens_per_s']:.4g}",
                          _n(r.get("running")), _n(r.get("waiting")), util(r.get("kv_usage"), 0),
                          str(r.get("source", r.get("status"))), "; ".join(r.get("notes", []))[:80])
        return table

    def add(self, line: dict[str, Any]) -> None:
        self.rows[line["endpoint"]] = line
        self.live.update(self._table())

    def close(self) -> None:
        self.live.stop()


def _n(value: Any) -> str:
    return "-" if value is None else f"{value:g}"
