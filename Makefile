# The two commands a new user needs (see README):
#   make demo   install into .venv (first time) and run the main job on embedded defaults
#   make test   install into .venv (first time) and run the whole test suite
# `make lint` runs the gates CI runs before the tests: ruff check, ruff format --check, mypy (strict on agent/
# and strategies/), lint-imports (the layer contracts in pyproject.toml); it stops at the first that fails.
# `make bench` runs the benchmarks against their peers (installs the bench extra).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install --quiet -e '.[local,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tradegraph demo

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	@echo '== gate: ruff check'
	@$(BIN)/ruff check .
	@echo '== gate: ruff format --check'
	@$(BIN)/ruff format --check .
	@echo '== gate: mypy (strict: agent/, strategies/)'
	@$(BIN)/mypy
	@echo '== gate: lint-imports (layers)'
	@$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[local,dev,bench,ray]'
	$(BIN)/python benchmarks/bench_backtest.py
	$(BIN)/python benchmarks/bench_llm.py
	$(BIN)/python benchmarks/bench_context.py
	$(BIN)/python benchmarks/bench_tick.py
	$(BIN)/python benchmarks/bench_agent_backtest.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_dashboard.py

clean:
	rm -rf $(VENV) reports data/store data/reports data/logs data/tradegraph.db*
