"""``mfubench hardware list|show|detect`` and ``mfubench calibrate`` through the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mfubench.cli import main


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MFUBENCH_CACHE_DIR", str(tmp_path))
    return tmp_path


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_show_json_has_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, ["hardware", "show", "H100-SXM", "--json"])
    assert isinstance(data, dict)
    assert data["name"] == "H100-SXM"
    assert data["peak_flops"]["bf16"] == pytest.approx(989.4e12)
    assert data["peak_flops"]["fp8"] == pytest.approx(1978.9e12)
    assert data["memory_bandwidth"] == pytest.approx(3.35e12)
    assert data["memory_capacity"] == 80e9
    assert data["interconnect"] == {"kind": "NVLink", "generation": "4",
                                    "bandwidth_per_direction": 450e9}
    assert data["source"].startswith("https://")
    assert data["count"] == 1 and data["measured"] is False


@pytest.mark.parametrize(
    ("name", "dtype", "flops", "bandwidth"),
    [
        ("H200-SXM", "bf16", 989.4e12, 4.8e12),
        ("A100-SXM-80GB", "bf16", 312e12, 2.039e12),
        ("MI300X", "bf16", 1307.4e12, 5.3e12),
        ("B200", "bf16", 2250e12, 8e12),
        ("L40S", "bf16", 362.05e12, 0.864e12),
    ],
)
def test_show_gives_the_required_figures(capsys: pytest.CaptureFixture[str], name: str, dtype: str,
                                         flops: float, bandwidth: float) -> None:
    data = _json(capsys, ["hardware", "show", name, "--json"])
    assert isinstance(data, dict)
    assert data["peak_flops"][dtype] == pytest.approx(flops)
    assert data["memory_bandwidth"] == pytest.approx(bandwidth)


def test_show_text_and_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hardware", "show", "4xH100-SXM"]) == 0
    out = capsys.readouterr().out
    assert "4xH100-SXM" in out and "989.4 TFLOP/s" in out and "3,957.6 TFLOP/s" in out
    assert "3.35 TB/s" in out


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, ["hardware", "list", "--json"])
    assert isinstance(data, list) and len(data) >= 29
    assert {"H100-SXM", "MI250X", "TPU-v6e"} <= {d["name"] for d in data}
    assert main(["hardware", "list"]) == 0
    out = capsys.readouterr().out
    assert "H100-SXM" in out and "362.05" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["hardware", "show", "FOO"], "unknown hardware"),
    (["hardware", "show", "0xH100"], "at least 1"),
    (["hardware", "show", "cpu"], "mfubench calibrate"),
])
def test_errors_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                                        message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_calibrate_then_show_cpu(capsys: pytest.CaptureFixture[str], cache: Path) -> None:
    data = _json(capsys, ["calibrate", "--threads", "1", "--quick", "--json",
                          "--dtypes", "fp32", "bf16", "fp8"])
    assert isinstance(data, dict)
    assert data["threads"] == 1 and data["skipped"] == ["fp8"]
    assert data["peak_flops"]["fp32"] > 0 and data["memory_bandwidth"] > 0
    assert Path(data["path"]).parent == cache / "calibration"
    shown = _json(capsys, ["hardware", "show", "cpu:1", "--json"])
    assert isinstance(shown, dict)
    assert shown["measured"] is True and shown["spec"] == "cpu:1"
    assert shown["peak_flops"]["fp32"] == data["peak_flops"]["fp32"]
    assert main(["calibrate", "--threads", "1", "--quick", "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "GFLOP/s" in out or "TFLOP/s" in out
    assert "saved" not in out


def test_calibrate_and_show_cpu_print_the_ceiling_beside_the_measurement(
        capsys: pytest.CaptureFixture[str], cache: Path) -> None:
    assert main(["calibrate", "--threads", "1", "--quick", "--model", "Qwen/Qwen3-8B",
                 "--dtypes", "fp32"]) == 0
    out = capsys.readouterr().out.replace("\n", " ")
    assert re.search(r"ceiling: (1 core\(s\) x [0-9.]+ GHz|the machine reveals no clock)", out)
    assert "fp32 peak reached by" in out and "Qwen/Qwen3-8B" in out
    data = _json(capsys, ["hardware", "show", "cpu:1", "--json"])
    assert isinstance(data, dict)
    ceiling = data["ceiling"]
    assert ceiling["cores"] == 1 and "fp32" in ceiling["instructions"]
    assert data["calibration"]["shapes_from"] == "Qwen/Qwen3-8B"
    # the linear shapes of Qwen3-8B (hidden 4096, 32 + 2 x 8 heads of 128) were timed
    assert {"k": 4096, "n": 6144} in [{"k": g["k"], "n": g["n"]} for g in data["calibration"]["gemms"]]
    assert main(["hardware", "show", "cpu:1"]) == 0
    shown = capsys.readouterr().out
    assert "ceiling (ISA x cores x clock)" in shown and "measured fp32 peak reached by" in shown


def test_detect_json(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, ["hardware", "detect", "--json"])
    assert isinstance(data, dict)
    assert data["cpu"]["model"] and data["cpu"]["logical_cpus"] >= 1
    assert isinstance(data["gpus"], list) and data["hardware"]
