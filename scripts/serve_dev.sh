#!/usr/bin/env bash
# Start the web server and the django-q2 cluster together; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ADDRESS="${CASELOOP_ADDRESS:-127.0.0.1:8000}"
$PY manage.py qcluster &
QCLUSTER_PID=$!
trap 'kill "$QCLUSTER_PID" 2>/dev/null; wait "$QCLUSTER_PID" 2>/dev/null || true' EXIT INT TERM
echo "Caseloop: admin at http://$ADDRESS/admin/, API docs at http://$ADDRESS/api/docs/ (Ctrl-C stops)"
DJANGO_DEBUG="${DJANGO_DEBUG:-true}" $PY manage.py runserver "$ADDRESS"
