# shellcheck shell=bash
# Shared by the shell test scripts (source it): start the zerows binary (or
# another server that takes --listen and prints the address it listens on,
# as the Go peers of loadtest/peers-go/ do) on a kernel-chosen loopback
# port, and stop it with SIGTERM expecting exit 0.
# A trap kills it on any exit and shows the end of its log on failure.
#
#   source tests/server.sh
#   zerows_start LOG [ARGS...]    # sets ZEROWS_PID, ZEROWS_PORT, ZEROWS_URL (ws://127.0.0.1:PORT/)
#   zerows_stop                   # SIGTERM; fails unless it exits 0 within 15 s
#
# ZEROWS_BIN: the binary (default target/release/zerows, from the repo root).

ZEROWS_BIN=${ZEROWS_BIN:-target/release/zerows}
ZEROWS_PID=
ZEROWS_LOG=
ZEROWS_URL=
ZEROWS_PORT=

zerows_fail() { echo "$(basename "$0"): error: $*" >&2; exit 1; }

# shellcheck disable=SC2317  # invoked via trap
zerows_cleanup() {
    local rc=$?
    if [ -n "$ZEROWS_PID" ] && kill -0 "$ZEROWS_PID" 2>/dev/null; then
        kill -KILL "$ZEROWS_PID" 2>/dev/null || true
        wait "$ZEROWS_PID" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -n "$ZEROWS_LOG" ] && [ -f "$ZEROWS_LOG" ]; then
        echo "--- last lines of $ZEROWS_LOG ---"
        tail -n 30 "$ZEROWS_LOG" || true
    fi
    exit "$rc"
}
trap zerows_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

zerows_start() {
    ZEROWS_LOG=$1
    shift
    [ -x "$ZEROWS_BIN" ] || zerows_fail "no server binary at $ZEROWS_BIN (cargo build --release, or set ZEROWS_BIN)"
    mkdir -p "$(dirname "$ZEROWS_LOG")"
    # Exists before the background job opens it, for the sed below.
    : >"$ZEROWS_LOG"
    "$ZEROWS_BIN" --listen 127.0.0.1:0 "$@" >"$ZEROWS_LOG" 2>&1 &
    ZEROWS_PID=$!
    local port=
    for _ in $(seq 100); do
        # zerows: "zerows listening on ws://127.0.0.1:PORT/..."; the Go
        # peers: "NAME: listening on 127.0.0.1:PORT".
        port=$(sed -n -e 's#^zerows listening on ws://127\.0\.0\.1:\([0-9]*\)/.*#\1#p' \
            -e 's#^.*: listening on 127\.0\.0\.1:\([0-9]*\)$#\1#p' "$ZEROWS_LOG" | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$ZEROWS_PID" 2>/dev/null || zerows_fail "$ZEROWS_BIN exited at startup"
        sleep 0.1
    done
    [ -n "$port" ] || zerows_fail "$ZEROWS_BIN did not print its address within 10 s"
    ZEROWS_PORT=$port
    export ZEROWS_URL="ws://127.0.0.1:$port/"
}

zerows_stop() {
    kill -0 "$ZEROWS_PID" 2>/dev/null || zerows_fail "$ZEROWS_BIN died before the end of the test"
    kill -TERM "$ZEROWS_PID"
    for _ in $(seq 150); do
        kill -0 "$ZEROWS_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$ZEROWS_PID" 2>/dev/null && zerows_fail "$ZEROWS_BIN did not exit within 15 s of SIGTERM"
    local rc=0
    wait "$ZEROWS_PID" || rc=$?
    ZEROWS_PID=
    [ "$rc" -eq 0 ] || zerows_fail "$ZEROWS_BIN exited with $rc after SIGTERM"
}
