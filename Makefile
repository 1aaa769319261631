# The README's first commands. Real datasets are read from $GRAPHREC_DATA_DIR (default: ../shared/datasets).
SHELL := /bin/bash
VENV := .venv/bin
export GRAPHREC_DATA_DIR ?= $(abspath ../shared/datasets)

.PHONY: setup quickstart test test-fast

setup:
	bash scripts/setup.sh

# Sets everything up and runs LightGCN on the embedded synthetic dataset; prints a metrics table.
quickstart: setup
	$(VENV)/graphrec-lab run

# Sets everything up and runs the whole suite, slow tests included (what CI runs).
test: setup
	$(VENV)/python -m pytest -m "slow or not slow" -q

# The fast subset for development.
test-fast:
	$(VENV)/python -m pytest -q
