# The two commands: `make demo` and `make test`. Each works on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FRAUD_HOME ?= $(CURDIR)/.fraud
DAYS ?= 90
export FRAUD_HOME
export DAGSTER_HOME ?= $(FRAUD_HOME)/dagster_home

.PHONY: demo dev test lint audit bench install install-dev clean

# Lean install for the demo and the UI: the core package without the spark/aws/dev extras.
$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e .
	touch $@

# Everything the test tiers need: spark, aws (moto), dev tools.
$(BIN)/.installed-dev: $(BIN)/.installed
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/.installed
install-dev: $(BIN)/.installed-dev

demo: install
	$(BIN)/fraud-orchestration demo --days $(DAYS)

dev: install
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

lint: install-dev
	$(BIN)/ruff check fraud_orchestration tests benchmarks
	$(BIN)/ruff format --check fraud_orchestration tests benchmarks
	$(BIN)/mypy

# Known vulnerabilities in the installed dependencies (PyPI's advisory service). The project
# itself is editable and not on PyPI: skipped. A vulnerability without a fix is ignored only
# with --ignore-vuln <ID> and a comment saying why (none today).
audit: install-dev
	$(BIN)/python scripts/audit.py

test: install-dev lint audit
	bash scripts/install_chromium.sh
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster definitions validate -w workspace.yaml
	$(BIN)/pytest

bench: install-dev
	$(BIN)/python -m benchmarks.features
	$(BIN)/python -m benchmarks.handbook
	$(BIN)/python -m benchmarks.serving
	$(BIN)/python -m benchmarks.spark
	$(BIN)/python -m benchmarks.drift

clean:
	rm -rf $(FRAUD_HOME)
