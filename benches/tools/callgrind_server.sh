#!/usr/bin/env bash
# Instructions per echoed message of the whole server: the event loop, the
# session and the socket calls' user-space side, which `benches/callgrind.rs`
# (the session over an in-memory transport) does not see.
#
#   cargo build --release -p zerows -p zerows-loadtest
#   benches/tools/callgrind_server.sh [SERVER ...]
#
# Each SERVER (a binary taking `--listen ADDR`, with arguments of its own in
# the same word: "target/release/zerows --io uring") runs under
# `valgrind --tool=callgrind` twice: once for FEW messages and once for MANY
# (10 connections, 32-byte ping-pong, every echo verified). Start-up,
# handshakes and shutdown cost the same in both, so
# (Ir(MANY) − Ir(FEW)) / (MANY − FEW) is the cost of one message. Several
# servers run in turn, REPS times (A B A B). For comparing builds of the
# epoll loop: valgrind does not follow what the kernel writes through an
# io_uring, so `--io uring` cannot be measured this way.
# Settings (environment): REPS (2), FEW (2000), MANY (12000), PORT (19700),
# BIN (target/release, for zerows-loadtest), KEEP=1 keeps the logs.
#
# Invariants: loopback only; each server is stopped (SIGTERM) and waited for
# before the next starts; each generator run is bounded by `timeout`; a run
# that fails fails the script (exit 1).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$root/target/release}
REPS=${REPS:-2}
FEW=${FEW:-2000}
MANY=${MANY:-12000}
PORT=${PORT:-19700}
GEN=$BIN/zerows-loadtest
[ $# -gt 0 ] || set -- "$BIN/zerows"

die() { echo "callgrind_server.sh: $*" >&2; exit 2; }
[ -x "$GEN" ] || die "$GEN not found (cargo build --release -p zerows-loadtest)"
command -v valgrind >/dev/null || die "valgrind is needed"
for b in "$@"; do read -ra w <<<"$b"; command -v "${w[0]}" >/dev/null || die "${w[0]} not found"; done
tmp=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "logs: $tmp" >&2
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
port=$PORT

# ir SERVER MESSAGES PORT: total instructions of one server run.
ir() {
    local cmd port=$3
    read -ra cmd <<<"$1"
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
        "${cmd[@]}" --listen "127.0.0.1:$port" --ping-interval 0 >"$tmp/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 150); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.2
    done
    timeout 600 "$GEN" run "ws://127.0.0.1:$port/" -c 10 --size 32 --messages "$2" --quiet \
        >"$tmp/gen.log" 2>&1 || { cat "$tmp/gen.log" >&2; kill -KILL "$pid"; die "the generator failed"; }
    kill -TERM "$pid"
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null && die "the server did not stop on SIGTERM"
    wait "$pid" || true
    pid=
    grep -o "Collected : [0-9]*" "$tmp/server.log" | grep -o "[0-9]*$" ||
        { cat "$tmp/server.log" >&2; die "no instruction count"; }
}

echo "| server | run | Ir ($FEW msgs) | Ir ($MANY msgs) | Ir per message |"
echo "|---|---:|---:|---:|---:|"
for rep in $(seq "$REPS"); do
    for b in "$@"; do
        few=$(ir "$b" "$FEW" $((port += 1)))
        many=$(ir "$b" "$MANY" $((port += 1)))
        per=$(python3 -c "print('%.1f' % (($many - $few) / ($MANY - $FEW)))")
        echo "| $b | $rep | $few | $many | $per |"
    done
done
