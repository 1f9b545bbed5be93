# Local developer entry points. Every target installs what it needs first, so any of them
# works as the first command on a fresh clone (venv from pyproject.toml, services via
# scripts/stack.sh). State (SeaweedFS data, logs, pid files) lives in .stack/.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PROCFILE ?= Procfile
PYTEST_ARGS ?=
DOCKERFILES := $(wildcard deploy/api.Dockerfile deploy/worker.Dockerfile)

.PHONY: help venv up down status run test lint fmt bench demo clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-7s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv and install the project with the dev extra

# Re-installs whenever pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml
	@if [[ ! -x $(PY) ]]; then \
	  if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null && command -v apt-get >/dev/null; then \
	    echo "venv: installing python3-venv with apt-get"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
	  fi; \
	  echo "venv: creating $(VENV)"; \
	  rm -rf $(VENV); \
	  $(PYTHON) -m venv $(VENV); \
	fi
	@echo "venv: installing .[dev] (pyproject.toml changed or first run)"
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

up: venv ## start MariaDB, RabbitMQ, SeaweedFS (+bucket), then run DB migrations
	scripts/stack.sh up
	@echo "migrate: $(BIN)/video-migrate"
	$(BIN)/video-migrate

down: ## stop SeaweedFS (MariaDB/RabbitMQ are system services and stay up)
	scripts/stack.sh down

status: ## show what is running
	scripts/stack.sh status

run: up ## API + one worker in the foreground, logs interleaved (Ctrl-C stops all)
	exec $(BIN)/honcho start -f $(PROCFILE)

test: up ## run the test suite (extra arguments: PYTEST_ARGS="-k foo -x")
	$(BIN)/pytest -ra $(PYTEST_ARGS)

lint: venv ## ruff check, ruff format --check, mypy, hadolint on the Dockerfiles
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
ifneq ($(DOCKERFILES),)
	$(BIN)/hadolint --config deploy/.hadolint.yaml $(DOCKERFILES)
else
	@echo "hadolint: no deploy/api.Dockerfile or deploy/worker.Dockerfile yet, skipped"
endif

fmt: venv ## format and auto-fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: up ## performance ratios (python -m bench)
	$(PY) -m bench

demo: up ## upload a sample video through the API and print the result (scripts/demo.py)
	$(PY) scripts/demo.py

clean: ## stop SeaweedFS, delete .stack (its data!), caches and .venv
	scripts/stack.sh down
	rm -rf .stack .pytest_cache .mypy_cache .ruff_cache *.egg-info build dist $(VENV)
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
