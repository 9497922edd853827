# The two commands: `make run` and `make test`. Both work on a fresh machine (SQLite default).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# Two stamps: `make run` installs what running needs (the portal and its client, editable),
# the test, lint and docs targets add the development extras (test tools, every framework
# client the integration tests drive). One pip command per stamp: pip satisfies the portal's
# `hitl-client==<release>` with the editable clients/python of the same command (no index,
# no `file:` reference, so the same pyproject builds a wheel that needs the released client).
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed-dev

.PHONY: run test test-fast lint format venv venv-run clean bench docs docs-build

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml clients/python/pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e clients/python -e .
	@# A venv made before the client had its own distribution: uninstalling the old portal
	@# there removes the `hitl` script the client has just installed; put it back.
	test -x $(VENV)/bin/hitl || $(PY) -m pip install --quiet --no-deps --force-reinstall -e clients/python
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml clients/python/pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e clients/python -e ".[dev]"
	test -x $(VENV)/bin/hitl || $(PY) -m pip install --quiet --no-deps --force-reinstall -e clients/python
	touch $(STAMP) $(RUN_STAMP)

venv-run: $(RUN_STAMP)

venv: $(STAMP)

# The development settings persist in .env (git-ignored), so that every `manage.py` command
# the docs show works in this checkout too; the real environment still wins.
.env:
	printf '# Written by `make run` for development (git-ignored). Production sets real env vars.\nDEBUG=1\n' > .env

run: $(RUN_STAMP) .env
	$(PY) manage.py runportal --port $(PORT)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The inner loop: no browser, no cluster or server subprocesses, races at a few rounds.
test-fast: $(STAMP)
	HITL_RACE_ROUNDS=$${HITL_RACE_ROUNDS:-10} $(PY) -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# The manual (docs/, mkdocs.yml) as a site on 127.0.0.1:8000; docs-build is CI's strict build
# (a broken link or anchor is an error).
docs: $(STAMP)
	$(VENV)/bin/mkdocs serve -a 127.0.0.1:8000

docs-build: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir $${DOCS_SITE_DIR:-site}

# Benchmarks (bench/*.py; what each measures and its figures: docs/benchmarks.md).
# `make bench`: the portal as deployed (bench/deployed.py: web servers, portald, a django-q2
# cluster, a real SMTP receiver; ORM and Redis broker; this tree against 16693ed) on the
# PostgreSQL of DATABASE_URL (default below; it makes and drops its own databases), ~25 min;
# `make bench BENCH_ARGS=--quick` ~6 min. `make bench BENCH=statements` (api, notify, ...)
# runs bench/<BENCH>.py instead, on its own defaults (SQLite unless DATABASE_URL is set).
BENCH ?= deployed
BENCH_ARGS ?=
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test

bench: $(STAMP)
	$(if $(filter deployed,$(BENCH)),DATABASE_URL=$${DATABASE_URL:-$(BENCH_DATABASE_URL)}) \
		$(PY) bench/$(BENCH).py $(BENCH_ARGS)

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) var/test_hitl.sqlite3* site
