"""The ``mfubench`` command line: a thin shell over the library.

Each subcommand lives in :mod:`mfubench.commands` as a module with ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int``. Subcommands parse, call one library
function and render; user errors (:class:`~mfubench.errors.MfubenchError`) become one line on
stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from mfubench import __version__
from mfubench.errors import InputFileWarning, MfubenchError

#: Subcommand modules under ``mfubench.commands``, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "flops",
    "analyze",
    "roofline",
    "hardware",
    "calibrate",
    "run",
    "report",
    "compare",
    "monitor",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mfubench",
        description="How well LLM inference uses the hardware: FLOPs, bytes, MFU, MBU, roofline.",
    )
    parser.add_argument("--version", action="version", version=f"mfubench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"mfubench.commands.{name}")
        module.register(sub)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """mfubench's own warnings as one line on stderr; others as Python prints them."""
    if issubclass(category, InputFileWarning):
        print(f"mfubench: warning: {message}", file=sys.stderr)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    previous, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        return _main(argv)
    finally:
        warnings.showwarning = previous


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MfubenchError as exc:
        print(f"mfubench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mfubench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
