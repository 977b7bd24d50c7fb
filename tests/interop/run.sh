#!/usr/bin/env bash
# Independent clients: start zerows on a free loopback port, run echo
# conversations through Python's `websockets` (client.py) and Node's `ws`
# (client.js), then stop zerows with SIGTERM and check that it exits 0.
#
# Usage: bash tests/interop/run.sh
# Needs: python3 with websockets (pip install websockets==17.4), node, and
#        tests/interop/node_modules (cd tests/interop && npm ci).
# Environment:
#   ZEROWS_BIN        server binary (default target/release/zerows, relative to the repo)
#   INTEROP_OUT       output directory (default target/interop): server log
#   INTEROP_TIMEOUT   seconds allowed for each client (default 120)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

ZEROWS_BIN=${ZEROWS_BIN:-target/release/zerows}
OUT=${INTEROP_OUT:-target/interop}
INTEROP_TIMEOUT=${INTEROP_TIMEOUT:-120}
export INTEROP_TIMEOUT

log() { echo "[interop/run.sh $(date -u +%H:%M:%S)] $*"; }
die() { echo "tests/interop/run.sh: error: $*" >&2; exit 1; }

[ -x "$ZEROWS_BIN" ] || die "no server binary at $ZEROWS_BIN (cargo build --release, or set ZEROWS_BIN)"
command -v python3 >/dev/null || die "python3 not found"
command -v node >/dev/null || die "node not found"
python3 -c 'import websockets' 2>/dev/null || die "python3 cannot import websockets (pip install websockets==17.4)"
[ -d tests/interop/node_modules/ws ] || die "tests/interop/node_modules/ws missing (run: cd tests/interop && npm ci)"

mkdir -p "$OUT"
SERVER_LOG="$OUT/zerows.log"
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
: >"$SERVER_LOG"
"$ZEROWS_BIN" --listen 127.0.0.1:0 >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's#^zerows listening on ws://127\.0\.0\.1:\([0-9]*\)/.*#\1#p' "$SERVER_LOG" | head -n 1)
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "zerows exited at startup"
    sleep 0.1
done
[ -n "$PORT" ] || die "zerows did not print its address within 10 s"
URL="ws://127.0.0.1:$PORT/"
log "zerows (pid $SERVER_PID) on $URL"

status=0
log "Python websockets"
timeout -k 5 "$((INTEROP_TIMEOUT + 10))" python3 tests/interop/client.py "$URL" || { log "Python websockets FAILED"; status=1; }
log "Node ws"
timeout -k 5 "$((INTEROP_TIMEOUT + 10))" node tests/interop/client.js "$URL" || { log "Node ws FAILED"; status=1; }

# The server survived both and shuts down cleanly.
kill -0 "$SERVER_PID" 2>/dev/null || die "zerows died during the conversations"
kill -TERM "$SERVER_PID"
rc=0
for _ in $(seq 150); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$SERVER_PID" 2>/dev/null && die "zerows did not exit within 15 s of SIGTERM"
wait "$SERVER_PID" || rc=$?
SERVER_PID=
[ "$rc" -eq 0 ] || die "zerows exited with $rc after SIGTERM"
[ "$status" -eq 0 ] || die "an independent client found a mismatch"
log "both independent clients passed"
