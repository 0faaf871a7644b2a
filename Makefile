# Every target sets itself up from nothing: a venv in .venv, the Python packages of pyproject.toml,
# and the few Debian tools the tests and benchmarks call. A stamp file keeps reruns instant.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# command:Debian package, for each tool the tests or benchmarks call (Debian keeps PostgreSQL's
# initdb/pg_ctl in /usr/lib/postgresql/<version>/bin, off PATH: tests/pg.py looks there)
DEBIAN_TOOLS := rsync:rsync chattr:e2fsprogs $(or $(lastword $(sort $(wildcard /usr/lib/postgresql/*/bin/initdb))),initdb):postgresql
DATA_DIR ?= .data
ROOT ?= $(CURDIR)/demo
HOST ?= 127.0.0.1
PORT ?= 8080
PYTEST_ARGS ?=

.PHONY: run test lint format bench bench-quick debian-tools clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat  # a path entry, no import hook at start-up
	touch $(STAMP)

debian-tools:
	@missing=""; for t in $(DEBIAN_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

## The service: API server + embedded SQLite store + embedded agent, on 127.0.0.1:8080.
run: $(STAMP)
	$(PY) -m compileall -q engine contract api agents cli  # bytecode, as an installed package has it
	mkdir -p $(DATA_DIR) $(ROOT)
	$(VENV)/bin/datasync-local serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR) --root $(ROOT)

## The whole test suite (unit, end to end through boto3, reliability).
test: $(STAMP) debian-tools
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP) debian-tools
	$(PY) -m benchmarks run

bench-quick: $(STAMP) debian-tools
	$(PY) -m benchmarks run --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
