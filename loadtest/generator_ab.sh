#!/usr/bin/env bash
# A/B of two builds of the load generator against one fixed server binary:
# how fast a generator drives the same server, and what each message costs
# the generator itself (its CPU over the measured window, from its own
# `generator_cpu_seconds`).
#
# Three cells: (a) ping-pong, 100 connections, 32 B; (b) pipelined, 1,000
# connections, 32 B, 16 in flight; (c) ping-pong, 100 connections, 16 KiB.
# Each repetition runs every cell with A then B (A B A B …), each run on a
# fresh server pinned to CPU 0 with the generator pinned to CPU 1. Every
# echo is verified; a run with any error fails the script (exit status 1).
#
#   loadtest/generator_ab.sh /path/to/before/zerows-loadtest \
#       target/release/zerows-loadtest /path/to/zerows
#
# Settings (environment): REPS (5), DURATION (4), WARMUP (1), PORT (first
# port tried, 9520), OUT (where the JSON of every run and the table go;
# default target/generator-ab-DATE), CELLS ("a b c").
#
# Invariants: loopback only; every process started here is stopped by its
# own pid (SIGTERM, then SIGKILL after 3 s); every wait is bounded (server
# start 10 s, a generator run 120 s).

set -euo pipefail

[ $# -eq 3 ] || { echo "usage: $0 GEN_A GEN_B SERVER" >&2; exit 2; }
GEN_A=$1
GEN_B=$2
SERVER=$3
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
REPS=${REPS:-5}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
PORT=${PORT:-9520}
CELLS=${CELLS:-"a b c"}
OUT=${OUT:-$root/target/generator-ab-$(date -u +%Y%m%d-%H%M%S)}

die() { echo "generator_ab.sh: $*" >&2; exit 2; }
for b in "$GEN_A" "$GEN_B" "$SERVER"; do [ -x "$b" ] || die "$b is not executable"; done
command -v taskset >/dev/null || die "taskset is needed (util-linux)"
command -v python3 >/dev/null || die "python3 is needed for the table"
mkdir -p "$OUT"

cell_args() {
    case $1 in
        a) echo "-c 100 --size 32 --mode pingpong" ;;
        b) echo "-c 1000 --size 32 --mode pipelined --inflight 16" ;;
        c) echo "-c 100 --size 16384 --mode pingpong" ;;
        *) die "unknown cell $1" ;;
    esac
}

server_pid=
stop_server() {
    [ -n "$server_pid" ] || return 0
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 30); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}
trap stop_server EXIT

port=$PORT
start_server() {
    port=$((port + 1))
    taskset -c 0 "$SERVER" --listen "127.0.0.1:$port" >"$OUT/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$server_pid" 2>/dev/null || die "server exited at startup"
        sleep 0.1
    done
    die "server not listening on $port after 10 s"
}

failed=0
for rep in $(seq "$REPS"); do
    for cell in $CELLS; do
        for side in A B; do
            gen=$GEN_A
            [ "$side" = B ] && gen=$GEN_B
            start_server
            json="$OUT/$cell-$side-$rep.json"
            # shellcheck disable=SC2046
            if ! timeout 120 taskset -c 1 "$gen" "ws://127.0.0.1:$port/" $(cell_args "$cell") \
                --duration "$DURATION" --warmup "$WARMUP" --server-pid "$server_pid" \
                --json "$json" >"$OUT/$cell-$side-$rep.txt" 2>&1; then
                echo "run $cell $side $rep failed: see $OUT/$cell-$side-$rep.txt" >&2
                failed=1
            fi
            stop_server
            echo "done: cell $cell, $side, repetition $rep"
        done
    done
done

python3 - "$OUT" "$CELLS" <<'EOF' | tee "$OUT/table.md"
import json, statistics, sys, glob, os
out, cells = sys.argv[1], sys.argv[2].split()
names = {"a": "ping-pong, 100 × 32 B", "b": "pipelined ×16, 1,000 × 32 B",
         "c": "ping-pong, 100 × 16 KiB"}
def runs(cell, side):
    r = []
    for p in sorted(glob.glob(f"{out}/{cell}-{side}-*.json")):
        v = json.load(open(p))
        if v["error_total"] or not v["messages"]:
            continue
        r.append({
            "msg/s": v["messages_per_sec"],
            "p50": v["latency_us"]["p50"],
            "p99": v["latency_us"]["p99"],
            "gen µs/msg": v["generator_cpu_seconds"] * 1e6 / v["messages"],
            "server µs/msg": (v["server"] or {}).get("cpu_us_per_message", float("nan")),
        })
    return r
def fmt(x):
    return f"{x/1e3:.1f}k" if x >= 1e4 else f"{x:.2f}" if x < 100 else f"{x:.0f}"
print("| cell | figure | A median (min–max) | B median (min–max) | B / A |")
print("|---|---|---|---|---:|")
for c in cells:
    a, b = runs(c, "A"), runs(c, "B")
    for k in ["msg/s", "p50", "p99", "gen µs/msg", "server µs/msg"]:
        xa, xb = [r[k] for r in a], [r[k] for r in b]
        if not xa or not xb:
            continue
        ma, mb = statistics.median(xa), statistics.median(xb)
        print(f"| {names[c]} ({len(xa)}/{len(xb)} runs) | {k} | {fmt(ma)} ({fmt(min(xa))}–{fmt(max(xa))}) "
              f"| {fmt(mb)} ({fmt(min(xb))}–{fmt(max(xb))}) | {mb/ma:.2f} |")
EOF
exit $failed
