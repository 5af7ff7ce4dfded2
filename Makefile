# `make demo` and `make test` are the README's two commands: each sets
# everything up from a fresh clone (a virtual environment in .venv with the
# package and its dependencies), then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/etl-nb run notebooks/quickstart.ipynb -p start_date 2026-01-01
	$(BIN)/python -c "import polars as pl; print(pl.read_parquet('notebooks/data/output/revenue.parquet'))"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# The full size writes docs/benchmarks.md and docs/bench/*.png (minutes, on an idle machine);
# `make bench BENCH_SIZE=small BENCH_OUT=/tmp/bench` is the smoke run.
BENCH_SIZE ?= full
BENCH_OUT ?= docs
bench: setup
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py --size $(BENCH_SIZE) --out $(BENCH_OUT)

clean:
	rm -rf $(VENV) .etl_nb notebooks/data/output
