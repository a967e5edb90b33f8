"""The live table of ``mfubench run``: one line per finished point."""

from __future__ import annotations

from types import SimpleNamespace

from mfubench.commands.run import point_line


def test_point_line_shows_phases_utilisation_and_flags() -> None:
    point = SimpleNamespace(
        key=(4, 256, 32),
        rows=[
            {"phase": "prefill", "seconds": 1.99, "mfu": 0.958, "mbu": 0.007, "bound": "compute"},
            {"phase": "decode", "seconds": 0.757, "mfu": 0.34, "mbu": 0.51, "bound": "memory"},
            {"phase": "total", "seconds": 2.7, "mfu": 0.8, "mbu": 0.1, "bound": "compute"},
        ],
        flags=("client-bound: loop lag 12 ms",),
    )
    line = point_line(point)
    assert line.startswith("batch    4 in   256 out   32")
    assert "prefill 1.99 s MFU 95.8 % MBU 0.7 % (compute-bound)" in line
    assert "decode 0.757 s MFU 34.0 % MBU 51.0 % (memory-bound)" in line
    assert "total" not in line
    assert line.endswith("flagged: client-bound")


def test_point_line_without_peak() -> None:
    point = SimpleNamespace(key=(1, 8, 1), rows=[{"phase": "prefill", "seconds": None, "mfu": None,
                                                  "mbu": None, "bound": None}], flags=())
    assert "prefill - MFU - MBU - (no peak)" in point_line(point)
