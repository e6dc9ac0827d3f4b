# The two commands a new user needs (see README):
#   make demo   install into .venv (first time) and run the main job on embedded defaults
#   make test   install into .venv (first time) and run the whole test suite
# `make bench` runs the benchmarks against their peers (installs the bench extra).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench install clean

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

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[local,dev,bench]'
	$(BIN)/python benchmarks/bench_backtest.py
	$(BIN)/python benchmarks/bench_llm.py
	$(BIN)/python benchmarks/bench_context.py
	$(BIN)/python benchmarks/bench_tick.py

clean:
	rm -rf $(VENV) reports data/store data/tradegraph.db*
