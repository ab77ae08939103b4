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
# Quiet by default: the queue and the request log at WARNING (CASELOOP_VERBOSE=1 for INFO).
if [ "${CASELOOP_VERBOSE:-0}" != 1 ]; then
  export Q_LOG_LEVEL="${Q_LOG_LEVEL:-WARNING}" SERVER_LOG_LEVEL="${SERVER_LOG_LEVEL:-WARNING}"
fi
LOGIN_FILE=var/first-admin-login.txt
pids=()
$PY manage.py qcluster & pids+=($!)
$PY manage.py run_sessions & pids+=($!)
$PY -m uvicorn config.asgi:application --host "${SSE_ADDRESS%:*}" --port "${SSE_ADDRESS##*:}" --no-access-log & pids+=($!)
trap 'kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null || true' EXIT INT TERM
# The web server loads the embedding model as it starts (the runner does too), so the first
# search does not wait seconds for it; /health/ready answers 503 until the model is loaded.
EMBEDDINGS_WARM_ON_START=1 $PY manage.py runserver --noreload "$ADDRESS" & pids+=($!)
# The banner comes last, once the web server holds the model. It asks the status page, which
# answers 200 while the model loads (the readiness probe's 503s would each log an error).
echo "Starting: loading the embedding model in the web server..."
$PY - "http://$ADDRESS/health" <<'WAIT' || true
import json, sys, time, urllib.request
for _ in range(360):
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
            if json.load(response)["checks"].get("embeddings", {}).get("status") == "up":
                break
    except (OSError, ValueError, KeyError):  # not listening yet, or a 503 (the database)
        pass
    time.sleep(0.5)
else:
    print("The web server did not load the embedding model within 3 minutes; see its output above.", file=sys.stderr)
WAIT
echo
echo "=================================================================="
echo " Caseloop is ready"
echo "   admin (dashboard)  http://$ADDRESS/admin/"
echo "   API docs           http://$ADDRESS/api/docs/"
echo "   session streams    $SSE_PUBLIC_URL"
if [ -s "$LOGIN_FILE" ]; then
  echo "   admin login        $(cat "$LOGIN_FILE")   (shown until you change it)"
else
  echo "   admin login        the one printed on the first run"
fi
echo "   reset the password .venv/bin/python manage.py changepassword admin"
echo "   stop               Ctrl-C (stops the web server, stream, runner and queue)"
echo "=================================================================="
wait -n "${pids[@]}"
