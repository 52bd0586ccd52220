# The README's two commands are `make run` and `make test`; both bootstrap .venv themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config/local

.PHONY: run test lint typecheck pytest bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "plantd needs Python >= 3.11 (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,all]'
	@touch $@

## run: the appliance stack on this machine with simulated devices (config/local; Ctrl-C stops)
run: $(STAMP)
	$(BIN)/plant --config $(CONFIG) up

## test: everything CI checks — lint, format, types, the whole pytest suite
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

## bench: benchmarks that print figures and ratios (not part of `make test`; ~15 minutes)
BENCHES ?= mdp_broker state modbus opcua sinks
bench: $(STAMP)
	@for b in $(BENCHES); do echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; echo; done

clean:
	rm -rf $(VENV) .plantd .mypy_cache .ruff_cache .pytest_cache build *.egg-info
