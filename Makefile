# The two set-up commands of the README: `make demo` and `make test`. Each creates the virtualenv on first use
# and installs what it needs: `demo` the package with the demo's extra, `test` the dev tools as well.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check

.PHONY: demo test lint native services-up services-down bench

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 2; }
	@echo "== creating the virtualenv $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# pip prints each package as it is fetched, then installs them all (the silent last step is the longest)
$(VENV)/.installed-demo: setup.cfg setup.py pyproject.toml | $(BIN)/python
	@echo "== installing corrtrace and what the demo needs (pip install -e '.[demo]')"
	$(PIP) install -e ".[demo]"
	@touch $@

$(VENV)/.installed-dev: setup.cfg setup.py pyproject.toml | $(BIN)/python
	@echo "== installing corrtrace with every extra and the dev tools (pip install -e '.[dev]')"
	$(PIP) install -e ".[dev]"
	@touch $@ $(VENV)/.installed-demo

# the full (dev) install: tests, lint, benchmarks
$(BIN)/corrtrace: $(VENV)/.installed-dev
	@touch $@

# the text formats' parsers compiled with mypyc (the dev extra's), rebuilt when a source they depend on changed;
# without a C compiler, mypyc or Python's headers they run as Python (collector/README.md, "Compiled parsers")
native: $(BIN)/corrtrace
	scripts/build-native $(BIN)/python

demo: $(VENV)/.installed-demo
	$(BIN)/corrtrace demo

lint: $(BIN)/corrtrace
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	scripts/typecheck

# in this order: the backends, then ruff (lint and format), mypy and pytest; the target fails if any of them did
test: native
	scripts/services up
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check . || status=1; \
	scripts/typecheck || status=1; \
	$(BIN)/pytest -q --durations=15 || status=1; \
	exit $$status

services-up: $(BIN)/corrtrace
	scripts/services up

services-down:
	scripts/services down

bench: native
	scripts/services up
	$(BIN)/python benchmarks/run_all.py
