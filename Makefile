# fskit — two commands set everything up: `make lab` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8888
# JupyterLab refuses to start as root unless told; it binds 127.0.0.1 either way.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--ServerApp.allow_root=True,)

.PHONY: lab test demo lint format sample-data bench clean

# The environment: created once, refreshed when pyproject.toml changes.
$(BIN)/fskit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[notebook,test]'
	touch $@

sample_data/transactions.parquet: | $(BIN)/fskit
	$(BIN)/fskit sample-data --out sample_data

sample-data: sample_data/transactions.parquet

lab: $(BIN)/fskit sample-data
	$(BIN)/jupyter lab --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port=$(PORT) \
		--ServerApp.root_dir=notebooks $(ALLOW_ROOT)

test: $(BIN)/fskit sample-data
	$(BIN)/ruff check fskit widgets tests benchmarks
	$(BIN)/ruff format --check fskit widgets tests benchmarks
	$(BIN)/python -m pytest

demo: $(BIN)/fskit sample-data
	$(BIN)/fskit demo

lint:
	$(BIN)/ruff check fskit widgets tests benchmarks

format:
	$(BIN)/ruff format fskit widgets tests benchmarks
	$(BIN)/ruff check --fix fskit widgets tests benchmarks

bench: $(BIN)/fskit
	$(BIN)/python benchmarks/pit_join.py

clean:
	rm -rf $(VENV) feature_repo test-artifacts .pytest_cache
