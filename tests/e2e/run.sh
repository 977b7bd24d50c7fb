#!/usr/bin/env bash
# Browser end-to-end test: start zerows on a free loopback port, run
# tests/e2e/browser.js (headless Debian Chromium through playwright-core) against
# its page, then stop zerows with SIGTERM and check it exits 0. Then
# permessage-deflate in the browser (tests/e2e/deflate.js): byte-exact echoes
# through WebSockets the page opens, against one server per deflate setting
# (default, --deflate off, --deflate-client-window-bits 10, --deflate-client-takeover).
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

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
OUT=${E2E_OUT:-target/e2e}
E2E_TIMEOUT=${E2E_TIMEOUT:-120}
# shellcheck source=tests/server.sh
source tests/server.sh

log() { echo "[tests/e2e/run.sh $(date -u +%H:%M:%S)] $*"; }
die() { zerows_fail "$*"; }

command -v node >/dev/null || die "node not found"
[ -x "$CHROMIUM" ] || die "no browser at $CHROMIUM (apt-get install chromium, or set CHROMIUM)"
[ -d tests/e2e/node_modules/playwright-core ] || die "tests/e2e/node_modules/playwright-core missing (run: cd tests/e2e && npm ci)"

zerows_start "$OUT/zerows-browser.log"
PORT=${ZEROWS_URL#ws://127.0.0.1:}
PORT=${PORT%/}
URL="http://127.0.0.1:$PORT/"
log "zerows (pid $ZEROWS_PID) on $URL"

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
[ "$rc" -eq 0 ] || die "browser test failed (exit $rc); server log: $ZEROWS_LOG"

# Graceful shutdown: SIGTERM, exit status 0 within the shutdown timeout (10 s) plus slack.
zerows_stop
log "zerows stopped on SIGTERM with exit 0; screenshot: $OUT/browser.png"

# permessage-deflate: deflate.js EXPECT against a server started with ARGS.
deflate_failed=()
for run in "on" "off --deflate off" "window-10 --deflate-client-window-bits 10" "takeover --deflate-client-takeover"; do
    read -r expect args <<<"$run"
    # shellcheck disable=SC2086  # args: zero or more words
    zerows_start "$OUT/zerows-deflate-$expect.log" $args
    PORT=${ZEROWS_URL#ws://127.0.0.1:}
    PORT=${PORT%/}
    log "deflate in the browser, expect $expect: zerows ${args:-(default)} (pid $ZEROWS_PID) on port $PORT"
    t0=$SECONDS
    rc=0
    CHROMIUM="$CHROMIUM" E2E_TIMEOUT_MS=$(( (E2E_TIMEOUT - 10) * 1000 )) \
        timeout -k 5 "$E2E_TIMEOUT" node tests/e2e/deflate.js "http://127.0.0.1:$PORT/" --expect "$expect" || rc=$?
    log "deflate test ($expect) finished in $((SECONDS - t0)) s (exit $rc)"
    [ "$rc" -eq 0 ] || deflate_failed+=("$expect (server log: $ZEROWS_LOG)")
    zerows_stop
done
if [ ${#deflate_failed[@]} -gt 0 ]; then
    for f in "${deflate_failed[@]}"; do log "deflate test failed: $f"; done
    die "${#deflate_failed[@]} browser deflate run(s) failed"
fi
log "browser deflate runs passed"
