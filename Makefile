# Two set-up commands: `make demo` (light serving install, starts the web app) and `make test`.
# Supported: Python 3.11-3.13. A command that runs (a pyenv shim on PATH may exist and refuse) counts.
runs = $(shell $(1) -c '' >/dev/null 2>&1 && echo $(1))
NEWEST := $(firstword $(foreach v,13 12 11,$(call runs,python3.$(v))))
# `make demo`: the newest python3.1x present.
PYTHON ?= $(NEWEST)
# `make test` installs the train extra, whose pinned torch 2.14.1 the development and CI machines
# hold on disk for 3.11 only (elsewhere it is a multi-GB download): it prefers python3.11.
TEST_PYTHON ?= $(firstword $(call runs,python3.11) $(NEWEST))
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export MALLOC_MMAP_MAX_ = 0
export MALLOC_TRIM_THRESHOLD_ = 68719476736

.PHONY: demo test lint typecheck unit install-serve install-all clean

$(VENV)/bin/python:
	$(if $(PYTHON),,$(error no python3.13, python3.12 or python3.11 runs here; install one or pass PYTHON=...))
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.serve: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[serve]'
	touch $@

$(VENV)/.all: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[serve,train,clahe,archive,ray,dev]'
	# the peer network (MIT), a training-time teacher and a Keras import example: --no-deps, its
	# wheel declares TensorFlow, which Keras 3 on the torch backend does not need
	$(PIP) install -q --no-deps sklesion==0.2.2
	touch $@ $(VENV)/.serve

install-serve: $(VENV)/.serve
install-all: $(VENV)/.all

# The venv that test (and what it runs) creates is TEST_PYTHON's; PYTHON=... on the command line wins.
install-all lint typecheck unit test: PYTHON = $(TEST_PYTHON)

## Start the web app on the bundled model (http://127.0.0.1:8000); needs no torch.
demo: $(VENV)/.serve
	$(VENV)/bin/dermalens serve --host 127.0.0.1 --port 8000

lint: $(VENV)/.all
	$(VENV)/bin/ruff check src tests benchmarks setup.py
	$(VENV)/bin/ruff format --check src tests benchmarks setup.py

typecheck: $(VENV)/.all
	$(VENV)/bin/mypy

unit: $(VENV)/.all
	$(VENV)/bin/pytest -q --timeout=900

## Everything CI runs: lint, types, tests.
test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
