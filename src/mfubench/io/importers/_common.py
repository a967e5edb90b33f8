"""What every importer shares: reading the file, parsing JSON, and checking one entry's fields.

An :class:`Entry` is one place in one file (a batch key, a row, a line); its checks turn a raw
value into the number a :class:`~mfubench.analysis.measurement.Measurement` field needs, or
raise :class:`~mfubench.errors.InputFileError` with a message naming the file, the entry and
the field. Nothing here knows a format.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfubench.analysis.measurement import TIMINGS, Measurement
from mfubench.errors import InputFileError, InputFileWarning
from mfubench.measure.results_log import decode_lines, split_torn_tail


def read_text(path: Path) -> str:
    """The file's text (UTF-8, a byte-order mark allowed); an empty or unreadable file is an error."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputFileError(f"{path}: is a directory, not a results file") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not data.strip():
        raise InputFileError(f"{path}: empty file")
    text = decode_lines(data.removeprefix(b"\xef\xbb\xbf"), path)  # a byte-order mark allowed
    if not text.strip():
        raise InputFileError(f"{path}: empty file")
    return text


def parse_json(text: str, path: Path, where: str = "") -> Any:
    """One JSON document; duplicate keys in an object are an error (the last would win silently).

    ``NaN`` and ``Infinity`` parse (Python's writer emits them) and are rejected later, by the
    field they sit in.
    """
    prefix = f"{path}: {where}: " if where else f"{path}: "

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                raise InputFileError(f"{prefix}key {key!r} appears twice in one object")
            obj[key] = value
        return obj

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        if where:
            raise InputFileError(f"{prefix}not valid JSON: {exc.msg} at column {exc.colno}") from None
        raise InputFileError(
            f"{prefix}not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InputFileError(f"{prefix}JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise InputFileError(f"{prefix}not valid JSON: {exc}") from None


def is_json_extra_data(text: str) -> bool:
    """True when ``text`` is a one-line JSON document followed by more: JSON lines, then."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.msg == "Extra data" and "\n" not in text[: exc.pos].strip()
    except (RecursionError, ValueError):
        return False
    return False


def json_lines(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line; each line must be a JSON object,
    except a torn final line (a write cut by a crash), which is reported and skipped."""
    text, torn = split_torn_tail(text)
    if torn is not None:
        warnings.warn(torn.describe(path), InputFileWarning, stacklevel=2)
    out: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        obj = parse_json(line, path, f"line {number}")
        if not isinstance(obj, dict):
            raise InputFileError(f"{path}: line {number}: expected a JSON object, got {kind(obj)}")
        out.append((number, obj))
    return out


def kind(value: object) -> str:
    """A JSON-ish name of ``value``'s type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def short(value: object) -> str:
    """``repr(value)`` cut to a length that fits a one-line message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Entry:
    """One entry of one file: where messages point and what ``Measurement.source`` says.

    Attributes:
        path: the file as the user named it.
        label: the entry in words, e.g. ``batch '16'``, ``row 3``, ``line 7``.
        source: the Measurement's ``source``, e.g. ``decode.json[batch=16]``.
    """

    path: Path
    label: str
    source: str

    def error(self, field: str | None, problem: str) -> InputFileError:
        where = f"{self.path}: {self.label}"
        return InputFileError(f"{where}: field {field!r}: {problem}" if field else f"{where}: {problem}")

    def unknown_keys(self, keys: Iterable[str], allowed: Iterable[str]) -> None:
        """Raise naming every key not in ``allowed`` (typos such as ``ttft_ms`` for ``ttft_s``)."""
        allowed_set = set(allowed)
        unknown = [k for k in keys if k not in allowed_set]
        if unknown:
            names = ", ".join(repr(k) for k in unknown)
            raise self.error(
                None, f"unknown field(s) {names}; expected some of {', '.join(sorted(allowed_set))}"
            )

    def number(self, field: str, value: object, *, minimum: float = 0.0, strict: bool = True) -> float:
        """``value`` as a finite float above ``minimum`` (or equal to it when not ``strict``)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(field, f"expected a number, got {kind(value)} {short(value)}")
        try:
            number = float(value)
        except OverflowError:
            raise self.error(field, "number too large") from None
        if not math.isfinite(number):
            raise self.error(field, f"must be a finite number, got {short(value)}")
        if number < minimum or (strict and number == minimum):
            relation = ">" if strict else "\u2265"
            raise self.error(field, f"must be {relation} {minimum:g}, got {short(value)}")
        return number

    def seconds(self, field: str, value: object, scale: float = 1.0) -> float:
        """A positive, finite duration in seconds (``value * scale``)."""
        seconds = self.number(field, value) * scale
        if seconds <= 0.0:  # a tiny positive value in ms can underflow to 0 s
            raise self.error(field, f"must be a positive time, got {short(value)}")
        return seconds

    def count(self, field: str, value: object) -> int:
        """A positive integer (a whole-valued float such as ``4.0`` is accepted)."""
        number = self.number(field, value, minimum=1.0, strict=False)
        if not number.is_integer():
            raise self.error(field, f"must be a whole number, got {short(value)}")
        return int(number)

    def field(self, name: str, field: str, value: object, scale: float = 1.0) -> float | int:
        """``value`` checked as Measurement's ``field`` requires (``name`` is what the file calls it)."""
        if field in ("batch_size", "concurrency", "completed"):
            return self.count(name, value)
        if field in ("ttft_s", "itl_s", "elapsed_s", "tpot_s", "duration_s"):
            return self.seconds(name, value, scale)
        if field in ("input_tokens", "requested_output_tokens"):
            return self.number(name, value, minimum=1.0, strict=False)
        if field == "output_tokens" or field.startswith("server_"):
            return self.number(name, value, strict=False)
        return self.number(name, value)

    def mapping(self, field: str | None, value: object) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.error(field, f"expected an object, got {kind(value)} {short(value)}")
        return value

    def measurement(self, **fields: Any) -> Measurement:
        """Build the Measurement; any check it makes beyond ours is reported at this entry."""
        if all(fields.get(name) is None for name in TIMINGS):
            raise self.error(None, f"no timing; give at least one of {', '.join(TIMINGS)}")
        try:
            return Measurement(source=self.source, **fields)
        except InputFileError as exc:
            raise self.error(None, str(exc)) from None
