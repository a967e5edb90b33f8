"""llama-bench results (``-o json``, ``jsonl``, ``csv``, ``md``) read as llama-bench writes them,
analysed at their depth with the weight bytes they loaded, on the device they name; published
``tg`` results stay below the catalog's bandwidth; malformed files fail naming file and field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mfubench.analysis.as_run import AsRun, point_setup, shown_setup
from mfubench.analysis.devices import hardware_of
from mfubench.analysis.measurement import Measurement
from mfubench.analysis.phases import analyze, decode_work, make_setup, prefill_work
from mfubench.counting.memory import weight_bytes
from mfubench.errors import InputFileError, MfubenchError
from mfubench.hardware.catalog import AmbiguousHardwareError
from mfubench.hardware.spec import parse_hardware
from mfubench.io.importers import load_measurements
from mfubench.io.importers.llama_bench import file_type
from mfubench.model.registry import load_model

DATA = Path(__file__).parent / "data" / "llama_bench"
QWEN = "Qwen/Qwen2.5-7B-Instruct"
LLAMA2 = str(DATA / "llama-2-7b-config.json")


def _setup(model: str, hardware: str | None, ms: list[Measurement]) -> Any:
    spec = load_model(model)
    hw = parse_hardware(hardware, attach_calibration=False) if hardware else hardware_of(ms)
    return make_setup(spec, hw)


@pytest.mark.parametrize(("name", "fmt", "pp_ns", "tg_ns"), [
    ("readme.json", "llama-bench.json", 72135640, 1076767880),
    ("readme.jsonl", "llama-bench.jsonl", 70497220, 1068078400),
    ("readme.csv", "llama-bench.csv", 70285660, 1067431600),
])
def test_the_readme_examples_in_every_exact_format(name: str, fmt: str, pp_ns: int, tg_ns: int) -> None:
    pp, tg = load_measurements(DATA / name)
    for m in (pp, tg):
        assert m.extra["format"] == fmt
        assert m.batch_size == 1 and m.depth == 0
        assert m.extra["devices"] == ["NVIDIA GeForce RTX 4080"]
        assert m.extra["file_type"] == "Q4_K_M"
        run = m.as_run
        assert isinstance(run, AsRun)
        assert run.weight_bytes == 4677120000 and run.params == 7615616512
        assert run.kv_type == "f16" and run.engine_gemm == "cuda" and run.pipeline == 1
    assert (pp.input_tokens, pp.output_tokens, pp.ttft_s, pp.itl_s) == (512, 1, pp_ns / 1e9, None)
    assert (tg.input_tokens, tg.output_tokens, tg.ttft_s) == (0, 128, None)
    assert tg.itl_s == pytest.approx(tg_ns / 1e9 / 128, rel=1e-15)


def test_markdown_old_and_new_test_names_depths_and_rates() -> None:
    old = load_measurements(DATA / "readme.md")
    assert [m.extra["test"] for m in old] == ["pp512", "tg128"]
    assert old[0].ttft_s == pytest.approx(512 / 2368.80)
    assert old[1].itl_s == pytest.approx(1 / 131.42)
    assert old[0].as_run.weight_bytes == pytest.approx(3.56 * 1024**3)
    assert old[0].extra["file_type"] == "Q4_0"
    assert any(f.startswith("time-from-rate") for f in old[0].extra["flags"])
    deep = load_measurements(DATA / "readme-depth.md")
    assert [(m.extra["test"], m.depth) for m in deep] == [
        ("pp512", 0), ("tg128", 0), ("pp512 @ d512", 512), ("tg128 @ d512", 512)]


@pytest.mark.parametrize(("model_type", "ftype"), [
    ("qwen2 7B Q4_K - Medium", "Q4_K_M"), ("llama 7B mostly Q4_0", "Q4_0"),
    ("llama 8B Q5_K - Small", "Q5_K_S"), ("llama 8B Q2_K - Medium", "Q2_K"),
    ("llama 8B IQ4_XS - 4.25 bpw", "IQ4_XS"), ("qwen3moe 30B.A3B Q8_0", "Q8_0"),
    ("llama 7B F16", "F16"), ("llama 8B BF16", "BF16"),
])
def test_the_file_type_from_model_type(model_type: str, ftype: str) -> None:
    assert file_type(model_type) == ftype


def test_pp_is_prefill_and_tg_is_decode_at_depth_exactly() -> None:
    ms = load_measurements(DATA / "readme-depth.md")
    setup = _setup(QWEN, "RTX-4080", ms)
    rows = analyze(setup, ms)
    assert [(r.phase, r.extra.get("depth")) for r in rows] == [
        ("prefill", 0), ("decode", 0), ("prefill", 512), ("decode", 512)]
    point, _ = point_setup(setup, ms[3])
    tg_at_512 = decode_work(point, 1, 512, 128)  # 128 decode steps at contexts 512..639
    assert rows[3].flops == tg_at_512.flops and rows[3].bytes == tg_at_512.bytes_per_gpu
    assert rows[3].seconds == pytest.approx(128 / 116.71)
    pp_at_512 = prefill_work(point_setup(setup, ms[2])[0], 1, 512, cached=512)
    assert rows[2].flops == pp_at_512.flops > rows[0].flops


def test_model_size_becomes_the_counted_weight_bytes_exactly() -> None:
    (pp, _) = load_measurements(DATA / "readme.json")
    setup = _setup(QWEN, None, [pp])
    point, flags = point_setup(setup, pp)
    assert sum(weight_bytes(point.spec).values()) == pytest.approx(4677120000, rel=1e-12)
    assert point.spec.weights.name == "Q4_K_M (llama-bench model_size)"
    assert point.dtype == "fp16_acc16"  # llama.cpp's CUDA fp16 GEMMs on a GeForce card
    assert point.kv_dtype == "fp16"
    assert flags == []
    wrong, _ = point_setup(make_setup(load_model(LLAMA2), setup.hardware), pp)
    assert any(f.startswith("model-mismatch") for f in point_setup(
        make_setup(load_model(LLAMA2), setup.hardware), pp)[1])
    del wrong


def test_the_device_comes_from_gpu_info_and_names_the_peak() -> None:
    ms = load_measurements(DATA / "readme.json")
    assert hardware_of(ms).name == "1xRTX-4080"
    shown = shown_setup(_setup(QWEN, None, ms), ms)
    assert shown.peak_label.startswith("datasheet dense fp16_acc16 peak 194.9 TFLOP/s")


def _edited(tmp_path: Path, name: str = "readme.json", **changes: Any) -> Path:
    doc = json.loads((DATA / name).read_text())
    for obj in doc:
        obj.update(changes)
    out = tmp_path / "edited.json"
    out.write_text(json.dumps(doc))
    return out


def test_an_apple_chip_name_asks_for_hardware_and_lists_the_variants(tmp_path: Path) -> None:
    path = _edited(tmp_path, gpu_info="Apple M3 Max", backends="Metal,BLAS")
    ms = load_measurements(path)
    with pytest.raises(AmbiguousHardwareError, match="Apple-M3-Max-30c, Apple-M3-Max-40c"):
        hardware_of(ms)
    rows = analyze(_setup(QWEN, "Apple-M3-Max-40c", ms), ms)
    assert rows[1].mbu is not None and rows[1].mfu is None  # Apple publishes no FLOP/s


def test_no_device_named_asks_for_hardware() -> None:
    with pytest.raises(MfubenchError, match="--hardware is needed"):
        hardware_of(load_measurements(DATA / "readme.md"))


def test_a_layer_split_is_a_pipeline_not_tensor_parallelism(tmp_path: Path) -> None:
    path = _edited(tmp_path, gpu_info="NVIDIA GeForce RTX 3090, NVIDIA GeForce RTX 3090")
    ms = load_measurements(path)
    assert ms[1].as_run.pipeline == 2
    setup = _setup(QWEN, None, ms)
    assert setup.hardware.name == "1xRTX-3090"
    point, flags = point_setup(setup, ms[1])
    assert point.hardware.name == "1x2xRTX-3090 (layer split)" and point.tp == 1
    assert point.hardware.memory_capacity == 48e9
    assert any(f.startswith("layer-split") for f in flags)
    decode = analyze(setup, ms)[1]
    assert decode.mbu == pytest.approx(decode.bytes / decode.seconds / 936e9)
    two = make_setup(load_model(QWEN), parse_hardware("2xRTX-3090", attach_calibration=False))
    assert analyze(two, ms)[1].mbu == pytest.approx(decode.mbu)


def test_partial_offload_is_stated() -> None:
    ms = load_measurements(DATA / "readme-offload.md")
    rows = analyze(_setup(LLAMA2, "RTX-4090", ms), ms)
    partial = [r for r in rows if any(f.startswith("partial-offload: 10 of 32") for f in r.flags)]
    assert len(partial) == 2 and all(r.batch_size == 1 for r in partial)
    assert not any("partial-offload" in f for r in rows[2:] for f in r.flags)


# Published llama-bench tg results: MBU against the catalog's bandwidth, all below 100 %.
PUBLISHED = [
    # (file, test index, model, hardware, MBU low, high); sources in tests/data/llama_bench/README.md
    ("readme.json", 1, QWEN, None, 0.70, 0.75),  # RTX 4080, Qwen2.5 7B Q4_K_M: 118.9 t/s
    ("pr4766-rtx4090.md", 1, LLAMA2, "NVIDIA GeForce RTX 4090", 0.79, 0.84),  # F16 61.03 t/s
    ("pr4766-rtx4090.md", 3, LLAMA2, "NVIDIA GeForce RTX 4090", 0.67, 0.72),  # Q8_0 98.13 t/s
    ("pr4812-rtx3090ti.md", 1, LLAMA2, "NVIDIA GeForce RTX 3090 Ti", 0.46, 0.51),  # Q4_0 127.43
    ("discussion4167-m1-max-32c.md", 1, LLAMA2, "Apple-M1-Max-32c", 0.76, 0.81),  # F16 23.03
    ("discussion4167-m1-max-32c.md", 3, LLAMA2, "Apple-M1-Max-32c", 0.68, 0.73),  # Q8_0 40.20
    ("discussion4167-m1-max-32c.md", 5, LLAMA2, "Apple-M1-Max-32c", 0.56, 0.61),  # Q4_0 61.19
]


@pytest.mark.parametrize(("name", "index", "model", "hardware", "low", "high"), PUBLISHED)
def test_published_tg_results_are_below_the_bandwidth(
    name: str, index: int, model: str, hardware: str | None, low: float, high: float
) -> None:
    ms = load_measurements(DATA / name)
    m = ms[index]
    assert m.input_tokens == 0 and m.output_tokens == 128
    (row,) = analyze(_setup(model, hardware, ms), [m])
    assert row.phase == "decode" and row.bound in ("memory", None)  # None: no FLOP/s published
    assert row.mbu is not None and low <= row.mbu <= high < 1.0
    assert not row.above_peak and not row.infeasible


def test_published_pp_results_are_below_the_peak() -> None:
    ms = load_measurements(DATA / "pr4766-rtx4090.md")
    rows = analyze(_setup(LLAMA2, "RTX-4090", ms), [ms[0], ms[2]])
    assert all(r.phase == "prefill" and r.mfu is not None and r.mfu < 1.0 for r in rows)
    assert {r.dtype for r in rows} == {"fp16_acc16"}


def test_kv_on_host_is_flagged() -> None:
    ms = load_measurements(DATA / "pr4812-rtx3090ti.md")
    assert not any("kv-on-host" in f for f in ms[1].extra["flags"])
    assert any("kv-on-host" in f for f in ms[3].extra["flags"])


# --- malformed files: InputFileError naming the file and the field ---

@pytest.mark.parametrize(("field", "value", "message"), [
    ("avg_ns", "fast", "field 'avg_ns': expected a number"),
    ("avg_ns", 0, "field 'avg_ns'"),
    ("n_gen", -1, "field 'n_gen'"),
    ("n_prompt", 1.5, "field 'n_prompt': must be a whole number"),
    ("n_depth", "deep", "field 'n_depth'"),
    ("model_size", None, "field 'model_size'"),
    ("model_size", -5, "field 'model_size'"),
    ("model_type", 7, "field 'model_type': expected text"),
    ("type_v", "q8_0", "field 'type_v'"),
    ("n_gpu_layers", "all", "field 'n_gpu_layers'"),
    ("samples_ns", [1, 2], "field 'avg_ns': "),
    ("samples_ns", "x", "field 'samples_ns'"),
    ("gpu_info", 3, "field 'gpu_info'"),
])
def test_a_malformed_field_is_named(tmp_path: Path, field: str, value: Any, message: str) -> None:
    path = _edited(tmp_path, **{field: value})
    with pytest.raises(InputFileError, match=message) as info:
        load_measurements(path)
    assert str(path) in str(info.value)


def test_a_missing_marker_and_a_ragged_csv_are_named(tmp_path: Path) -> None:
    doc = json.loads((DATA / "readme.json").read_text())
    del doc[1]["avg_ns"]
    path = tmp_path / "missing.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputFileError, match=r"test 1: field 'avg_ns'"):
        load_measurements(path)
    lines = (DATA / "readme.csv").read_text().splitlines()
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("\n".join([lines[0], lines[1] + ',"extra"']) + "\n")
    with pytest.raises(InputFileError, match=r"ragged.csv: row 2: .*values, but the header"):
        load_measurements(ragged)


@pytest.mark.parametrize(("old", "new", "field"), [
    ("tg 128 ", "tg x   ", "test"), ("131.42 ± 0.59", "131.42 +- 0.5", "t/s"),
    ("3.56 GiB", "3.56 GB ", "size"), ("6.74 B", "6.74 T", "params"),
])
def test_a_malformed_markdown_cell_is_named(tmp_path: Path, old: str, new: str, field: str) -> None:
    path = tmp_path / "bad.md"
    path.write_text((DATA / "readme.md").read_text().replace(old, new, 1))
    with pytest.raises(InputFileError, match=rf"bad.md: line \d+: field '{field}'"):
        load_measurements(path)


BAD_VALUES: list[Any] = [None, "", "x", -1, 0, 1.5, 1e300, True, [], {}, float("nan")]


@pytest.mark.parametrize("name", ["readme.json", "readme.jsonl"])
def test_fuzz_every_field_gives_a_measurement_or_an_input_file_error(tmp_path: Path, name: str) -> None:
    text = (DATA / name).read_text()
    docs = json.loads(text) if name.endswith(".json") else [json.loads(x) for x in text.splitlines()]
    for key in docs[0]:
        for bad in BAD_VALUES:
            mutated = copy.deepcopy(docs)
            mutated[1][key] = bad
            path = tmp_path / name
            path.write_text(json.dumps(mutated) if name.endswith(".json")
                            else "\n".join(json.dumps(d) for d in mutated))
            try:
                load_measurements(path)
            except InputFileError as exc:
                assert str(path) in str(exc)


def test_report_and_compare_take_the_device_from_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """As ``analyze``: llama-bench's gpu_info names the RTX 4080, so --hardware is optional; the
    page names it; a file without a device still asks for --hardware."""
    from mfubench.cli import main

    out = tmp_path / "r.html"
    assert main(["report", str(DATA / "readme.json"), "--model", "Qwen/Qwen2.5-7B-Instruct", "-o", str(out)]) == 0
    assert "RTX-4080, TP 1, convention causal" in out.read_text()
    capsys.readouterr()
    assert main(["compare", str(DATA / "readme.json"), str(DATA / "readme.jsonl"), "--model",
                 "Qwen/Qwen2.5-7B-Instruct", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "0.7168 TB/s" in doc["peak"]  # the RTX 4080's 716.8 GB/s, from the catalog entry gpu_info names
    assert all(x["mfu"] is not None and x["mfu"] < 1 for r in doc["rows"] for x in r["runs"])
    assert main(["report", "tests/data/seed/prefill.json", "--model", "Qwen/Qwen2.5-7B-Instruct",
                 "-o", str(tmp_path / "x.html")]) == 2
    assert "--hardware is needed" in capsys.readouterr().err
