"""Fuzz the one config adapter: every malformed ``config.json`` gives a :class:`ConfigError`
naming the file (and, where one field is of the wrong type, that field), never another
exception.

The seeds are the bundled configs of every supported family; hypothesis drops fields, replaces
values with any JSON value (nested ones included), and mutates the nested objects
(``text_config``, ``quantization_config``) and lists (``layer_types``, ``mlp_only_layers``),
with extreme numbers (2^40 and beyond, 10^400, NaN, infinities, negatives) and lists of up to
100,000 entries (:mod:`extreme`): a hostile ``num_hidden_layers`` is refused, not built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extreme import extreme_numbers, huge_lists
from mfubench.errors import ConfigError
from mfubench.model.hf_config import parse_config
from mfubench.model.spec import ModelSpec

CONFIGS = Path(__file__).parents[1] / "src" / "mfubench" / "model" / "configs"
SEEDS = {p.stem: json.loads(p.read_text()) for p in sorted(CONFIGS.glob("*.json")) if p.name != "index.json"}
NAME = "fuzzed/config.json"

scalars = st.none() | st.booleans() | extreme_numbers | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | huge_lists(scalars)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
NESTED_KEYS = ("quant_method", "bits", "w_bit", "group_size", "weight_block_size", "modules_to_not_convert",
               "hidden_size", "num_attention_heads", "model_type", "vocab_size")


quantization_configs = st.fixed_dictionaries(
    {"quant_method": st.sampled_from(["fp8", "awq", "gptq", "mxfp4", "bitsandbytes"]) | json_values},
    optional={k: json_values for k in ("bits", "w_bit", "group_size", "q_group_size", "weight_block_size",
                                       "modules_to_not_convert")},
)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(json.dumps(SEEDS[draw(st.sampled_from(sorted(SEEDS)))]))
    if draw(st.integers(0, 3)) == 0:
        config["quantization_config"] = draw(quantization_configs)
    if draw(st.integers(0, 3)) == 0:
        config[draw(st.sampled_from(["mlp_only_layers", "layer_types"]))] = draw(st.lists(json_values, max_size=4))
    for _ in range(draw(st.integers(1, 4))):
        target = config
        nested = [k for k in ("text_config", "quantization_config") if isinstance(config.get(k), dict)]
        if nested and draw(st.booleans()):
            target = config[draw(st.sampled_from(nested))]
        keys = sorted(target) + list(NESTED_KEYS) + ["layer_types", "mlp_only_layers", "quantization_config"]
        key = draw(st.sampled_from(keys))
        if draw(st.integers(0, 3)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(json_values)
    return config


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_any_mutated_config_parses_or_names_the_file(config: dict[str, Any]) -> None:
    try:
        spec = parse_config(config, NAME)
    except ConfigError as exc:
        assert NAME in str(exc)
    else:
        assert isinstance(spec, ModelSpec)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_field_of_the_wrong_type_is_named(data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(["meta-llama--Llama-3.1-8B", "Qwen--Qwen3-8B", "mistralai--Mistral-7B-v0.1"]))
    config = dict(SEEDS[seed])
    key = data.draw(st.sampled_from(["hidden_size", "num_hidden_layers", "vocab_size", "num_attention_heads",
                                     "intermediate_size"]))
    config[key] = data.draw(st.text(max_size=6) | st.lists(st.integers(), max_size=2) | st.just(-3) | st.just(1.5))
    with pytest.raises(ConfigError) as err:
        parse_config(config, NAME)
    assert NAME in str(err.value) and key in str(err.value)


@pytest.mark.parametrize("value", [None, [], "x", 3, [1, 2], {"a": 1}])
def test_non_object_configs_are_refused(value: object) -> None:
    with pytest.raises(ConfigError, match=NAME):
        parse_config(value, NAME)  # type: ignore[arg-type]
