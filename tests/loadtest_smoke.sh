#!/usr/bin/env bash
# A short load run against the release binary: 50 connections, pingpong
# then pipelined, a few seconds each, every echo verified by the generator
# (its exit status is non-zero on any lost, corrupted, reordered or
# unanswered message, or a failed handshake). Loopback only, bounded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GEN=${LOADTEST_BIN:-target/release/zerows-loadtest}
OUT=target/loadtest-smoke
# shellcheck source=tests/server.sh
source tests/server.sh
zerows_start "$OUT/server.log"
url=$ZEROWS_URL

timeout 60 "$GEN" "$url" -c 50 --size 32 --size 1024 --size 70000 --text \
    --mode pingpong --duration 3 --warmup 1 --json "$OUT/pingpong.json"
timeout 60 "$GEN" "$url" -c 50 --size 32 --size 16384 --binary \
    --mode pipelined --inflight 8 --duration 3 --warmup 1 --json "$OUT/pipelined.json"

zerows_stop
echo "load smoke: server exited 0 after SIGTERM"
