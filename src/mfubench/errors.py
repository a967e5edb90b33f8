"""The exception tree of mfubench.

Every error a user can cause (a bad file, an unknown name, a server that misbehaves) is a
:class:`MfubenchError`; the CLI prints its message on one line and exits non-zero, never a
traceback. Programming errors stay ordinary Python exceptions.
"""

from __future__ import annotations


class MfubenchError(Exception):
    """Base class of every error that is the input's fault, not the program's."""

    exit_code = 2


class ConfigError(MfubenchError):
    """A model config that cannot be read, or describes something mfubench cannot count."""


class UnknownModelError(ConfigError):
    """A model id that is neither bundled, nor a local path, nor fetchable."""


class UnknownHardwareError(MfubenchError):
    """A hardware name that is not in the catalog (the message lists the closest names)."""


class InputFileError(MfubenchError):
    """A results or measurement file that is malformed; the message names the file and field."""


class ServerError(MfubenchError):
    """A serving engine that refused, failed or answered something unexpected."""

    exit_code = 3


class InputFileWarning(UserWarning):
    """Something in an input file was skipped, not refused (a results line torn by a crash);
    the CLI prints it as one ``mfubench: warning:`` line."""


def closest(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """The ``n`` candidates closest to ``name`` (case-insensitive), for "did you mean" hints."""
    import difflib

    lowered = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.4)
    if not hits:
        hits = [c for c in lowered if name.lower() in c or c in name.lower()][:n]
    return [lowered[h] for h in hits]
