# make run   - set up .venv, migrate, load the demo catalog and partner, serve on 127.0.0.1:$(PORT)
# make test  - run the whole test suite against a throwaway PostgreSQL (.ci/with-postgres)
# make lint  - ruff, and lint-imports (the layer contracts in pyproject.toml)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8000
PYTEST_ARGS ?=
export PORT

.PHONY: help run test lint venv browser nodejs promtool bench faults

help:
	@echo "make run    serve the API and the issuance workers on http://127.0.0.1:$(PORT) (demo data)"
	@echo "make test   run the test suite against a throwaway PostgreSQL (PYTEST_ARGS=... to select)"
	@echo "make lint   ruff check and the import-linter layer contracts"

$(PY):
	@test -n "$(PYTHON)" || { echo "Python 3.11 is needed (python3.11 not found)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

# The embedded database keeps its development settings (a generated SECRET_KEY, CM_DEV,
# WEBHOOK_ALLOW_PRIVATE_TARGETS) in var/dev.env, written here once and read by every manage.py
# command in the checkout. With a DATABASE_URL of your own that file is not read: the
# development switches are set here instead.
run: venv
	$(PY) -m channel_manager.devsettings
	$(if $(DATABASE_URL),CM_DEV=1 WEBHOOK_ALLOW_PRIVATE_TARGETS=1 )$(PY) manage.py run_demo

# pytest's exit status decides; 5 (no tests collected) fails like any other non-zero status.
# Browser tests drive Debian's chromium (never a downloaded browser); the pass test calls openssl.
browser:
	@test -x /usr/bin/chromium && command -v openssl >/dev/null || { \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium openssl; }

# The Node webhook receiver example runs on Debian's nodejs (tests/test_webhook_receivers.py);
# the alert rules are checked and unit-tested with promtool, from Debian's prometheus package
# (tests/test_deploy_monitoring.py). Each is installed only when missing.
nodejs:
	@command -v node >/dev/null || command -v nodejs >/dev/null || { \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs; }

promtool:
	@command -v promtool >/dev/null || { \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; }

test: venv browser nodejs promtool
	CM_DEV=1 bash .ci/with-postgres $(VENV)/bin/pytest -n 2 $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# make bench   - throughput/latency of intake and issuance on a throwaway PostgreSQL (bench/README.md);
#                figures also in bench/out/latest.txt. BENCH_ARGS="--e2e-rate 200" passes options.
# make faults  - fault drills (kill -9 workers, PostgreSQL restart, races, capacity, webhooks);
#                fails if an invariant breaks.
BENCH_ARGS ?=
FAULTS_ARGS ?=

bench: venv
	@command -v wrk >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk; }
	bash .ci/with-postgres $(PY) -m bench.bench $(BENCH_ARGS)

faults: venv
	bash .ci/with-postgres $(PY) -m bench.faults $(FAULTS_ARGS)
