#!/usr/bin/env bash
# Browser end-to-end test: start zerows on a free loopback port, run
# tests/e2e/browser.js (headless Debian Chromium through playwright-core) against
# its page, then stop zerows with SIGTERM and check it exits 0.
#
# Usage: bash tests/e2e/run.sh
# Needs: node, chromium (apt: chromium), tests/e2e/node_modules (cd tests/e2e && npm ci).
# Environment:
#   ZEROWS_BIN        server binary (default target/release/zerows, relative to the repo)
#   CHROMIUM          browser binary (default /usr/bin/chromium)
#   E2E_OUT           output directory (default target/e2e): server log, screenshot
#   E2E_TIMEOUT       seconds allowed for the browser test (default 120)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

ZEROWS_BIN=${ZEROWS_BIN:-target/release/zerows}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
OUT=${E2E_OUT:-target/e2e}
E2E_TIMEOUT=${E2E_TIMEOUT:-120}

log() { echo "[tests/e2e/run.sh $(date -u +%H:%M:%S)] $*"; }
die() { echo "tests/e2e/run.sh: error: $*" >&2; exit 1; }

[ -x "$ZEROWS_BIN" ] || die "no server binary at $ZEROWS_BIN (cargo build --release, or set ZEROWS_BIN)"
command -v node >/dev/null || die "node not found"
[ -x "$CHROMIUM" ] || die "no browser at $CHROMIUM (apt-get install chromium, or set CHROMIUM)"
[ -d tests/e2e/node_modules/playwright-core ] || die "tests/e2e/node_modules/playwright-core missing (run: cd tests/e2e && npm ci)"

mkdir -p "$OUT"
SERVER_LOG="$OUT/zerows-browser.log"
SERVER_PID=

# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    local rc=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -f "$SERVER_LOG" ]; then
        echo "--- last lines of $SERVER_LOG ---"
        tail -n 30 "$SERVER_LOG" || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Port 0: the kernel picks a free port, and the server prints the one it got.
: >"$SERVER_LOG"  # exists before the background job opens it, for the sed below
"$ZEROWS_BIN" --listen 127.0.0.1:0 >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's#^zerows listening on ws://127\.0\.0\.1:\([0-9]*\)/.*#\1#p' "$SERVER_LOG" | head -n 1)
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "zerows exited at startup"
    sleep 0.1
done
[ -n "$PORT" ] || die "zerows printed no listening address within 10 s"
URL="http://127.0.0.1:$PORT/"
log "zerows (pid $SERVER_PID) on $URL"

# /healthz must answer 200 before the browser starts.
for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 && timeout 2 head -n 1 <&3 | grep -q ' 200 ') 2>/dev/null; then
        break
    fi
    sleep 0.1
done

t0=$SECONDS
rc=0
SCREENSHOT="$OUT/browser.png" CHROMIUM="$CHROMIUM" E2E_TIMEOUT_MS=$(( (E2E_TIMEOUT - 10) * 1000 )) \
    timeout -k 5 "$E2E_TIMEOUT" node tests/e2e/browser.js "$URL" || rc=$?
log "browser test finished in $((SECONDS - t0)) s (exit $rc)"
[ "$rc" -eq 0 ] || die "browser test failed (exit $rc); server log: $SERVER_LOG"

# Graceful shutdown: SIGTERM, exit status 0 within the shutdown timeout (10 s) plus slack.
kill -TERM "$SERVER_PID"
for _ in $(seq 150); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$SERVER_PID" 2>/dev/null && die "zerows still running 15 s after SIGTERM"
st=0
wait "$SERVER_PID" || st=$?
SERVER_PID=
[ "$st" -eq 0 ] || die "zerows exited $st after SIGTERM, expected 0"
log "zerows stopped on SIGTERM with exit 0; screenshot: $OUT/browser.png"
