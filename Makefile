# `make demo`, `make test` and `make lab` are the README's commands: each sets
# everything up from a fresh clone (a virtual environment in .venv with the
# package and its dependencies, the panel's npm packages, Debian's chromium for
# the browser test), then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CHROMIUM := /usr/bin/chromium
# playwright-core drives Debian's chromium; no browser is ever downloaded.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
# jupyter refuses to run as root unless told.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: setup demo test lint unit jstest lab bench clean

# `pip install -e` builds the panel (hatch-jupyter-builder runs `npm run build:prod`).
$(STAMP): pyproject.toml package.json $(NODE_STAMP)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The panel's build, redone when its sources change. An editable install serves the
# tree's build (as `jupyter labextension develop` would): the shared-data copy that
# `pip install -e` made is replaced by a link to it.
LABEXT := etl_nb/labextension
LABEXT_INSTALLED := $(VENV)/share/jupyter/labextensions/etl_nb
$(LABEXT)/package.json: $(NODE_STAMP) $(wildcard labextension/src/*.ts labextension/style/*) tsconfig.json
	npm run --silent build:prod >/dev/null
	touch $@

$(LABEXT_INSTALLED): $(STAMP)
	rm -rf $(LABEXT_INSTALLED)
	ln -s $(CURDIR)/$(LABEXT) $(LABEXT_INSTALLED)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "make: install Debian's chromium (or set up $(CHROMIUM)) for the browser test"; exit 1; }
	$(if $(ALLOW_ROOT),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(ALLOW_ROOT),,sudo) apt-get install -y -qq chromium >/dev/null

setup: $(STAMP) $(LABEXT)/package.json $(LABEXT_INSTALLED) $(CHROMIUM)

demo: setup
	$(BIN)/etl-nb run notebooks/quickstart.ipynb -p start_date 2026-01-01
	$(BIN)/python -c "import polars as pl; print(pl.read_parquet('notebooks/data/output/revenue.parquet'))"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	npm run --silent lint

test: lint jstest
	$(BIN)/pytest

jstest: $(NODE_STAMP)
	npm test --silent

# JupyterLab on this folder with the "ETL pipelines" sidebar (the server extension is enabled on install).
lab: setup
	$(BIN)/jupyter lab $(ALLOW_ROOT)

# The full size writes docs/benchmarks.md and docs/bench/*.png (minutes, on an idle machine);
# `make bench BENCH_SIZE=small BENCH_OUT=/tmp/bench` is the smoke run.
BENCH_SIZE ?= full
BENCH_OUT ?= docs
bench: setup
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py --size $(BENCH_SIZE) --out $(BENCH_OUT)

clean:
	rm -rf $(VENV) .etl_nb notebooks/data/output node_modules labextension/lib etl_nb/labextension .jstest tsconfig.tsbuildinfo
