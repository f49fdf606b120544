# Two set-up commands: `make demo` (light serving install, starts the web app) and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export MALLOC_MMAP_MAX_ = 0
export MALLOC_TRIM_THRESHOLD_ = 68719476736

.PHONY: demo test lint typecheck unit install-serve install-all clean

$(VENV)/bin/python:
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

## Start the web app on the bundled model (http://127.0.0.1:8000); needs no torch.
demo: $(VENV)/.serve
	$(VENV)/bin/dermalens serve --host 127.0.0.1 --port 8000

lint: $(VENV)/.all
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(VENV)/.all
	$(VENV)/bin/mypy

unit: $(VENV)/.all
	$(VENV)/bin/pytest -q --timeout=900

## Everything CI runs: lint, types, tests.
test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
