# claims: two commands for a fresh machine (see README.md).
#   make run   set up .venv, install, run the pipeline (dvc repro) and tag the sample articles
#   make test  set up .venv, install with dev extras, run the test suite
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
PIP := $(BIN)/python -m pip
CODE := $(wildcard pipeline tests benchmarks scripts)

# Stage commands in dvc.yaml call `claims`; find it in the venv without activating it.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help run test install install-dev lint lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(PIP) install -q -c requirements.lock -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml requirements.lock | $(BIN)/python
	$(PIP) install -q -c requirements.lock -e '.[dev]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed  ## create .venv and install the project

install-dev: $(VENV)/.installed-dev  ## create .venv and install with dev extras

run: install  ## the main job: dvc repro (segment, labels, train, evaluate, predict)
	$(BIN)/dvc repro
	@echo "Report: predictions/report.html"

test: install-dev  ## the test suite (and ruff)
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/python -m pytest -q

lint: install-dev  ## ruff fixes and formatting
	$(BIN)/ruff check --fix $(CODE)
	$(BIN)/ruff format $(CODE)

lock: install-dev  ## refresh requirements.lock from the installed venv
	$(PIP) freeze --exclude-editable | grep -v '^-e ' > requirements.lock

clean:  ## remove the venv (data and models are DVC outputs: `dvc gc` or delete them)
	rm -rf $(VENV)
