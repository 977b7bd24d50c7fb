#!/usr/bin/env bash
# Independent clients: start zerows on a free loopback port, run echo
# conversations through Python's `websockets` (client.py) and Node's `ws`
# (client.js), with permessage-deflate offered and not, then stop zerows with
# SIGTERM and check that it exits 0. Then one server per deflate setting
# (--deflate off, --deflate-client-takeover, --deflate-client-window-bits 10,
# --deflate-window-bits 10, --max-message-size 1048576), each checked by the
# two clients and by deflate_raw.py (handshake and frames by hand: offers no
# library sends, broken DEFLATE -> 1007, a 64 MiB bomb -> 1009 with the
# server's peak RSS under 64 MiB).
#
# Usage: bash tests/interop/run.sh
# Needs: python3 with websockets (pip install websockets==17.4), node, and
#        tests/interop/node_modules (cd tests/interop && npm ci).
# Environment:
#   ZEROWS_BIN        server binary (default target/release/zerows, relative to the repo)
#   INTEROP_OUT       output directory (default target/interop): server logs
#   INTEROP_TIMEOUT   seconds allowed for each client run (default 120)
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

failed=()
# run NAME CMD...: one client run, bounded; a failure is recorded, not fatal.
run() {
    local name=$1
    shift
    log "$name"
    timeout -k 5 "$((INTEROP_TIMEOUT + 10))" "$@" || { log "$name FAILED"; failed+=("$name"); }
}

# -- Default server (deflate on) -------------------------------------------
zerows_start "$OUT/zerows.log"
URL=$ZEROWS_URL
log "zerows (pid $ZEROWS_PID) on $URL"
run "Python websockets, deflate offered" python3 tests/interop/client.py "$URL" --profile on
run "Python websockets, compression=None" python3 tests/interop/client.py "$URL" --profile off
run "Python websockets, server_max_window_bits=10 offered" \
    python3 tests/interop/client.py "$URL" --profile server-window-10 --steps deflate_echo,fragmented
run "Node ws, perMessageDeflate on" node tests/interop/client.js "$URL" --profile on
run "Node ws, perMessageDeflate off" node tests/interop/client.js "$URL" --profile off
run "Node ws, serverMaxWindowBits 10" \
    node tests/interop/client.js "$URL" --profile server-window-10 --steps deflateEcho,fragmented
run "raw deflate checks (default)" python3 tests/interop/deflate_raw.py "$URL" --profile default
# The server survived all of them and shuts down cleanly.
zerows_stop

# -- One server per deflate setting --------------------------------------------
# with_server LABEL SERVER_ARGS... -- CLIENT_PROFILE PY_STEPS JS_STEPS RAW_PROFILE
with_server() {
    local label=$1
    shift
    local args=()
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    shift
    zerows_start "$OUT/zerows-$label.log" "${args[@]}"
    log "zerows ${args[*]} (pid $ZEROWS_PID) on $ZEROWS_URL"
    if [ "$1" != - ]; then
        run "Python websockets against ${args[*]}" python3 tests/interop/client.py "$ZEROWS_URL" --profile "$1" --steps "$2"
        run "Node ws against ${args[*]}" node tests/interop/client.js "$ZEROWS_URL" --profile "$1" --steps "$3"
    fi
    run "raw deflate checks ($4)" python3 tests/interop/deflate_raw.py "$ZEROWS_URL" --profile "$4" --pid "$ZEROWS_PID"
    zerows_stop
}

with_server deflate-off --deflate off -- \
    declined text_and_binary,deflate_echo textAndBinary,deflateEcho off
with_server client-takeover --deflate-client-takeover -- \
    takeover deflate_echo,fragmented deflateEcho,fragmented takeover
with_server client-window-10 --deflate-client-window-bits 10 -- \
    client-window-10 deflate_echo,fragmented deflateEcho,fragmented client-window-10
with_server window-10 --deflate-window-bits 10 -- \
    any deflate_echo,fragmented deflateEcho,fragmented server-window-10
with_server limit --max-message-size 1048576 -- \
    - - - limit

if [ ${#failed[@]} -gt 0 ]; then
    for f in "${failed[@]}"; do log "failed: $f"; done
    die "${#failed[@]} client run(s) found a mismatch"
fi
log "all independent client runs passed"
