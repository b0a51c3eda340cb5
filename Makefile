# fadecast — the two sacred commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
FADECAST_HOME ?= $(CURDIR)/fadecast-data
export FADECAST_HOME
# Pin math libraries to one thread: multi-threaded runs were 20–70x slower under load here.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: demo test train bench setup clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[all]"
	@touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m serving.demo

test: setup
	@# Chromium for the web-page tests: installed when missing and root with apt (best effort;
	@# without it those tests skip with the reason).
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || \
	  { (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || \
	    echo "note: chromium not installed; web-page browser tests will skip"; }
	$(PY) -m pytest -p no:cacheprovider

train: setup
	$(VENV)/bin/fadecast train --config experiments/default/config.toml

bench: train
	$(PY) experiments/run_all.py

clean:
	rm -rf $(VENV) fadecast-data
