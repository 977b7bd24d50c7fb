#!/usr/bin/env bash
# End-to-end test of the chat example: start target/release/examples/chat on a
# free loopback port with 2 event loops, run tests/e2e/chat.js (two headless
# Debian Chromium pages through playwright-core, plus the Python `websockets`
# client tests/e2e/chat_client.py) against it, then stop the server with
# SIGTERM and check it is gone. The example has no signal handling of its own,
# so its exit status after SIGTERM is not checked.
#
# Usage: bash tests/e2e/chat.sh
# Needs: node, chromium (apt: chromium), tests/e2e/node_modules (cd tests/e2e && npm ci),
#        python3 with websockets (pip install websockets),
#        the example (cargo build --release --example chat).
# Environment:
#   CHAT_BIN          server binary (default target/release/examples/chat, relative to the repo)
#   CHROMIUM          browser binary (default /usr/bin/chromium)
#   E2E_OUT           output directory (default target/e2e): server log, screenshot chat.png
#   E2E_TIMEOUT       seconds allowed for the browser test (default 120)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

CHAT_BIN=${CHAT_BIN:-target/release/examples/chat}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
OUT=${E2E_OUT:-target/e2e}
E2E_TIMEOUT=${E2E_TIMEOUT:-120}
LOOPS=2
CHAT_LOG="$OUT/chat-server.log"
CHAT_PID=

log() { echo "[tests/e2e/chat.sh $(date -u +%H:%M:%S)] $*"; }
die() { echo "tests/e2e/chat.sh: error: $*" >&2; exit 1; }

# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    local rc=$?
    if [ -n "$CHAT_PID" ] && kill -0 "$CHAT_PID" 2>/dev/null; then
        kill -KILL "$CHAT_PID" 2>/dev/null || true
        wait "$CHAT_PID" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -f "$CHAT_LOG" ]; then
        echo "--- last lines of $CHAT_LOG ---"
        tail -n 30 "$CHAT_LOG" || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -x "$CHAT_BIN" ] || die "no chat server at $CHAT_BIN (cargo build --release --example chat, or set CHAT_BIN)"
command -v node >/dev/null || die "node not found"
[ -x "$CHROMIUM" ] || die "no browser at $CHROMIUM (apt-get install chromium, or set CHROMIUM)"
[ -d tests/e2e/node_modules/playwright-core ] || die "tests/e2e/node_modules/playwright-core missing (run: cd tests/e2e && npm ci)"
command -v python3 >/dev/null || die "python3 not found"
python3 -c 'import websockets.asyncio.client' 2>/dev/null || die "python3 lacks websockets (pip install websockets)"

mkdir -p "$OUT"
rm -f "$OUT/chat.png"
# Exists before the background job opens it, for the sed below.
: >"$CHAT_LOG"
# Port 0: the kernel picks a free one; the server prints the address it got.
"$CHAT_BIN" 127.0.0.1:0 "$LOOPS" >"$CHAT_LOG" 2>&1 &
CHAT_PID=$!
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's#^chat on http://127\.0\.0\.1:\([0-9]*\)/.*#\1#p' "$CHAT_LOG" | head -n 1)
    [ -n "$PORT" ] && break
    kill -0 "$CHAT_PID" 2>/dev/null || die "the chat server exited at startup"
    sleep 0.1
done
[ -n "$PORT" ] || die "the chat server printed no address within 10 s"
URL="http://127.0.0.1:$PORT/"
log "chat (pid $CHAT_PID, $LOOPS event loops) on $URL"

t0=$SECONDS
rc=0
SCREENSHOT="$OUT/chat.png" CHROMIUM="$CHROMIUM" E2E_TIMEOUT_MS=$(( (E2E_TIMEOUT - 10) * 1000 )) \
    timeout -k 5 "$E2E_TIMEOUT" node tests/e2e/chat.js "$URL" || rc=$?
log "chat test finished in $((SECONDS - t0)) s (exit $rc)"
[ "$rc" -eq 0 ] || die "chat test failed (exit $rc); server log: $CHAT_LOG"

kill -0 "$CHAT_PID" 2>/dev/null || die "the chat server died before the end of the test"
! grep -q 'panicked' "$CHAT_LOG" || die "the chat server panicked (see $CHAT_LOG)"

# SIGTERM: the process must be gone within 10 s (its status is not checked).
kill -TERM "$CHAT_PID"
for _ in $(seq 100); do
    kill -0 "$CHAT_PID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$CHAT_PID" 2>/dev/null && die "the chat server still runs 10 s after SIGTERM"
st=0
wait "$CHAT_PID" || st=$?
CHAT_PID=
log "chat server gone after SIGTERM (exit status $st); screenshot: $OUT/chat.png"
