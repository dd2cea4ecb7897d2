# creditflow: `make demo` to see it run, `make test` to check it.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit up down status bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: install
	@scripts/demo

test: install lint typecheck
	@scripts/stack up kafka redis
	@scripts/browser
	@scripts/openmeter-sdks
	@$(VENV)/bin/pytest -q

unit: install
	@$(VENV)/bin/pytest -q tests/core tests/models

lint: install
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

typecheck: install
	@$(VENV)/bin/mypy

up: install
	@scripts/stack up

down:
	@scripts/stack down

status:
	@scripts/stack status

bench: install
	@$(PY) -m pip install -q -e '.[dev,bench]'
	@command -v wrk >/dev/null || apt-get install -y -qq wrk
	@$(VENV)/bin/creditflow bench

clean: down
	rm -rf .local
