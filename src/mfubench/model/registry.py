"""Find a model's ``config.json``: a local file or folder, a bundled id, or the Hub.

Resolution order for ``load_model(name)``:

1. ``name`` is an existing path: a ``config.json`` file (any name) or a folder holding one.
2. ``name`` is a bundled id or one of its aliases (exact, case-insensitive): the copy shipped in
   ``mfubench/model/configs/`` (listed in its ``index.json`` with the source of each file).
3. ``name`` is a bundled variant (exact, case-insensitive; ``configs/variants/index.json``): a
   repo that ships a bundled architecture with other weights, such as an ``-FP8`` release. It
   reads as its base config with the variant's own ``quantization_config`` (null: none).
4. Otherwise ``huggingface_hub`` fetches ``config.json`` alone (online, when installed).

When nothing works the error names the closest bundled ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from mfubench.errors import ConfigError, UnknownModelError, closest
from mfubench.model.gguf_file import looks_like_gguf
from mfubench.model.hf_config import parse_config
from mfubench.model.spec import ModelSpec


@dataclass(frozen=True)
class BundledModel:
    """One entry of the bundled index: a config copy with where it came from."""

    id: str
    file: str
    aliases: tuple[str, ...]
    config_source: str
    published_params_total: int | None
    published_params_active: int | None
    params_source: str | None
    published_active_excludes_embedding: bool = False
    published_params_vision: int | None = None


@cache
def bundled_models() -> tuple[BundledModel, ...]:
    """The bundled configs, as listed in ``configs/index.json``."""
    text = resources.files("mfubench.model").joinpath("configs/index.json").read_text("utf-8")
    out = []
    for entry in json.loads(text):
        out.append(
            BundledModel(
                id=entry["id"],
                file=entry["file"],
                aliases=tuple(entry.get("aliases") or ()),
                config_source=entry.get("config_source", ""),
                published_params_total=_opt_int(entry.get("published_params_total")),
                published_params_active=_opt_int(entry.get("published_params_active")),
                params_source=entry.get("params_source"),
                published_active_excludes_embedding=bool(
                    entry.get("published_active_excludes_embedding", False)
                ),
                published_params_vision=_opt_int(entry.get("published_params_vision")),
            )
        )
    return tuple(out)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _bundled_by_name() -> dict[str, BundledModel]:
    table: dict[str, BundledModel] = {}
    for model in bundled_models():
        for key in (model.id, *model.aliases):
            table[key.lower()] = model
    return table


def find_bundled(name: str) -> BundledModel | None:
    """The bundled entry for an id or alias (exact, case-insensitive), or None."""
    return _bundled_by_name().get(name.strip().lower())


@dataclass(frozen=True)
class BundledVariant:
    """A repo with a bundled architecture and its own weight storage (``-FP8``, ...).

    Attributes:
        id: the repo id users type.
        base: the bundled id (or alias) whose config it shares.
        quantization_config: the variant's ``quantization_config`` (None: plain dtype weights).
        source: where the quantization comes from.
    """

    id: str
    base: str
    quantization_config: dict[str, Any] | None
    source: str


@cache
def bundled_variants() -> tuple[BundledVariant, ...]:
    """The bundled variants (``configs/variants/index.json``); each base must be bundled."""
    text = resources.files("mfubench.model").joinpath("configs/variants/index.json").read_text("utf-8")
    out = []
    for entry in json.loads(text):
        variant = BundledVariant(
            id=entry["id"], base=entry["base"],
            quantization_config=entry.get("quantization_config"), source=entry["source"],
        )
        if find_bundled(variant.base) is None:
            raise ConfigError(f"configs/variants/index.json: {variant.id!r} names base "
                              f"{variant.base!r}, which is not bundled")
        out.append(variant)
    return tuple(out)


def find_variant(name: str) -> BundledVariant | None:
    """The bundled variant of that id (exact, case-insensitive), or None."""
    key = name.strip().lower()
    return next((v for v in bundled_variants() if v.id.lower() == key), None)


def read_bundled_config(model: BundledModel) -> dict[str, Any]:
    text = resources.files("mfubench.model").joinpath(f"configs/{model.file}").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def read_config_file(path: Path) -> dict[str, Any]:
    """Read and decode a config.json, with errors that name the file."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config.json must hold a JSON object")
    return data


def load_config(name: str) -> tuple[dict[str, Any], str]:
    """The raw config of ``name`` and a label saying where it came from."""
    path = Path(name).expanduser()
    if path.is_dir():
        cfg = path / "config.json"
        if not cfg.is_file():
            raise ConfigError(f"{path}: folder has no config.json")
        return read_config_file(cfg), str(cfg)
    if path.is_file():
        return read_config_file(path), str(path)
    bundled = find_bundled(name)
    if bundled is not None:
        return read_bundled_config(bundled), bundled.id
    variant = find_variant(name)
    if variant is not None:
        base = find_bundled(variant.base)
        assert base is not None  # checked when the variants are read
        config = read_bundled_config(base)
        config.pop("quantization_config", None)
        if variant.quantization_config is not None:
            config["quantization_config"] = variant.quantization_config
        return config, variant.id
    return _fetch_from_hub(name), name


def _fetch_from_hub(name: str) -> dict[str, Any]:
    suggestions = closest(name, [m.id for m in bundled_models()] + [v.id for v in bundled_variants()])
    hint = f"; bundled ids close to it: {', '.join(suggestions)}" if suggestions else ""
    if "/" not in name or name.startswith((".", "/", "~")):
        raise UnknownModelError(
            f"model {name!r} is not a local path, nor a bundled id{hint}"
        )
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise UnknownModelError(
            f"model {name!r} is not bundled and huggingface_hub is not installed to fetch it{hint}"
        ) from None
    try:
        local = hf_hub_download(repo_id=name, filename="config.json")
    except Exception as exc:  # network, auth, missing repo: all one message to the user
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnknownModelError(
            f"model {name!r} is not bundled and its config.json could not be fetched "
            f"from the Hub ({reason}){hint}"
        ) from None
    return read_config_file(Path(local))


def load_model(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of an id, alias, config file, model folder or GGUF file (its
    architecture from the header, its weight bytes exactly the file's tensor data:
    :mod:`mfubench.model.gguf_model`)."""
    path = Path(name).expanduser()
    if path.is_file() and (path.suffix.lower() == ".gguf" or looks_like_gguf(path)):
        from mfubench.model.gguf_model import load_gguf

        return load_gguf(path)
    config, label = load_config(name)
    return parse_config(config, label)
