# creditflow: `make demo` to see it run, `make test` to check it.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# `make up BROKERS=3`: Kafka as a three-node KRaft cluster (scripts/stack, KAFKA_BROKERS).
STACK := $(if $(BROKERS),KAFKA_BROKERS=$(BROKERS) )scripts/stack

.PHONY: install demo test lint typecheck unit js up down status bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: install
	@scripts/demo

test: install lint typecheck js
	@scripts/stack up kafka redis rcluster
	@scripts/browser
	@scripts/openmeter-sdks
	@$(VENV)/bin/pytest -q

# Every broker-free test: no Kafka, no Redis, no browser (RocksDB runs in a temporary directory).
unit: install js
	@$(VENV)/bin/pytest -q tests --ignore=tests/integration --ignore=tests/browser

# The dashboard's pure ES modules (api/static) under node's own test runner: no npm, no browser.
js:
	@node --test tests/js/

lint: install
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

typecheck: install
	@$(VENV)/bin/mypy

up: install
	@$(STACK) up

down:
	@$(STACK) down

status:
	@$(STACK) status

bench: install
	@$(PY) -m pip install -q -e '.[dev,bench]'
	@command -v wrk >/dev/null || apt-get install -y -qq wrk
	@$(VENV)/bin/creditflow bench $(BENCH_ARGS)

clean: down
	rm -rf .local
