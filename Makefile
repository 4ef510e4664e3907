# `make run` serves the API on the embedded default; `make test` runs the whole suite.
# Each creates .venv and installs what it needs the first time (and when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench

run: $(VENV)/.installed
	$(BIN)/agora serve

# The unit layer first (no services, seconds), then integration and end-to-end tests, one
# process per core (each test has a store, a Redis key space and a data folder of its own).
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)
	$(BIN)/python -m pytest -n auto --dist worksteal --ignore=tests/unit $(PYTEST_ARGS)

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py $(BENCH_ARGS)

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@
