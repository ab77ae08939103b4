#!/usr/bin/env bash
# Production servers. `serve.sh web` runs the API under gunicorn sync workers (measured fastest
# for sync DRF views: docs/deployment.md); `serve.sh sse` runs the session event stream under
# uvicorn (ASGI), where a long-lived stream does not pin a worker; `serve.sh all` (make serve)
# runs both plus a qcluster on this machine, Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
HOST="${SERVE_HOST:-0.0.0.0}"
WEB_PORT="${WEB_PORT:-8000}"
SSE_PORT="${SSE_PORT:-8001}"
# Two sync workers per core is where throughput flattened here; override per machine.
WEB_WORKERS="${WEB_WORKERS:-$(( $(nproc) * 2 ))}"
SSE_WORKERS="${SSE_WORKERS:-1}"

web() {
  exec "$PY" -m gunicorn config.wsgi:application --bind "$HOST:$WEB_PORT" \
    --workers "$WEB_WORKERS" --worker-class sync --timeout 30 --graceful-timeout 20 \
    --max-requests 5000 --max-requests-jitter 500 --access-logfile - --log-level info
}

sse() {
  # Under ASGI every sync database call runs on a fresh thread; persistent connections leaked
  # one per thread until PostgreSQL refused clients (docs/deployment.md), so close per request.
  export DATABASE_CONN_MAX_AGE="${SSE_CONN_MAX_AGE:-0}"
  exec "$PY" -m uvicorn config.asgi:application --host "$HOST" --port "$SSE_PORT" \
    --workers "$SSE_WORKERS" --no-access-log --timeout-graceful-shutdown 20
}

case "${1:-all}" in
  web) web ;;
  sse) sse ;;
  all)
    "$PY" manage.py migrate --noinput
    "$PY" manage.py setup_schedules >/dev/null
    pids=()
    ( web ) & pids+=($!)
    ( sse ) & pids+=($!)
    "$PY" manage.py qcluster & pids+=($!)
    trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true' EXIT INT TERM
    echo "Caseloop: API http://$HOST:$WEB_PORT/ (gunicorn), stream http://$HOST:$SSE_PORT/ (uvicorn); Ctrl-C stops"
    wait -n
    ;;
  *) echo "usage: $0 [web|sse|all]" >&2; exit 2 ;;
esac
