# Two commands for a newcomer:  `make smoke` (set up + run the whole pipeline at smoke scale, in
# smoke/) and `make test` (the test suite). Everything else is plain `darts`, `dvc` and `snakemake`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SMOKE  ?= smoke
MIRROR ?= $(or $(DARTS_DATA_MIRROR),$(abspath ../shared/datasets))
export DVC_NO_ANALYTICS := 1
RUN    := DARTS_DATA_MIRROR=$(MIRROR) PATH=$(abspath $(BIN)):$$PATH

.PHONY: setup smoke test test-fast bench slurm-profile

$(BIN)/darts: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,slurm]'
	@touch $@

setup: $(BIN)/darts

# The smoke pipeline in its own workspace (smoke/: params.yaml resolved at smoke scale, its own
# runs/ and results/), so the project's params.yaml, runs/ and dvc.lock stay as they are.
smoke: setup
	$(BIN)/darts workspace $(SMOKE) --scale smoke
	cd $(SMOKE) && $(RUN) dvc repro

test: setup
	$(RUN) $(BIN)/python -m pytest

test-fast: setup
	$(RUN) $(BIN)/python -m pytest -m "not slow"

bench: setup
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python benchmarks/bench_cli_startup.py

# Your SLURM profile (~/.config/snakemake/slurm), from the template: then `snakemake --profile slurm`.
slurm-profile:
	workflow/slurm/install-profile.sh
