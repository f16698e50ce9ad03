# Recupero: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
UV := uv
RUN := $(UV) run --frozen

.PHONY: help install up down status clean demo test lint contract unit integration e2e

help:
	@echo "make demo    - install what is missing, start the local stack, run the 1,000-debtor demo"
	@echo "make test    - run lint, type checks and the whole test suite (starts Kafka and PostgreSQL)"
	@echo "make up | down | status - the local stack in the background (logs: var/log/stack.log)"
	@echo "make clean   - stop the stack and delete its data (var/): the next 'make up' starts afresh"
	@echo "make contract - regenerate docs/events (JSON Schemas + AsyncAPI) from the event models"

install:
	@bash deploy/local/install-system.sh
	@$(UV) sync --frozen --quiet
	@[ -d node_modules/@asyncapi/specs ] || npm ci --no-audit --no-fund --silent

up: install
	@$(RUN) python deploy/local/stack.py up

down:
	@$(RUN) python deploy/local/stack.py down

status:
	@$(RUN) python deploy/local/stack.py status

clean: down
	rm -rf var

demo: up
	@$(RUN) python deploy/local/demo.py

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy libs/*/src services/*/src deploy/local bench
	$(RUN) lint-imports

contract: install
	$(RUN) python -m recupero_events.contract docs/events

unit: install
	$(RUN) pytest tests/unit -q

integration: install
	$(RUN) pytest tests/integration -q

e2e: install
	$(RUN) pytest tests/e2e -q

test: lint
	$(RUN) pytest -q --durations=15
