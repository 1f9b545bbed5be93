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
# Runs a command with the settings scripts/stack.sh generated (.stack/env: the project's
# database and broker users); variables already set in the environment win.
WITH_STACK := scripts/stack.sh exec
PYTEST_ARGS ?=
WEB_STAMP := web/node_modules/.package-lock.json
DOCKERFILES := $(wildcard deploy/*.Dockerfile)

.PHONY: help venv web up down status run test test-containers test-fresh lock lint fmt bench demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv and install the project with the dev extra

# Re-installs whenever pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml
	@scripts/stack.sh deps
	@if [[ ! -x $(PY) ]]; then \
	  echo "venv: creating $(VENV)"; \
	  rm -rf $(VENV); \
	  $(PYTHON) -m venv $(VENV); \
	fi
	@echo "venv: installing .[dev] (pyproject.toml changed or first run)"
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

web: $(WEB_STAMP) ## npm packages of the web page (hls.js) and Debian's Chromium for its tests

# npm ci installs exactly web/package-lock.json into web/node_modules (git-ignored).
$(WEB_STAMP): web/package.json web/package-lock.json
	scripts/browser-deps.sh
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	@touch $@

up: venv ## start MariaDB, RabbitMQ, SeaweedFS (+bucket), then run DB migrations
	scripts/stack.sh up
	@echo "migrate: $(BIN)/video-migrate"
	$(WITH_STACK) $(BIN)/video-migrate

down: ## stop SeaweedFS (MariaDB/RabbitMQ are system services and stay up)
	scripts/stack.sh down

status: ## show what is running
	scripts/stack.sh status

run: up web ## API + one worker in the foreground, logs interleaved (Ctrl-C stops all)
	exec $(WITH_STACK) $(BIN)/honcho start -f $(PROCFILE)

test: up web ## run the test suite (extra arguments: PYTEST_ARGS="-k foo -x")
	$(WITH_STACK) $(BIN)/pytest -ra $(PYTEST_ARGS)

test-containers: up ## build the API/worker images (Podman) and run the upload flow through them
	$(WITH_STACK) scripts/containers.sh

test-fresh: ## make test in a fresh Debian container: clone of HEAD, everything installed from nothing
	scripts/fresh.sh

# The images install exactly these (with hashes); regenerate after changing a dependency in
# pyproject.toml. tests/deploy checks that every dependency of the extra is in its lock.
lock: venv ## regenerate deploy/requirements/*.txt (hash-pinned image dependencies) with uv
	$(BIN)/uv pip compile pyproject.toml --extra api --generate-hashes --universal \
	  --python-version 3.11 --custom-compile-command 'make lock' --quiet \
	  -o deploy/requirements/api.txt
	# The worker image: the base dependencies only.
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --universal \
	  --python-version 3.11 --custom-compile-command 'make lock' --quiet \
	  -o deploy/requirements/worker.txt
	$(BIN)/uv pip compile deploy/requirements/seaweedfs.in --generate-hashes --universal \
	  --python-version 3.11 --custom-compile-command 'make lock' --quiet \
	  -o deploy/requirements/seaweedfs.txt

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
	$(WITH_STACK) $(PY) -m bench

demo: up ## upload a sample video through the API and print the result (scripts/demo.py)
	$(WITH_STACK) $(PY) scripts/demo.py

clean: ## stop SeaweedFS, delete .stack (its data!), caches and .venv
	scripts/stack.sh down
	rm -rf .stack .pytest_cache .mypy_cache .ruff_cache *.egg-info build dist $(VENV) web/node_modules tests/.artifacts
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
