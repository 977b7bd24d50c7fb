#!/usr/bin/env bash
# A short load run against the release binary: 50 connections, pingpong
# then pipelined, a few seconds each, every echo verified by the generator
# (its exit status is non-zero on any lost, corrupted, reordered or
# unanswered message, or a failed handshake). Loopback only, bounded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${ZEROWS_BIN:-target/release/zerows}
GEN=${LOADTEST_BIN:-target/release/zerows-loadtest}
OUT=target/loadtest-smoke
mkdir -p "$OUT"

"$BIN" --listen 127.0.0.1:0 >"$OUT/server.out" 2>"$OUT/server.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    grep -q "listening on" "$OUT/server.out" 2>/dev/null && break
    sleep 0.1
done
url=$(sed -n 's/^zerows listening on \(ws:[^ ]*\).*/\1/p' "$OUT/server.out" | head -n 1)
[ -n "$url" ] || { echo "server did not start"; cat "$OUT/server.log"; exit 1; }

timeout 60 "$GEN" "$url" -c 50 --size 32 --size 1024 --size 70000 --text \
    --mode pingpong --duration 3 --warmup 1 --json "$OUT/pingpong.json"
timeout 60 "$GEN" "$url" -c 50 --size 32 --size 16384 --binary \
    --mode pipelined --inflight 8 --duration 3 --warmup 1 --json "$OUT/pipelined.json"

kill -TERM "$pid"
wait "$pid"
echo "load smoke: server exited 0 after SIGTERM"
