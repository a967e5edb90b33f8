"""llama-bench results: ``-o json``, ``-o jsonl``, ``-o csv`` and ``-o md``, as llama-bench
writes them.

Read as the writer of ``tools/llama-bench/llama-bench.cpp`` of github.com/ggml-org/llama.cpp
at commit 0104b151c56d54143e2e3554aabe9e2b2b8dbdba writes them: ``struct test``'s fields
(``test::get_fields``: ``build_commit``, ``cpu_info``, ``gpu_info``, ``backends``,
``model_type``, ``model_size``, ``model_n_params``, ``n_batch``, ``type_k``, ``type_v``,
``n_gpu_layers``, ``split_mode``, ``devices``, ``n_prompt``, ``n_gen``, ``n_depth``, ``avg_ns``,
``stddev_ns``, ``avg_ts``, ...) through ``json_printer`` (an array of objects with
``samples_ns`` and ``samples_ts``), ``jsonl_printer`` (one object per line), ``csv_printer`` (a
header row of the field names, every value quoted) and ``markdown_printer`` (a table of
``model``, ``size``, ``params``, ``backend``, the options that differ from their defaults,
``test`` and ``t/s``). Older builds wrote fewer fields (the README's examples at commit
5a32f10adf766d67ebc31e3525a257ce57956ca2 of that repository have no ``n_cpu_moe``) and older
markdown test names with a space (``tg 128``); both are read. Fields not used below are kept
in ``extra`` or ignored.

What a test is (``get_cmd_params_instances``, ``test_prompt``, ``test_gen`` and the timing
loop of ``llama_bench()``): the cache is first filled with ``n_depth`` tokens (untimed), then
the timed part processes ``n_prompt`` tokens in batches of ``n_batch`` and generates ``n_gen``
tokens one ``llama_decode`` of one token each; ``samples_ns`` are the repetitions' times and
``avg_ns`` their mean (integer ns). Each test becomes one Measurement of batch 1 at
``depth = n_depth`` (:class:`~mfubench.analysis.measurement.Measurement`):

- ``pp`` (``n_prompt > 0``, ``n_gen == 0``): a prefill of ``n_prompt`` tokens after ``n_depth``
  cached ones; ``ttft_s = avg_ns / 1e9``; one output token.
- ``tg`` (``n_gen > 0``, ``n_prompt == 0``): ``n_gen`` decode steps of batch 1 at contexts
  ``n_depth + k``; no prompt (``input_tokens`` 0), ``output_tokens = n_gen``,
  ``itl_s = avg_ns / 1e9 / n_gen``.
- ``pg`` (both): the prompt and then ``n_gen`` decode steps in one time (``elapsed_s``), with
  ``output_tokens = n_gen + 1`` (the prompt's logits, then ``n_gen`` decodes); its decode row
  subtracts a ``pp`` test of the same prompt and depth where the file has one.

In markdown only the mean of the repetitions' rates is written (``t/s``: ``avg_ts``, the mean
of ``n / t_i``), so the time is ``n / avg_ts`` (at most the mean time; flagged
``time-from-rate``); the size is rounded to 0.01 GiB or MiB (flagged ``size-rounded``).

What the run loaded and ran on becomes the point's :class:`~mfubench.analysis.as_run.AsRun`:
``model_size`` (the bytes of every tensor llama.cpp loaded, ``llama_model_size``) as the weight
bytes, the file type from ``model_type`` (``"qwen2 7B Q4_K - Medium"`` -> ``Q4_K_M``, the
``llama_model_ftype_name`` spelling turned back into llama.cpp's file type name),
``model_n_params``, ``type_k`` as the KV type (``type_v`` must match it), ``backends``
(``CUDA`` -> llama.cpp's CUDA GEMMs), ``n_gpu_layers`` (the offload) and ``split_mode layer``
over several GPUs (a pipeline). The device names it reported are kept in ``extra["devices"]``
(``gpu_info`` split at llama-bench's separators, else ``cpu_info`` for a CPU-only run), so that
``mfubench analyze`` can look them up in the catalog when no ``--hardware`` is given
(:func:`device_names`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mfubench.analysis.as_run import AsRun
from mfubench.analysis.measurement import Measurement
from mfubench.errors import InputFileError
from mfubench.io.importers._common import Entry, kind, short

FORMAT_JSON, FORMAT_JSONL = "llama-bench.json", "llama-bench.jsonl"
FORMAT_CSV, FORMAT_MD = "llama-bench.csv", "llama-bench.md"
#: Fields every llama-bench result has had since ``n_prompt``/``n_gen`` were split.
MARKERS = ("model_type", "model_size", "n_prompt", "n_gen", "avg_ns")
_GIB, _MIB = 1024.0**3, 1024.0**2
_QUALITY = {"Small": "S", "Medium": "M", "Large": "L"}
#: ``llama_model_ftype_name`` spellings whose file type names differ from ``<base>_<S|M|L>``.
_FTYPE_SPECIAL = {"Q2_K - Medium": "Q2_K", "Q2_K - Small": "Q2_K_S"}
_PLAIN = {"F32": "fp32", "F16": "fp16", "BF16": "bf16"}


def looks_like_llama_bench(obj: object) -> bool:
    """True for one llama-bench result object (a JSON/JSONL element)."""
    return isinstance(obj, Mapping) and all(k in obj for k in MARKERS)


def looks_like_llama_bench_csv(text: str) -> bool:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    names = set(first.split(","))
    return all(k in names for k in MARKERS)


_MD_HEADER = re.compile(r"^\|\s*model\s*\|.*\|\s*test\s*\|\s*t/s\s*\|\s*$")


def looks_like_llama_bench_md(text: str) -> bool:
    return any(_MD_HEADER.match(line.strip()) for line in text.splitlines())


def file_type(model_type: str) -> str:
    """``"llama 8B Q4_K - Medium"`` -> ``Q4_K_M``; ``"llama 7B mostly Q4_0"`` -> ``Q4_0``."""
    parts = model_type.split(" ", 2)
    name = parts[2] if len(parts) == 3 else model_type
    name = name.removeprefix("mostly ").strip()
    if name in _FTYPE_SPECIAL:
        return _FTYPE_SPECIAL[name]
    if " - " in name:
        base, quality = name.split(" - ", 1)
        return f"{base}_{_QUALITY[quality]}" if quality in _QUALITY else base
    return name


def device_names(m: Measurement) -> tuple[str, ...]:
    """The device names llama-bench reported for point ``m`` (empty when it wrote none)."""
    names = m.extra.get("devices") if isinstance(m.extra, Mapping) else None
    return tuple(names) if isinstance(names, list | tuple) else ()


def read_llama_bench_objects(objs: Sequence[tuple[Entry, Any]], requested: float | None,
                             fmt: str) -> list[Measurement]:
    """One Measurement per result object (JSON array items or JSONL lines)."""
    out = []
    for entry, obj in objs:
        if not looks_like_llama_bench(obj):
            missing = [k for k in MARKERS if not isinstance(obj, Mapping) or k not in obj]
            raise entry.error(missing[0] if missing else None,
                              f"not a llama-bench result (missing {', '.join(missing)})"
                              if isinstance(obj, Mapping) else f"expected an object, got {kind(obj)}")
        out.append(_measurement(entry, obj, requested, fmt, from_rate=False))
    return out


def read_llama_bench_csv(text: str, path: Path, requested: float | None) -> list[Measurement]:
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    header = rows[0]
    objs: list[tuple[Entry, Any]] = []
    for number, row in enumerate(rows[1:], start=2):
        entry = Entry(path, f"row {number}", f"{path.name}:row {number}")
        if len(row) != len(header):
            raise entry.error(None, f"{len(row)} values, but the header has {len(header)} fields")
        objs.append((entry, {k: _csv_value(k, v) for k, v in zip(header, row, strict=True)}))
    if not objs:
        raise InputFileError(f"{path}: a llama-bench CSV header but no results")
    return read_llama_bench_objects(objs, requested, FORMAT_CSV)


_INT_FIELDS = {"build_number", "n_batch", "n_ubatch", "n_threads", "poll", "model_size",
               "model_n_params", "n_gpu_layers", "main_gpu", "n_prompt", "n_gen", "n_depth",
               "avg_ns", "stddev_ns", "n_cpu_moe"}
_FLOAT_FIELDS = {"avg_ts", "stddev_ts"}


def _csv_value(key: str, value: str) -> Any:
    """A CSV cell as the JSON printer would have typed it (``get_field_type``): an integer
    field stays text when it is not one, so the checks below name it."""
    try:
        if key in _INT_FIELDS:
            return int(value)
        if key in _FLOAT_FIELDS:
            return float(value)
    except ValueError:
        return value
    return value


def read_llama_bench_md(text: str, path: Path, requested: float | None) -> list[Measurement]:
    lines = [line.strip() for line in text.splitlines()]
    out: list[Measurement] = []
    header: list[str] | None = None
    for number, line in enumerate(lines, start=1):
        if _MD_HEADER.match(line):
            header = _cells(line)
            continue
        if header is None or not line.startswith("|"):
            if not line.startswith("|"):
                header = None if not line else header
            continue
        cells = _cells(line)
        if all(set(c) <= set("-: ") for c in cells):
            continue  # the separator row
        entry = Entry(path, f"line {number}", f"{path.name}:line {number}")
        if len(cells) != len(header):
            raise entry.error(None, f"{len(cells)} cells, but the header has {len(header)} columns")
        out.append(_measurement(entry, _md_object(entry, dict(zip(header, cells, strict=True))),
                                requested, FORMAT_MD, from_rate=True))
    if not out:
        raise InputFileError(f"{path}: a llama-bench table header but no result rows")
    return out


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


_TEST = re.compile(r"^(?:pp\s*(\d+)\s*\+\s*tg\s*(\d+)|pp\s*(\d+)|tg\s*(\d+))(?:\s*@\s*d(\d+))?$")
_RATE = re.compile(r"^([0-9.]+(?:e[+-]?\d+)?)\s*±\s*([0-9.]+(?:e[+-]?\d+)?)$")
_SIZE = re.compile(r"^([0-9.]+)\s*(GiB|MiB)$")
_PARAMS = re.compile(r"^([0-9.]+)\s*([BM])$")
_MD_COLUMNS = {"ngl": "n_gpu_layers", "sm": "split_mode", "threads": "n_threads",
               "type_k": "type_k", "type_v": "type_v", "n_batch": "n_batch", "dev": "devices",
               "main_gpu": "main_gpu", "nkvo": "no_kv_offload"}


def _md_object(entry: Entry, row: Mapping[str, str]) -> dict[str, Any]:
    """A markdown row as the fields the other printers write (sizes and rates as printed)."""
    for column in ("model", "size", "params", "backend", "test", "t/s"):
        if column not in row:
            raise entry.error(column, "missing column")
    test = _TEST.match(row["test"])
    if test is None:
        raise entry.error("test", f"expected ppN, tgN or ppN+tgN (optionally ' @ dN'), got "
                                  f"{short(row['test'])}")
    pg_p, pg_g, pp, tg, depth = test.groups()
    n_prompt = int(pg_p or pp or 0)
    n_gen = int(pg_g or tg or 0)
    rate = _RATE.match(row["t/s"])
    if rate is None:
        raise entry.error("t/s", f"expected 'MEAN ± SD', got {short(row['t/s'])}")
    size = _SIZE.match(row["size"])
    if size is None:
        raise entry.error("size", f"expected 'N GiB' or 'N MiB', got {short(row['size'])}")
    params = _PARAMS.match(row["params"])
    if params is None:
        raise entry.error("params", f"expected 'N B' or 'N M', got {short(row['params'])}")
    obj: dict[str, Any] = {
        "model_type": row["model"], "backends": row["backend"],
        "model_size": float(size.group(1)) * (_GIB if size.group(2) == "GiB" else _MIB),
        "model_n_params": round(float(params.group(1)) * (1e9 if params.group(2) == "B" else 1e6)),
        "n_prompt": n_prompt, "n_gen": n_gen, "n_depth": int(depth or 0),
        "avg_ts": float(rate.group(1)), "stddev_ts": float(rate.group(2)),
    }
    for column, field in _MD_COLUMNS.items():
        if column in row:
            value = row[column]
            obj[field] = int(value) if field in _INT_FIELDS and re.fullmatch(r"-?\d+", value) else value
    return obj


def _measurement(entry: Entry, obj: Mapping[str, Any], requested: float | None, fmt: str,
                 *, from_rate: bool) -> Measurement:
    n_prompt = _whole(entry, obj, "n_prompt")
    n_gen = _whole(entry, obj, "n_gen")
    depth = _whole(entry, obj, "n_depth") if obj.get("n_depth") is not None else 0
    if n_prompt == 0 and n_gen == 0:
        raise entry.error("n_gen", "a test with n_prompt 0 and n_gen 0 measures nothing")
    if from_rate:
        rate = entry.number("t/s", obj["avg_ts"])
        seconds = (n_prompt + n_gen) / rate
    else:
        avg_ns = entry.number("avg_ns", obj["avg_ns"])
        seconds = avg_ns / 1e9
        if seconds <= 0:
            raise entry.error("avg_ns", f"must be a positive time, got {short(obj['avg_ns'])}")
        _check_samples(entry, obj, avg_ns)
    model_type = _text(entry, obj, "model_type")
    ftype = file_type(model_type)
    backends = _text(entry, obj, "backends") if obj.get("backends") is not None else ""
    type_k = _text(entry, obj, "type_k") if obj.get("type_k") is not None else None
    if obj.get("type_v") is not None and type_k is not None and _text(entry, obj, "type_v") != type_k:
        raise entry.error("type_v", f"{obj['type_v']!r} differs from type_k {type_k!r}: "
                                    "mixed K and V cache types are not counted")
    gpu_layers = None
    if obj.get("n_gpu_layers") is not None:
        gpu_layers = _integer(entry, obj, "n_gpu_layers")
    names = _devices(entry, obj, backends)
    split = str(obj.get("split_mode", "layer"))
    gpus = len(names) if backends and _gpu_backend(backends) else 1
    pipeline = gpus if split == "layer" and gpus > 1 else 1
    if split == "none":
        names = names[:1]
    extra: dict[str, Any] = {
        "format": fmt, "test": _test_name(n_prompt, n_gen, depth), "backends": backends,
        "model_type": model_type, "file_type": ftype, "devices": list(names),
        "split_mode": split,
    }
    for key in ("build_commit", "build_number", "model_filename", "n_batch", "n_ubatch",
                "n_threads", "flash_attn", "test_time", "stddev_ns", "avg_ts", "stddev_ts",
                "cpu_info", "gpu_info"):
        if obj.get(key) is not None and not isinstance(obj[key], list | dict):
            extra[key] = obj[key]
    flags = []
    if from_rate:
        flags.append("time-from-rate: markdown gives only the mean rate (t/s); the time is "
                     f"{n_prompt + n_gen} tokens / t/s")
        flags.append("size-rounded: markdown prints the size to 0.01 GiB/MiB")
    if obj.get("no_kv_offload") in (True, 1, "1", "true"):
        flags.append("kv-on-host: no_kv_offload kept the KV cache in host memory, whose "
                     "bandwidth the figures do not include")
    extra["flags"] = flags
    params = _integer(entry, obj, "model_n_params") if obj.get("model_n_params") is not None else None
    as_run = AsRun(
        tool="llama-bench",
        weight_bytes=entry.number("model_size", obj["model_size"]),
        weight_label=ftype, params=params, kv_type=type_k,
        engine_gemm="cuda" if "CUDA" in backends.split(",") else (backends or None),
        pipeline=pipeline, gpu_layers=gpu_layers,
        weight_dtype=_PLAIN.get(ftype) if ftype in ("BF16", "F32") else None,
    )
    values: dict[str, Any] = {"batch_size": 1, "depth": depth, "as_run": as_run,
                              "requested_output_tokens": requested}
    if n_gen == 0:
        values.update(input_tokens=n_prompt, output_tokens=1, ttft_s=seconds)
    elif n_prompt == 0:
        values.update(input_tokens=0, output_tokens=n_gen, itl_s=seconds / n_gen)
    else:
        values.update(input_tokens=n_prompt, output_tokens=n_gen + 1, elapsed_s=seconds)
    return entry.measurement(extra=extra, **values)


def _test_name(n_prompt: int, n_gen: int, depth: int) -> str:
    name = f"pp{n_prompt}+tg{n_gen}" if n_prompt and n_gen else (f"pp{n_prompt}" if n_prompt else f"tg{n_gen}")
    return f"{name} @ d{depth}" if depth else name


def _gpu_backend(backends: str) -> bool:
    return any(b not in ("CPU", "BLAS", "RPC") for b in backends.split(","))


def _devices(entry: Entry, obj: Mapping[str, Any], backends: str) -> tuple[str, ...]:
    """The devices as llama-bench named them: ``gpu_info`` (joined by ``", "``, by ``"/"`` in
    older builds), else ``cpu_info`` on a CPU-only run."""
    gpu = _text(entry, obj, "gpu_info") if obj.get("gpu_info") is not None else ""
    if gpu and (not backends or _gpu_backend(backends)):
        sep = ", " if ", " in gpu else "/"
        return tuple(n.strip() for n in gpu.split(sep) if n.strip())
    cpu = _text(entry, obj, "cpu_info") if obj.get("cpu_info") is not None else ""
    return (cpu,) if cpu else ()


def _check_samples(entry: Entry, obj: Mapping[str, Any], avg_ns: float) -> None:
    samples = obj.get("samples_ns")
    if samples is None:
        return
    if not isinstance(samples, list) or not samples:
        raise entry.error("samples_ns", f"expected a list of times, got {kind(samples)}")
    times = [entry.number(f"samples_ns[{i}]", t) for i, t in enumerate(samples)]
    mean = sum(times) / len(times)
    if abs(mean - avg_ns) > max(1.0, 1e-6 * avg_ns) + len(times):  # avg_ns is an integer mean
        raise entry.error("avg_ns", f"{avg_ns:g} is not the mean of samples_ns ({mean:.6g})")


def _whole(entry: Entry, obj: Mapping[str, Any], key: str) -> int:
    if key not in obj:
        raise entry.error(key, "missing")
    number = entry.number(key, obj[key], strict=False)
    if not number.is_integer():
        raise entry.error(key, f"must be a whole number, got {short(obj[key])}")
    return int(number)


def _integer(entry: Entry, obj: Mapping[str, Any], key: str) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise entry.error(key, f"expected an integer, got {kind(value)} {short(value)}")
    return value


def _text(entry: Entry, obj: Mapping[str, Any], key: str) -> str:
    if key not in obj:
        raise entry.error(key, "missing")
    value = obj[key]
    if not isinstance(value, str):
        raise entry.error(key, f"expected text, got {kind(value)} {short(value)}")
    return value
