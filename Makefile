# Two commands from a fresh clone:  `make train` (installs, then trains the default job) and `make test`.
# TORCH pins the torch build: torch==2.13.0 is the default; e.g. TORCH="torch --index-url URL" to choose a wheel index.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.ssgan-installed

.PHONY: install train test benchmark clean

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

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
