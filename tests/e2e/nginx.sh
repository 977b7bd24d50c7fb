#!/usr/bin/env bash
# zerows behind a real reverse proxy: two zerows instances on free loopback
# ports, nginx (unprivileged, temporary prefix, no system service) on another,
# load-balancing WebSocket connections between them round robin with
# tests/e2e/nginx.conf.template (plain and TLS listeners); then tests/e2e/nginx_client.py
# (Python `websockets`) checks echoes through nginx (ws:// and wss://), that
# both instances served connections, and a
# graceful drain of one instance behind the proxy. Finally both instances are
# stopped with SIGTERM and must exit 0.
#
# Usage: bash tests/e2e/nginx.sh
# Needs: nginx (apt: nginx), python3 with websockets (pip install websockets).
# Environment:
#   ZEROWS_BIN       server binary (default target/release/zerows, relative to the repo)
#   NGINX            nginx binary (default: nginx on PATH, else /usr/sbin/nginx)
#   E2E_OUT          where logs and the generated config are kept (default target/e2e/nginx)
#   E2E_TIMEOUT      seconds allowed for the client (default 180)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

ZEROWS_BIN=${ZEROWS_BIN:-target/release/zerows}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
OUT=${E2E_OUT:-target/e2e/nginx}
E2E_TIMEOUT=${E2E_TIMEOUT:-180}

log() { echo "[tests/e2e/nginx.sh $(date -u +%H:%M:%S)] $*"; }
die() { echo "tests/e2e/nginx.sh: error: $*" >&2; exit 1; }

[ -x "$ZEROWS_BIN" ] || die "no server binary at $ZEROWS_BIN (cargo build --release, or set ZEROWS_BIN)"
[ -x "$NGINX" ] || die "nginx not found (apt-get install nginx, or set NGINX)"
command -v python3 >/dev/null || die "python3 not found"
python3 -c 'import websockets.sync.client' 2>/dev/null || die "python3 lacks websockets (pip install websockets)"
command -v setsid >/dev/null || die "setsid (util-linux) not found"
command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"

mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT/nginx.conf" "$OUT/nginx.out"  # this script's files from an earlier run
OUT=$(cd "$OUT" && pwd)
PREFIX=$(mktemp -d "${TMPDIR:-/tmp}/zerows-nginx.XXXXXX")
mkdir -p "$PREFIX/logs" "$PREFIX/tmp"

PID_A='' PID_B='' PID_NGINX=''

