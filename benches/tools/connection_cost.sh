#!/usr/bin/env bash
# Server CPU per connection: accept, handshake and close, nothing else.
#
#   cargo build --release -p zerows -p zerows-loadtest
#   benches/tools/connection_cost.sh [SERVER ...]
#
# Each SERVER (a binary taking `--listen ADDR`, with arguments of its own in
# the same word: "target/release/zerows --io uring", or
# "env VAR=1 target/release/zerows") is started pinned to CPU 0; the
# generator (`zerows-loadtest idle --hold 0`, CPU 1) opens N connections,
# completes their handshakes and closes them. The server's CPU over that
# window (every thread's run time from /proc/PID/task/*/schedstat, in ns)
# over N. Several servers run in turn, REPS times (A B A B).
# Settings (environment): REPS (4), N (5000), PORT (19800), BIN
# (target/release, for zerows-loadtest).
#
# Invariants: loopback only; each server is stopped before the next starts;
# each generator run is bounded by `timeout`; a run in which not every
# connection was made fails the script (exit 1).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$root/target/release}
REPS=${REPS:-4}
N=${N:-5000}
PORT=${PORT:-19800}
GEN=$BIN/zerows-loadtest
[ $# -gt 0 ] || set -- "$BIN/zerows"

die() { echo "connection_cost.sh: $*" >&2; exit 2; }
[ -x "$GEN" ] || die "$GEN not found (cargo build --release -p zerows-loadtest)"
for t in taskset python3; do command -v $t >/dev/null || die "$t is needed"; done
for b in "$@"; do read -ra w <<<"$b"; command -v "${w[0]}" >/dev/null || die "${w[0]} not found"; done
tmp=$(mktemp -d)
pid=
cleanup() {
    [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# Run time of every thread of process $1, in ns.
cpu_ns() {
    local t=0 f run _
    for f in /proc/"$1"/task/*/schedstat; do
        read -r run _ <"$f" || continue
        t=$((t + run))
    done
    echo "$t"
}

port=$PORT
echo "| server | run | connections | server µs CPU per connection |"
echo "|---|---:|---:|---:|"
for rep in $(seq "$REPS"); do
    for b in "$@"; do
        read -ra cmd <<<"$b"
        port=$((port + 1))
        taskset -c 0 "${cmd[@]}" --listen "127.0.0.1:$port" --ping-interval 0 >"$tmp/server.log" 2>&1 &
        pid=$!
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.1
        done
        sleep 0.3
        before=$(cpu_ns "$pid")
        timeout 120 taskset -c 1 "$GEN" idle "ws://127.0.0.1:$port/" -c "$N" --hold 0 \
            --quiet --json "$tmp/idle.json" >"$tmp/gen.log" 2>&1 ||
            { cat "$tmp/gen.log" >&2; echo "the generator failed" >&2; exit 1; }
        sleep 0.3
        after=$(cpu_ns "$pid")
        kill -TERM "$pid"
        wait "$pid" || true
        pid=
        held=$(python3 -c "import json,sys; d = json.load(open(sys.argv[1])); print(d['connections_made'] if d['error_total'] == 0 else -1)" "$tmp/idle.json")
        [ "$held" = "$N" ] || { echo "$b: $held of $N connections made" >&2; exit 1; }
        echo "| $b | $rep | $N | $(python3 -c "print('%.1f' % (($after - $before) / 1e3 / $N))") |"
    done
done
