#!/usr/bin/env bash
# Smoke test of the Go echo servers (build.sh builds them): each in turn on a
# kernel-chosen loopback port, under the load generator for a few seconds
# with every echo verified (text ping-pong up to 70,000 B, binary pipelined
# up to 16 KiB), its /memstats read, then SIGTERM expecting exit 0; last, one
# small `compare --servers go` whose table must have allocations for each.
# Any lost, altered or reordered echo, failed handshake or unclean exit fails
# the script. About 30 s.
#
# Usage: loadtest/peers-go/smoke.sh [BINDIR]
#   BINDIR  where zerows-loadtest and the peer-go-* binaries are
#           (default ${CARGO_TARGET_DIR:-target}/release)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
GEN=$BIN/zerows-loadtest
OUT=${CARGO_TARGET_DIR:-$ROOT/target}/peers-go-smoke
SERVERS=(gorilla nhooyr xnet)

# Start, stop and the cleanup trap: the same as for zerows in the test
# scripts (the Go peers take --listen and print their address too).
# shellcheck source=tests/server.sh
source "$ROOT/tests/server.sh"
fail() { zerows_fail "$*"; }

[ -x "$GEN" ] || fail "no $GEN (cargo build --release -p zerows-loadtest)"
for s in "${SERVERS[@]}"; do
    [ -x "$BIN/peer-go-$s" ] || fail "no $BIN/peer-go-$s (loadtest/peers-go/build.sh $BIN)"
done
mkdir -p "$OUT"

# memstats PORT: the body of GET /memstats (bash's /dev/tcp; HTTP/1.0 so the
# server closes after answering).
memstats() {
    local body
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'GET /memstats HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    body=$(timeout 5 cat <&3)
    exec 3<&-
    printf '%s\n' "$body" | tr -d '\r' | sed '1,/^$/d'
}

for s in "${SERVERS[@]}"; do
    ZEROWS_BIN=$BIN/peer-go-$s
    zerows_start "$OUT/$s.log"
    url=$ZEROWS_URL
    port=$ZEROWS_PORT
    timeout 60 "$GEN" "$url" -c 50 --size 32 --size 1024 --size 70000 --text \
        --mode pingpong --duration 2 --warmup 0.5 --quiet --json "$OUT/$s-pingpong.json" \
        || fail "peer-go-$s: text ping-pong failed (see $OUT/$s-pingpong.json)"
    timeout 60 "$GEN" "$url" -c 50 --size 32 --size 16384 --binary \
        --mode pipelined --inflight 8 --duration 2 --warmup 0.5 --quiet --json "$OUT/$s-pipelined.json" \
        || fail "peer-go-$s: binary pipelined run failed (see $OUT/$s-pipelined.json)"
    stats=$(memstats "$port")
    echo "peer-go-$s: $(echo "$stats" | tr '\n' ' ')"
    messages=$(echo "$stats" | sed -n 's/^messages \([0-9]*\)$/\1/p')
    connections=$(echo "$stats" | sed -n 's/^connections \([0-9]*\)$/\1/p')
    [ "${messages:-0}" -gt 0 ] || fail "peer-go-$s: /memstats counts no message"
    [ "${connections:-0}" -eq 100 ] || fail "peer-go-$s: /memstats counts ${connections:-no} connections, not 100"
    zerows_stop
    echo "peer-go-$s: every echo verified, exit 0 after SIGTERM"
done

# compare's own path: started by name, verified, allocations read.
timeout 120 "$GEN" compare --servers go --connections 20 --sizes 1024 --modes pipelined \
    --repetitions 1 --duration 1 --warmup 0.25 --markdown "$OUT/compare.md" \
    || fail "compare --servers go failed"
for name in go-gorilla go-nhooyr go-x-net; do
    grep -Eq "^\| 20 \| 1024 \| pipelined \| $name \| .*\| [0-9]+\.[0-9] \| [0-9.]+ \|" "$OUT/compare.md" \
        || fail "compare: no allocations per message for $name"
done
echo "peers-go smoke: every Go server echoed correctly and compare counted its allocations"
