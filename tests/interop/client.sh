#!/usr/bin/env bash
# The client against servers we did not write: Python's `websockets`
# (servers/echo_server.py) and Node's `ws` (servers/echo_server.js), each on
# a kernel-chosen loopback port. Against each: the scenario driver
# (examples/client_interop.rs) and `zerows client` scripted through stdin.
# Exits 1 if anything failed against either server.
#
# Usage: bash tests/interop/client.sh
# Needs: cargo build --release --bins --examples; python3 with websockets
#        (pip install websockets==17.4); node and tests/interop/node_modules
#        (cd tests/interop && npm ci).
# Environment:
#   ZEROWS_BIN              the CLI (default target/release/zerows)
#   CLIENT_INTEROP_BIN      the driver (default target/release/examples/client_interop)
#   INTEROP_OUT             output directory (default target/interop): server logs
#   CLIENT_INTEROP_TIMEOUT  seconds allowed for the driver per server (default 180)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

ZEROWS_BIN=${ZEROWS_BIN:-target/release/zerows}
DRIVER=${CLIENT_INTEROP_BIN:-target/release/examples/client_interop}
OUT=${INTEROP_OUT:-target/interop}/client
CLIENT_INTEROP_TIMEOUT=${CLIENT_INTEROP_TIMEOUT:-180}
export CLIENT_INTEROP_TIMEOUT
# Each `zerows client` run: a few lines and a close, or a refusal.
CLI_TIMEOUT=20

log() { echo "[interop/client.sh $(date -u +%H:%M:%S)] $*"; }
die() { echo "$(basename "$0"): error: $*" >&2; exit 1; }

SERVER_PID=
SERVER_LOG=
# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    local rc=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -n "$SERVER_LOG" ] && [ -f "$SERVER_LOG" ]; then
        echo "--- last lines of $SERVER_LOG ---"
        tail -n 30 "$SERVER_LOG" || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -x "$ZEROWS_BIN" ] || die "no CLI at $ZEROWS_BIN (cargo build --release)"
[ -x "$DRIVER" ] || die "no driver at $DRIVER (cargo build --release --examples)"
command -v python3 >/dev/null || die "python3 not found"
command -v node >/dev/null || die "node not found"
python3 -c 'import websockets' 2>/dev/null || die "python3 cannot import websockets (pip install websockets==17.4)"
[ -d tests/interop/node_modules/ws ] || die "tests/interop/node_modules/ws missing (run: cd tests/interop && npm ci)"
mkdir -p "$OUT"

# server_start LOG CMD...: sets SERVER_PID and URL (ws://127.0.0.1:PORT).
server_start() {
    SERVER_LOG=$1
    shift
    : >"$SERVER_LOG"
    # The servers also end themselves after 600 s, should this script die
    # without its trap.
    "$@" 0 600 >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    local port=
    for _ in $(seq 100); do
        port=$(sed -n 's#^listening on ws://127\.0\.0\.1:\([0-9]*\)/.*#\1#p' "$SERVER_LOG" | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "$* exited at startup"
        sleep 0.1
    done
    [ -n "$port" ] || die "$* did not print its address within 10 s"
    URL="ws://127.0.0.1:$port"
}

server_stop() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# cli_check NAME STATUS STDOUT STDERR_PATTERN STDIN ARGS...: run
# `zerows client ARGS...` with STDIN; it must exit with STATUS, print
# exactly STDOUT (trailing newlines aside), and say something matching
# STDERR_PATTERN on stderr (empty: anything).
cli_check() {
    local name=$1 want_rc=$2 want_out=$3 want_err=$4 input=$5
    shift 5
    local out rc=0 err="$OUT/cli.stderr"
    out=$(printf '%s' "$input" | timeout -k 5 "$CLI_TIMEOUT" "$ZEROWS_BIN" client "$@" 2>"$err") || rc=$?
    if [ "$rc" -eq "$want_rc" ] && [ "$out" = "$want_out" ] \
        && { [ -z "$want_err" ] || grep -q -- "$want_err" "$err"; }; then
        echo "ok    cli $name"
        return 0
    fi
    echo "FAIL  cli $name: exit $rc (expected $want_rc), stdout $(printf '%q' "$out") (expected $(printf '%q' "$want_out"))"
    sed 's/^/      stderr: /' "$err"
    return 1
}

cli_checks() {
    local failed=0 token="cli-$$-$1"
    cli_check "echo hi" 0 "hi" "" $'hi\n' "$URL/" || failed=1
    cli_check "lines, close 4000" 0 $'one\ntwo é' "" $'one\ntwo é\n' \
        --close 4000 --close-reason done "$URL/?id=$token" || failed=1
    cli_check "server saw 4000" 0 "4000 done" "" "close-of $token"$'\n' "$URL/" || failed=1
    cli_check "binary" 0 "bin" "" $'bin\n' --binary "$URL/" || failed=1
    cli_check "subprotocol" 0 "chat" "" $'subprotocol\n' --subprotocol chat "$URL/" || failed=1
    cli_check "header" 0 "v1" "" $'header X-Cli\n' --header "X-Cli: v1" "$URL/" || failed=1
    cli_check "ping" 0 "hi" "pong after" $'hi\n' --ping "$URL/" || failed=1
    cli_check "refused" 1 "" "403" $'hi\n' "$URL/refuse" || failed=1
    local long
    long="compressed $(printf 'zerows %.0s' $(seq 60))"
    cli_check "deflate" 0 $'hi\n'"$long" "" $'hi\n'"$long"$'\n' --deflate "$URL/" || failed=1
    return "$failed"
}

status=0
for server in "python websockets:python3 tests/interop/servers/echo_server.py" \
    "node ws:node tests/interop/servers/echo_server.js"; do
    name=${server%%:*}
    read -r -a cmd <<<"${server#*:}"
    server_start "$OUT/${name// /-}.log" "${cmd[@]}"
    log "$name on $URL (pid $SERVER_PID)"
    start=$SECONDS
    if ! timeout -k 5 "$((CLIENT_INTEROP_TIMEOUT + 10))" "$DRIVER" "$URL"; then
        log "$name: driver FAILED"
        status=1
    fi
    if ! cli_checks "${name// /-}"; then
        log "$name: zerows client FAILED"
        status=1
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { log "$name died during the run"; status=1; }
    server_stop
    log "$name done in $((SECONDS - start)) s"
done

[ "$status" -eq 0 ] || die "the client failed against an independent server"
log "the client passed against both servers"
