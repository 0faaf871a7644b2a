# Every target sets itself up from nothing: a venv in .venv, the Python packages of pyproject.toml,
# and the few Debian tools the tests and benchmarks call. Two stamp files keep reruns instant:
# `make run` installs the runtime only; `make test`/`make lint` add the dev extras on top.
# Packages are installed with uv (from PATH, else bootstrapped once per user into
# ~/.cache/datasync-local/uv, shared by every clone as uv's wheel cache is): pip spent
# ~25 s of CPU resolving the runtime's 20 packages on this 2-core machine, uv ~3 s.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
# a path entry, no import hook at start-up
EDITABLE := --config-settings editable_mode=compat
# per user, not per clone: a fresh clone spent 15 s of its make run bootstrapping its own
UV_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/datasync-local/uv
UV := $(or $(shell command -v uv 2>/dev/null),$(UV_DIR)/bin/uv)
INSTALL = $(UV) pip install --quiet --python $(PY)
# make run: no --compile-bytecode (it compiles every installed module, ~12 s of a fresh clone's
# make run); serve writes the bytecode of what it imports at its first start instead (~3 s),
# even where PYTHONDONTWRITEBYTECODE is set, which would recompile ~200 modules at every start
RUN_ENV := env -u PYTHONDONTWRITEBYTECODE
# command:Debian package, for each tool the tests or benchmarks call (Debian keeps PostgreSQL's
# initdb/pg_ctl in /usr/lib/postgresql/<version>/bin, off PATH: tests/pg.py looks there)
DEBIAN_TOOLS := rsync:rsync /usr/bin/aws:awscli chromium:chromium chromedriver:chromium-driver chattr:e2fsprogs setfacl:acl getfacl:acl $(or $(lastword $(sort $(wildcard /usr/lib/postgresql/*/bin/initdb))),initdb):postgresql
ifeq ($(NO_CONTAINER),)
DEBIAN_TOOLS += podman:podman runc:runc debootstrap:debootstrap
endif
DATA_DIR ?= .data
ROOT ?= $(CURDIR)/demo
HOST ?= 127.0.0.1
PORT ?= 8080
PYTEST_ARGS ?=

.PHONY: run test lint format bench bench-quick debian-tools container-base clean

$(UV_DIR)/bin/uv:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(UV_DIR) uv

$(RUNTIME_STAMP): pyproject.toml | $(UV)
	test -x $(PY) || $(UV) venv --quiet --seed --python $(PYTHON) $(VENV)  # --seed: pip too
	$(INSTALL) -e . $(EDITABLE)
	touch $(RUNTIME_STAMP)

$(DEV_STAMP): $(RUNTIME_STAMP)
	$(INSTALL) -e '.[dev]' $(EDITABLE)
	# the suite starts serve and agents hundreds of times, maybe under PYTHONDONTWRITEBYTECODE:
	# every installed module and ours compiled once here (uv's --compile-bytecode would compile
	# only the packages of this install, not the runtime's)
	$(PY) -m compileall -q -j 0 $(VENV)/lib engine contract api agents cli > /dev/null || true  # a third-party file that does not compile is no reason to stop
	touch $(DEV_STAMP)

debian-tools:
	@missing=""; for t in $(DEBIAN_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

## The real image test (tests/cli/test_container_image.py) needs podman with runc (crun refuses
## this VM's hybrid cgroups; both come with debian-tools) and a base image. With no registry
## reachable, deploy/container-base.sh bootstraps one from Debian's mirror, once per machine
## (~3-5 min): the test does it itself, first in its worker, while the rest of the suite runs.
## `make container-base` does it ahead. NO_CONTAINER=1 leaves podman out and the test skips.
container-base: debian-tools
	@command -v podman >/dev/null && { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; $$SUDO deploy/container-base.sh; } \
	  || echo "container-base: podman is not installed (NO_CONTAINER set?)"

## The service: API server + embedded SQLite store + embedded agent, on 127.0.0.1:8080.
run: $(RUNTIME_STAMP)
	@$(PY) -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("$(HOST)", $(PORT)))' 2>/dev/null \
	  || { echo "make run: $(HOST):$(PORT) is already in use; pick another port, e.g. make run PORT=$$(( $(PORT) + 1 ))" >&2; exit 1; }
	mkdir -p $(DATA_DIR) $(ROOT)
	$(RUN_ENV) $(VENV)/bin/datasync-local serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR) --root $(ROOT)

## The whole test suite (unit, end to end through boto3, reliability).
# In TEST_WORKERS parallel pytest-xdist workers (0: in this process, serially): the suite mostly
# waits on real servers, agents, throttled transfers and a real schedule minute, so more workers
# than cores pay. --dist loadgroup keeps each xdist_group on one worker.
TEST_WORKERS ?= 3
test: $(DEV_STAMP) debian-tools
	DATASYNC_LOCAL_UV=$(UV) $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=15 $(PYTEST_ARGS)  # the slowest tests named in every run: the suite has a 12-minute budget

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(DEV_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(DEV_STAMP) debian-tools
	$(PY) -m benchmarks run

bench-quick: $(DEV_STAMP) debian-tools
	$(PY) -m benchmarks run --quick

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
