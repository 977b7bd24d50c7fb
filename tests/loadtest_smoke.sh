#!/usr/bin/env bash
# A short load run against the release binary: 50 connections, pingpong
# then pipelined, a few seconds each, then the JSON example pipelined;
# every echo and reply verified by the generator
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

# The JSON service of examples/json_reply.rs: every reply is checked byte
# for byte against serde_json's encoding of the payload that was sent. The
# example has no signal handling; `timeout` bounds its life.
JSON_BIN=${JSON_BIN:-target/release/examples/json_reply}
[ -x "$JSON_BIN" ] || zerows_fail "no $JSON_BIN (cargo build --release --examples)"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
timeout 60 "$JSON_BIN" "127.0.0.1:$port" >"$OUT/json_reply.log" 2>&1 &
json_pid=$!
for _ in $(seq 100); do
    grep -q "listening on" "$OUT/json_reply.log" && break
    kill -0 "$json_pid" 2>/dev/null || zerows_fail "json_reply exited at startup"
    sleep 0.1
done
timeout 60 "$GEN" "ws://127.0.0.1:$port/" --reply json -c 50 --size 32 --size 3000 \
    --mode pipelined --inflight 8 --duration 3 --warmup 1 --json "$OUT/json.json"
kill "$json_pid"
wait "$json_pid" 2>/dev/null || true
echo "load smoke: json_reply answered every message as expected"
