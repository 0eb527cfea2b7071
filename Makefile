# Two commands for a newcomer:  `make smoke` (set up + run the whole pipeline at smoke scale)
# and `make test` (the test suite). Everything else is plain `darts`, `dvc` and `snakemake`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
MIRROR ?= $(or $(DARTS_DATA_MIRROR),$(abspath ../shared/datasets))
export DVC_NO_ANALYTICS := 1

.PHONY: setup smoke test bench clean-runs

$(BIN)/darts: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,slurm]'
	@touch $@

setup: $(BIN)/darts

smoke: setup
	DARTS_DATA_MIRROR=$(MIRROR) PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc exp run -S scale=smoke

test: setup
	DARTS_DATA_MIRROR=$(MIRROR) PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest

bench: setup
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python benchmarks/bench_cli_startup.py
