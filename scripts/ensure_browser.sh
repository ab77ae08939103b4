#!/usr/bin/env bash
# Make sure the end-to-end tests (tests/e2e) have a Chromium to drive, installing one if needed.
#
# Lookup order, the same as tests/e2e/conftest.py: $CASELOOP_CHROMIUM, /usr/bin/chromium,
# chromium-browser on PATH. If none: as root with apt-get, Debian's chromium (`playwright
# install` cannot download its own browser on machines that only reach the package mirrors);
# otherwise Playwright's own Chromium (needs internet). Idempotent; prints one line when OK.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=.venv/bin/python  # not $PYTHON: the Makefile uses that name for the base interpreter

version_of() { "$1" --version 2>/dev/null | head -n 1; }  # stderr: Debian's wrapper chatter

find_chromium() {
    local candidate
    for candidate in /usr/bin/chromium "$(command -v chromium-browser || true)"; do
        if [[ -n "$candidate" && -x "$candidate" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if [[ -n "${CASELOOP_CHROMIUM:-}" ]]; then
    # An explicit choice is never silently replaced by another browser.
    if [[ ! -x "$CASELOOP_CHROMIUM" ]]; then
        echo "ensure_browser: CASELOOP_CHROMIUM=$CASELOOP_CHROMIUM is not an executable file." >&2
        exit 1
    fi
    echo "e2e browser: $CASELOOP_CHROMIUM ($(version_of "$CASELOOP_CHROMIUM"))"
    exit 0
fi

if browser="$(find_chromium)"; then
    echo "e2e browser: $browser ($(version_of "$browser"))"
    exit 0
fi

if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "ensure_browser: no Chromium found; installing Debian's chromium with apt-get..." >&2
    log="$(mktemp)"
    trap 'rm -f "$log"' EXIT
    export DEBIAN_FRONTEND=noninteractive
    # `apt-get update` only when needed: it is slow, and the lists are usually fresh enough.
    if ! apt-get install -y -q chromium >"$log" 2>&1; then
        if ! { apt-get update -q && apt-get install -y -q chromium; } >"$log" 2>&1; then
            tail -n 20 "$log" >&2
            echo "ensure_browser: apt-get install chromium failed (see above)." >&2
            exit 1
        fi
    fi
    if browser="$(find_chromium)"; then
        echo "e2e browser: $browser ($(version_of "$browser"))"
        exit 0
    fi
    echo "ensure_browser: apt-get installed chromium but no chromium binary was found." >&2
    exit 1
fi

# Not root or not Debian: Playwright's own Chromium, which the tests use when no other is found.
if [[ -x "$PY" ]] && "$PY" -m playwright install chromium >&2; then
    path="$("$PY" -c 'from playwright.sync_api import sync_playwright
with sync_playwright() as p: print(p.chromium.executable_path)')"
    echo "e2e browser: Playwright's Chromium at $path"
    exit 0
fi

cat >&2 <<'EOF'
ensure_browser: no Chromium for the end-to-end tests (tests/e2e) and none could be installed.
  Install one (Debian: `sudo apt-get install chromium`), or run `.venv/bin/python -m playwright
  install chromium` with internet access, or point CASELOOP_CHROMIUM at a Chromium binary.
EOF
exit 1
