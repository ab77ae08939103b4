#!/usr/bin/env bash
# Production servers. `serve.sh web` runs the API under gunicorn sync workers (measured fastest
# for sync DRF views: docs/deployment.md); `serve.sh sse` runs the session event stream and the
# MCP server (/mcp) under uvicorn (ASGI), where a long-lived stream does not pin a worker; `serve.sh all` (make serve)
# runs both plus a qcluster on this machine, Ctrl-C stops all three; `serve.sh qcluster` runs
# the task workers with a metrics exporter beside them (a qcluster pod has no web server);
# `serve.sh runner` runs the session runner (hundreds of supervisor sessions on one event loop,
# docs/agents.md) with its own exporter. Sessions go to runners: AGENTS_RUNNER=1 for every role.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
HOST="${SERVE_HOST:-0.0.0.0}"
WEB_PORT="${WEB_PORT:-8000}"
SSE_PORT="${SSE_PORT:-8001}"
# Two sync workers per core is where throughput flattened here; override per machine. Without
# REDIS_URL rate limits are counted in each worker's memory, so one worker (config.gunicorn
# refuses more: each would let a key through at its full rate).
if [ -n "${REDIS_URL:-}" ]; then
  WEB_WORKERS="${WEB_WORKERS:-$(( $(nproc) * 2 ))}"
else
  WEB_WORKERS="${WEB_WORKERS:-1}"
fi
export WEB_WORKERS  # read by check --deploy (caseloop.W002)
SSE_WORKERS="${SSE_WORKERS:-1}"
METRICS_PORT="${METRICS_PORT:-9100}"
export AGENTS_RUNNER="${AGENTS_RUNNER:-1}"
# Load the embedding model when a process starts, not in its first request (config/gunicorn.py).
export EMBEDDING_WARM="${EMBEDDING_WARM:-1}"

prepare_embeddings() {
  # The model's ONNX graph, exported once into EMBEDDING_CACHE_DIR (the image has it already) so
  # that no worker exports it as it starts; a no-op when it is there or on EMBEDDING_BACKEND=torch.
  "$PY" manage.py prepare_embeddings
}

metrics_dir() {
  # Prometheus multiprocess mode (config/metrics.py): every process started from here writes
  # its metrics to one directory and a scrape of any of them merges all, so /metrics covers
  # every gunicorn worker (and, under `all`, the stream and the qcluster too). The directory
  # must be emptied before the processes start, or the last run's figures would add in.
  export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/caseloop-metrics-$1}"
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -delete
}

web() {
  exec "$PY" -m gunicorn config.wsgi:application --bind "$HOST:$WEB_PORT" \
    --workers "$WEB_WORKERS" --worker-class sync --timeout 30 --graceful-timeout 20 \
    --max-requests 5000 --max-requests-jitter 500 --access-logfile - --log-level info \
    --config python:config.gunicorn
}

sse() {
  # Under ASGI every sync database call runs on a fresh thread; persistent connections leaked
  # one per thread until PostgreSQL refused clients (docs/deployment.md), so close per request.
  export DATABASE_CONN_MAX_AGE="${SSE_CONN_MAX_AGE:-0}"
  exec "$PY" -m uvicorn config.asgi:application --host "$HOST" --port "$SSE_PORT" \
    --workers "$SSE_WORKERS" --no-access-log --timeout-graceful-shutdown 20
}

runner() {
  # Like qcluster: the exporter serves the runner's metrics and is its liveness probe; a stop
  # (SIGTERM) lets the runner finish or hand back its sessions (AGENTS_RUNNER_LEASE_S).
  "$PY" -m config.metrics --port "$METRICS_PORT" &
  local exporter=$!
  "$PY" manage.py run_sessions &
  local sessions=$! status=0
  trap 'kill -TERM "$sessions" 2>/dev/null || true' TERM INT
  wait "$sessions" && status=0 || status=$?
  while kill -0 "$sessions" 2>/dev/null; do wait "$sessions" && status=0 || status=$?; done
  kill "$exporter" 2>/dev/null || true
  exit "$status"
}

qcluster() {
  # The exporter serves the merged metrics of the cluster and its worker processes (LLM calls,
  # tokens, cost, breaker state) on METRICS_PORT; it stops when the cluster does.
  "$PY" -m config.metrics --port "$METRICS_PORT" &
  local exporter=$!
  "$PY" manage.py qcluster &
  local cluster=$! status=0
  # A stop (SIGTERM from Kubernetes or compose) goes to the cluster, which finishes its tasks.
  trap 'kill -TERM "$cluster" 2>/dev/null || true' TERM INT
  # wait returns early (>128) when the trap runs; wait again for the cluster's own exit code.
  wait "$cluster" && status=0 || status=$?
  while kill -0 "$cluster" 2>/dev/null; do wait "$cluster" && status=0 || status=$?; done
  kill "$exporter" 2>/dev/null || true
  exit "$status"
}

case "${1:-all}" in
  web) metrics_dir web; prepare_embeddings; web ;;
  sse) metrics_dir sse; prepare_embeddings; sse ;;
  qcluster) metrics_dir qcluster; prepare_embeddings; qcluster ;;
  runner) metrics_dir runner; prepare_embeddings; runner ;;
  all)
    "$PY" manage.py migrate --noinput
    metrics_dir all
    "$PY" manage.py setup_schedules >/dev/null
    prepare_embeddings
    pids=()
    ( web ) & pids+=($!)
    ( sse ) & pids+=($!)
    "$PY" manage.py qcluster & pids+=($!)
    "$PY" manage.py run_sessions & pids+=($!)
    trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true' EXIT INT TERM
    echo "Caseloop: API http://$HOST:$WEB_PORT/ (gunicorn), stream and MCP http://$HOST:$SSE_PORT/mcp (uvicorn), session runner; Ctrl-C stops"
    wait -n
    ;;
  *) echo "usage: $0 [web|sse|qcluster|runner|all]" >&2; exit 2 ;;
esac
