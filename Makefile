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

# llama.cpp is built without its AMX kernels: on virtual machines that report AMX they crash (a segfault in
# ggml_backend_amx_mul_mat), and the 135M embedded model gains nothing from them. A native build (-march=native)
# compiles them in wherever the CPU reports AMX, so x86-64 builds name their instruction sets instead (AVX2,
# FMA, F16C, BMI2; no AVX-512, no AMX). A llama-cpp-python wheel from pip's cache that still fails
# .ci/check-llama.py is removed from the cache and rebuilt once (3-15 minutes on two cores); later installs
# reuse the rebuilt wheel.
LLAMA_CMAKE := $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)
LLAMA_BUILD := CMAKE_ARGS='$(LLAMA_CMAKE)' CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc)

$(STAMP): pyproject.toml | $(BIN)/python
	$(LLAMA_BUILD) $(BIN)/pip install --quiet -e '.[local,dev]'
	$(BIN)/python .ci/check-llama.py || { \
	  { $(BIN)/pip cache remove 'llama_cpp_python*' || true; } && \
	  $(LLAMA_BUILD) $(BIN)/pip install --quiet --force-reinstall --no-deps --no-binary llama-cpp-python \
	    "llama-cpp-python==$$($(BIN)/pip show llama-cpp-python | sed -n 's/^Version: //p')" && \
	  $(BIN)/python .ci/check-llama.py; }
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
