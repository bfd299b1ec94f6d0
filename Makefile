# The two set-up commands of the README: `make demo` and `make test`. Both create the virtualenv on first use.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint services-up services-down bench

$(BIN)/corrtrace: setup.cfg setup.py pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	@touch $@

demo: $(BIN)/corrtrace
	$(BIN)/corrtrace demo

lint: $(BIN)/corrtrace
	$(BIN)/ruff check .
	scripts/typecheck

# lint and tests both run; the target fails if either did
test: $(BIN)/corrtrace
	scripts/services up
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	scripts/typecheck || status=1; \
	$(BIN)/pytest -q --durations=15 || status=1; \
	exit $$status

services-up: $(BIN)/corrtrace
	scripts/services up

services-down:
	scripts/services down

bench: $(BIN)/corrtrace
	scripts/services up
	$(BIN)/python benchmarks/run_all.py
