"""mfubench: how well LLM inference uses the hardware, and why.

Counts the FLOPs and bytes of inference exactly from a model config, knows the peaks of current
accelerators, measures a live serving engine, and explains MFU, MBU and the roofline.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mfubench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
