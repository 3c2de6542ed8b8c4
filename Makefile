# Attune Pack Installer — every target bootstraps the project virtualenv it needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist worker processes for the test targets: `auto` is one per CPU; WORKERS=0 runs in one process.
WORKERS ?= auto

.PHONY: run test test-fast lint bench build deploy clean reset-local stop-local

$(STAMP): requirements-dev.lock pyproject.toml layers/shared/requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

## run: install the example packs end to end on the embedded local AWS stack (a local service on
## 127.0.0.1 that the first command starts and that keeps running; `make stop-local` stops it)
run: $(STAMP)
	$(BIN)/attune-packs install --registry examples/index.json notify_slack http_tools
	$(BIN)/attune-packs list

## test: lint, then the whole test suite (unit, contract, infrastructure, integration, e2e), on parallel workers
test: lint
	$(BIN)/python -m pytest -n $(WORKERS) --dist worksteal

## test-fast: the edit loop, under a minute on 2 cores: unit, contract and infrastructure tests minus the slow ones
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/contract tests/infrastructure -m "not slow" -n $(WORKERS) --dist worksteal -q

## lint: ruff (its rules, complexity at most 15: [tool.ruff.lint]), the formatting, the module and function
## sizes (scripts/check_sizes.py) and mypy --strict on the shared layer ([tool.mypy])
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/check_sizes.py
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH)

## reset-local: stop the local stack and forget everything it stored
reset-local: $(STAMP)
	$(BIN)/attune-packs local reset

## stop-local: stop the local stack (its state is kept for the next command)
stop-local: $(STAMP)
	$(BIN)/attune-packs local stop

build:
	sam build

deploy:
	sam deploy --guided

clean:
	rm -rf $(VENV) .attune .aws-sam .pytest_cache
