#!/usr/bin/env bash
# Soak: a long verified load against the release binary, sampling the
# server's resident memory, then checking that nothing was lost and that
# memory stayed flat.
#
# Usage: tests/soak.sh [SECONDS] [CONNECTIONS] [RATE]
#   defaults: 60 s, 1,000 connections, 20,000 messages/s in total (mixed
#   sizes, text), paced (rate mode) so it measures stability, not speed.
# Pass: the generator reports no error of any kind (lost, corrupted,
# reordered, unanswered, failed handshake: its exit status), and the
# server's RSS at the end is within 10% (plus 2 MiB) of its RSS after the
# first tenth of the run. Samples go to target/soak/rss.tsv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECS=${1:-60}
CONNS=${2:-1000}
RATE=${3:-20000}
GEN=${LOADTEST_BIN:-target/release/zerows-loadtest}
OUT=${SOAK_OUT:-target/soak}
# shellcheck source=tests/server.sh
source tests/server.sh
zerows_start "$OUT/server.log"
pid=$ZEROWS_PID
url=$ZEROWS_URL

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
interval=$(( SECS / 60 > 1 ? SECS / 60 : 1 ))
( start=$SECONDS
  printf 'seconds\trss_kib\n' >"$OUT/rss.tsv"
  while kill -0 "$pid" 2>/dev/null; do
      printf '%s\t%s\n' "$((SECONDS - start))" "$(rss)" >>"$OUT/rss.tsv"
      sleep "$interval"
  done ) &
sampler=$!
# shellcheck disable=SC2154  # st is set inside the trap
trap 'st=$?; kill "$sampler" 2>/dev/null || true; (exit "$st"); zerows_cleanup' EXIT

timeout $((SECS + 120)) "$GEN" "$url" -c "$CONNS" --text \
    --size 32 --size 200 --size 1024 --size 4096 --size 20000 \
    --mode rate --rate "$RATE" --no-spin --duration "$SECS" --warmup 2 \
    --json "$OUT/run.json" --plot "$OUT/run.svg" --server-pid "$pid" | tee "$OUT/run.txt"

zerows_stop
kill "$sampler" 2>/dev/null || true
python3 - "$OUT/rss.tsv" <<'PY'
import sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n")[1:] if l]
rows = [(int(s), int(r)) for s, r in rows if r]
n = len(rows)
early = rows[max(1, n // 10)][1]
last = max(r for _, r in rows[-3:])
peak = max(r for _, r in rows)
print(f"soak: {n} RSS samples; after warm-up {early} KiB, end {last} KiB, peak {peak} KiB")
if last > early * 1.10 + 2048:
    sys.exit(f"soak: memory grew from {early} KiB to {last} KiB")
print("soak: memory flat, no message lost, corrupted or reordered")
PY
