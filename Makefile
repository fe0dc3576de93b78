# inboxsync developer commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
TASKS_VENV := .venv-tasks
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
RUN_ARGS ?=

.PHONY: help install lint test test-fast run bench dist clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements/dev.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

$(TASKS_VENV)/.installed: requirements/tasks-emulator.txt
	$(PYTHON) -m venv $(TASKS_VENV)
	$(TASKS_VENV)/bin/pip install -q --disable-pip-version-check -r requirements/tasks-emulator.txt
	touch $@

install: $(VENV)/.installed $(TASKS_VENV)/.installed ## create both virtualenvs with pinned packages

lint: $(VENV)/.installed ## ruff (lint + format check) and mypy --strict
	$(VENV)/bin/ruff check shared functions tests
	$(VENV)/bin/ruff format --check shared functions tests
	$(VENV)/bin/mypy

test: install lint ## lint, then the whole suite against real emulators
	INBOXSYNC_TASKS_PYTHON=$(abspath $(TASKS_VENV))/bin/python $(VENV)/bin/pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.installed ## unit tests only (no emulators)
	$(VENV)/bin/pytest -m "not emulators and not e2e" $(PYTEST_ARGS)

run: install ## start the local stack and the demo; Ctrl-C stops (RUN_ARGS="--base-port 0")
	INBOXSYNC_TASKS_PYTHON=$(abspath $(TASKS_VENV))/bin/python $(VENV)/bin/inboxsync local run $(RUN_ARGS)

bench: install ## benchmarks: print figures next to an in-run baseline
	INBOXSYNC_TASKS_PYTHON=$(abspath $(TASKS_VENV))/bin/python $(PY) -m inboxsync.local.bench
	INBOXSYNC_TASKS_PYTHON=$(abspath $(TASKS_VENV))/bin/python $(PY) -m inboxsync.local.bench_stack
	$(PY) -m inboxsync.local.bench_sync

dist: $(VENV)/.installed ## build one deployable source folder per function under build/dist
	$(PY) -m inboxsync.dist build/dist

clean: ## remove virtualenvs and build output
	rm -rf $(VENV) $(TASKS_VENV) build .mypy_cache .ruff_cache