# Stop a process group: TERM, up to 5 s, then KILL.
stop_group() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    local rc=$?
    stop_group "$PID_NGINX"
    stop_group "$PID_A"
    stop_group "$PID_B"
    # Keep the logs and the generated config next to the other test output.
    cp "$PREFIX/nginx.conf" "$OUT/" 2>/dev/null || true
    cp "$PREFIX"/logs/*.log "$OUT/" 2>/dev/null || true
    rm -rf "$PREFIX"
    if [ "$rc" -ne 0 ]; then
        for f in "$OUT"/zerows-a.log "$OUT"/zerows-b.log "$OUT"/error.log; do
            [ -f "$f" ] || continue
            echo "--- last lines of $f ---"
            tail -n 20 "$f" || true
        done
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_zerows NAME VAR: runs an instance on a kernel-chosen port (own process
# group); stores its pid in VAR at once (so cleanup stops it even if startup
# fails) and sets PID and PORT.
start_zerows() {
    local name=$1 logf="$OUT/zerows-$1.log"
    # --close-timeout 4: the drain test holds one peer that never answers the
    # server's close, so instance A stays draining (healthz 503) for 4 s.
    : >"$logf"  # exists before the background job opens it, for the sed below
    setsid "$ZEROWS_BIN" --listen 127.0.0.1:0 --close-timeout 4 --shutdown-timeout 10 >"$logf" 2>&1 &
    PID=$!
    printf -v "$2" '%s' "$PID"
    PORT=
    for _ in $(seq 100); do
        PORT=$(sed -n 's#^zerows listening on ws://127\.0\.0\.1:\([0-9]*\)/.*#\1#p' "$logf" | head -n 1)
        [ -n "$PORT" ] && return 0
        kill -0 "$PID" 2>/dev/null || die "zerows $name exited at startup"
        sleep 0.1
    done
    die "zerows $name printed no listening address within 10 s"
}

start_zerows a PID_A; PORT_A=$PORT
start_zerows b PID_B; PORT_B=$PORT
log "zerows A pid $PID_A on 127.0.0.1:$PORT_A, B pid $PID_B on 127.0.0.1:$PORT_B"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

USER_DIRECTIVE=
[ "$(id -u)" -eq 0 ] && USER_DIRECTIVE="user root root;"

# A throwaway self-signed certificate for the TLS listener.
mkdir -p "$PREFIX/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$PREFIX/tls/key.pem" -out "$PREFIX/tls/cert.pem" 2>"$OUT/openssl.log" \
    || die "openssl could not make a test certificate (see $OUT/openssl.log)"

# nginx's ports: ask the kernel for free ones; if another process takes one
# before nginx binds, try again with new ones.
NGINX_PORT=
for attempt in 1 2 3 4 5; do
    port=$(free_port)
    tls_port=$(free_port)
    [ "$tls_port" != "$port" ] || continue
    sed -e "s#@PREFIX@#$PREFIX#g" -e "s#@LISTEN@#127.0.0.1:$port#g" -e "s#@TLS_LISTEN@#127.0.0.1:$tls_port#g" \
        -e "s#@UPSTREAM1@#127.0.0.1:$PORT_A#g" -e "s#@UPSTREAM2@#127.0.0.1:$PORT_B#g" \
        -e "s#@USER_DIRECTIVE@#$USER_DIRECTIVE#g" \
        tests/e2e/nginx.conf.template >"$PREFIX/nginx.conf"
    "$NGINX" -t -q -p "$PREFIX" -e "$PREFIX/logs/error.log" -c "$PREFIX/nginx.conf" \
        || die "nginx -t rejected the generated configuration ($PREFIX/nginx.conf)"
    setsid "$NGINX" -p "$PREFIX" -e "$PREFIX/logs/error.log" -c "$PREFIX/nginx.conf" >"$OUT/nginx.out" 2>&1 &
    PID_NGINX=$!
    for _ in $(seq 100); do
        if ! kill -0 "$PID_NGINX" 2>/dev/null; then
            wait "$PID_NGINX" 2>/dev/null || true
            PID_NGINX=
            break
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$tls_port") 2>/dev/null; then
            NGINX_PORT=$port
            break
        fi
        sleep 0.1
    done
    [ -n "$NGINX_PORT" ] && break
    stop_group "$PID_NGINX"; PID_NGINX=
    log "nginx did not come up on ports $port/$tls_port (attempt $attempt): $(tail -n 1 "$PREFIX/logs/error.log" 2>/dev/null)"
done
[ -n "$NGINX_PORT" ] || die "nginx did not start"
log "$("$NGINX" -v 2>&1) (pid $PID_NGINX) on 127.0.0.1:$NGINX_PORT, TLS on 127.0.0.1:$tls_port -> upstream 127.0.0.1:$PORT_A, 127.0.0.1:$PORT_B"

t0=$SECONDS
rc=0
timeout -k 5 "$E2E_TIMEOUT" python3 tests/e2e/nginx_client.py \
    --proxy "http://127.0.0.1:$NGINX_PORT/" \
    --tls-proxy "https://127.0.0.1:$tls_port/" --ca "$PREFIX/tls/cert.pem" \
    --direct-a "http://127.0.0.1:$PORT_A/" --direct-b "http://127.0.0.1:$PORT_B/" \
    --pid-a "$PID_A" || rc=$?
log "client finished in $((SECONDS - t0)) s (exit $rc)"
[ "$rc" -eq 0 ] || die "client checks failed (exit $rc); logs in $OUT"

# wait_exit NAME PID: the instance must exit 0 within 15 s.
wait_exit() {
    local name=$1 pid=$2 st=0
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && die "zerows $name still running 15 s after SIGTERM"
    wait "$pid" || st=$?
    [ "$st" -eq 0 ] || die "zerows $name exited $st after SIGTERM, expected 0"
    log "zerows $name exited 0 after SIGTERM"
}

# A got its SIGTERM from the client (drain test).
wait_exit A "$PID_A"; PID_A=
kill -TERM "$PID_B"
wait_exit B "$PID_B"; PID_B=

up_a=$(grep -c "up=127.0.0.1:$PORT_A " "$PREFIX/logs/access.log" || true)
up_b=$(grep -c "up=127.0.0.1:$PORT_B " "$PREFIX/logs/access.log" || true)
log "nginx access log: $up_a requests ended on A, $up_b on B (logs and config in $OUT)"
