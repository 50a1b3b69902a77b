# Every target bootstraps .venv first: Python 3.13 (the Lambda runtime) and the locked dependencies (uv.lock).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PORT ?= 3000
export UV_PYTHON_DOWNLOADS := never
export SAM_CLI_TELEMETRY := 0
export PYTHONPATH := $(CURDIR)/layers/engine:$(CURDIR)

# Python 3.13 from pyenv where the machine has it (the bare python3.13 shim may fail), else from PATH.
PY313 := $(shell PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null || command -v python3.13 2>/dev/null)
PYTHON_FOR_UV := $(or $(PY313),$(shell command -v python3))
# uv itself: the one on PATH, else a private copy installed once with pip.
UV := $(shell command -v uv 2>/dev/null || echo .cache/uv/bin/uv)
VENV_PY := .venv/bin/python

.PHONY: help bootstrap serve test lint template-check lambda-check bench bench-cold-starts faults fuzz build deploy delete moto format layer-requirements layer-requirements-check clean

help:
	@echo "make serve   start the local stack on http://127.0.0.1:$(PORT)/v1"
	@echo "make test    lint, type checks, template checks and the whole test suite"
	@echo "make bench   local stack vs the bare scripted upstream, side by side"
	@echo "make bench-cold-starts   only the built artifact's cold starts (COLD_START_RUNS=3)"
	@echo "make faults  the whole fault suite (chaos upstream, MCP faults, moto paused); make test runs a subset"
	@echo "make fuzz    schemathesis + malformed bodies against the local stack (FUZZ_CASES, FUZZ_SEED)"
	@echo "make lint    ruff + mypy;  make build / deploy   sam build (arm64) / sam deploy (GUIDED=1: --guided)"
	@echo "make lambda-check   the built artifact started as Lambda starts it (part of make test)"

.cache/uv/bin/uv:
	@test -n "$(PYTHON_FOR_UV)" || { echo "no python found to bootstrap uv"; exit 1; }
	$(PYTHON_FOR_UV) -m venv .cache/uv && .cache/uv/bin/pip install -q "uv==0.13.9"

.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen $(if $(PY313),--python $(PY313))
	@touch $@

# SAM CLI pins its own boto3 (and awscrt), so it gets a venv of its own from hashed, pinned requirements.
.cache/sam/.synced: local/sam-requirements.txt | $(UV)
	$(UV) venv -q --allow-existing .cache/sam $(if $(PY313),--python $(PY313))
	$(UV) pip sync -q --python .cache/sam/bin/python --require-hashes local/sam-requirements.txt
	@touch $@

bootstrap: .venv/.synced

serve: bootstrap
	PORT=$(PORT) $(VENV_PY) -m local.serve

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

template-check: bootstrap .cache/sam/.synced
	$(VENV_PY) -m local.template_check

# The MCP tests also talk to a third-party server, npm's @modelcontextprotocol/server-everything (pinned; installed
# into .cache/npm, never globally). Without npm, or offline, make test still runs: those tests skip with a reason.
SERVER_EVERYTHING := @modelcontextprotocol/server-everything@2026.8.31

.cache/npm/.installed: Makefile
	@if ! command -v npm >/dev/null 2>&1; then \
		echo "npm not found: the tests against $(SERVER_EVERYTHING) will be skipped"; \
	elif npm install --prefix .cache/npm --no-audit --no-fund --save-exact $(SERVER_EVERYTHING); then \
		touch $@; \
	else \
		echo "npm install failed: the tests against $(SERVER_EVERYTHING) will be skipped"; \
	fi

# The output of sam build, run as Lambda runs it (local/lambda_check.py), built for this machine's architecture;
# meanwhile the arm64 build (make build's) and its shared objects' check. Builds are reused while their inputs match.
lambda-check: bootstrap .cache/sam/.synced layer-requirements-check
	$(VENV_PY) -m local.lambda_check

test: lint template-check layer-requirements-check lambda-check .cache/npm/.installed
	.venv/bin/pytest

bench: bootstrap
	$(VENV_PY) -m local.bench

# make bench's cold-start section alone (about a minute per run): the built artifact's init and first request
COLD_START_RUNS ?= 3
bench-cold-starts: bootstrap .cache/sam/.synced layer-requirements-check
	$(VENV_PY) -m local.bench --only cold-starts --cold-start-runs $(COLD_START_RUNS) $(BENCH_ARGS)

# every fault case (chaos upstream, MCP faults, moto paused, disconnects, credential scan); make test runs --quick
faults: bootstrap
	$(VENV_PY) -m local.faults

# Bad input must never be a 5xx: schemathesis against the stack's own /v1/openapi.json plus malformed bodies, from a
# fixed seed (tests/e2e/test_fuzz.py runs a smaller share of it inside make test).
FUZZ_CASES ?= 10000
FUZZ_SEED ?= 1
fuzz: bootstrap
	$(VENV_PY) -m local.fuzz --cases $(FUZZ_CASES) --seed $(FUZZ_SEED) --report .cache/fuzz-report.json

# sam build for arm64 into .aws-sam/build (what sam deploy uploads), the layer precompiled and stripped.
build: bootstrap .cache/sam/.synced layer-requirements
	$(VENV_PY) -m local.artifact build --arch arm64

# sam deploy with samconfig.toml's defaults (no prompts); GUIDED=1 asks everything; PARAMS="Name=value ..." sets
# template parameters. Credentials and region come from the usual AWS settings (AWS_PROFILE, AWS_REGION).
GUIDED ?=
PARAMS ?=
deploy: build
	.cache/sam/bin/sam deploy $(if $(GUIDED),--guided) $(if $(PARAMS),--parameter-overrides $(PARAMS))

# For sam local (Docker): moto on 127.0.0.1:$(MOTO_PORT) with the template's table and state machine (local/sam_local.py).
MOTO_PORT ?= 5005
moto: bootstrap
	MOTO_PORT=$(MOTO_PORT) $(VENV_PY) -m local.sam_local

# Deletes the stack; the table (DeletionPolicy Retain) and SAM's artifacts bucket stay (README "Delete").
delete: .cache/sam/.synced
	.cache/sam/bin/sam delete

format: bootstrap
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

layer-requirements: bootstrap
	$(UV) export --frozen --no-dev --no-hashes --no-emit-project --no-header -o layers/engine/requirements.txt

# The deployed layer must run the versions the tests ran: its requirements.txt is generated from uv.lock.
layer-requirements-check: bootstrap
	@$(UV) export --frozen --no-dev --no-hashes --no-emit-project --no-header | diff -q - layers/engine/requirements.txt \
		|| { echo "layers/engine/requirements.txt is stale: run make layer-requirements"; exit 1; }

clean:
	rm -rf .venv .cache .aws-sam .pytest_cache .mypy_cache .ruff_cache
