#!/usr/bin/env bash
# Start the development server, the event stream (uvicorn, ASGI: runserver would buffer it and
# the WSGI app refuses it), the session runner and the django-q2 cluster; Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ADDRESS="${CASELOOP_ADDRESS:-127.0.0.1:8000}"
SSE_ADDRESS="${CASELOOP_SSE_ADDRESS:-127.0.0.1:8001}"
export DJANGO_DEBUG="${DJANGO_DEBUG:-true}"
# Sessions go to the runner below (woken at once on PostgreSQL, polled every 0.1 s on SQLite).
export AGENTS_RUNNER="${AGENTS_RUNNER:-1}"
export SSE_PUBLIC_URL="${SSE_PUBLIC_URL:-http://$SSE_ADDRESS}"
pids=()
$PY manage.py qcluster & pids+=($!)
$PY manage.py run_sessions & pids+=($!)
$PY -m uvicorn config.asgi:application --host "${SSE_ADDRESS%:*}" --port "${SSE_ADDRESS##*:}" --no-access-log & pids+=($!)
trap 'kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null || true' EXIT INT TERM
echo "Caseloop: admin at http://$ADDRESS/admin/, API docs at http://$ADDRESS/api/docs/, session streams at $SSE_PUBLIC_URL (Ctrl-C stops)"
$PY manage.py runserver "$ADDRESS"
