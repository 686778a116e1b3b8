# Two commands from a fresh clone:  `make train` (installs, then trains the default job) and `make test`.
# TORCH pins the torch build: torch==2.13.0 is the default; e.g. TORCH="torch --index-url URL" to choose a wheel index.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.ssgan-installed

.PHONY: install train test wheel-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/ssgan-train $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

# A wheel carries the configs: build it, install it into a fresh environment, train from another folder.
wheel-check: $(STAMP)
	rm -rf dist build
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist .
	rm -rf build
	set -e; check=$$(mktemp -d); \
	$(PYTHON) -m venv $$check/venv; \
	$$check/venv/bin/python -m pip install --quiet $(TORCH); \
	$$check/venv/bin/python -m pip install --quiet dist/ssgan-*.whl; \
	cd $$check && $$check/venv/bin/ssgan-train trainer.fast_dev_run=true hydra.run.dir=$$check/run > $$check/log 2>&1 \
	  || { cat $$check/log; exit 1; }; \
	test -f $$check/run/metrics.json; echo "wheel check: ssgan-train ran from $$check with the installed configs"; \
	rm -rf $$check

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache dist build
