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

OUT=${INTEROP_OUT:-target/interop}
INTEROP_TIMEOUT=${INTEROP_TIMEOUT:-120}
export INTEROP_TIMEOUT
# shellcheck source=tests/server.sh
source tests/server.sh

log() { echo "[interop/run.sh $(date -u +%H:%M:%S)] $*"; }
die() { zerows_fail "$*"; }

command -v python3 >/dev/null || die "python3 not found"
command -v node >/dev/null || die "node not found"
python3 -c 'import websockets' 2>/dev/null || die "python3 cannot import websockets (pip install websockets==17.4)"
[ -d tests/interop/node_modules/ws ] || die "tests/interop/node_modules/ws missing (run: cd tests/interop && npm ci)"

zerows_start "$OUT/zerows.log"
URL=$ZEROWS_URL
log "zerows (pid $ZEROWS_PID) on $URL"

status=0
log "Python websockets"
timeout -k 5 "$((INTEROP_TIMEOUT + 10))" python3 tests/interop/client.py "$URL" || { log "Python websockets FAILED"; status=1; }
log "Node ws"
timeout -k 5 "$((INTEROP_TIMEOUT + 10))" node tests/interop/client.js "$URL" || { log "Node ws FAILED"; status=1; }

# The server survived both and shuts down cleanly.
zerows_stop
[ "$status" -eq 0 ] || die "an independent client found a mismatch"
log "both independent clients passed"
