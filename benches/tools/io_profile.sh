#!/usr/bin/env bash
# Where a server's CPU goes: for each cell, the server's CPU
# per echoed message split into user and system time (from /proc/PID/stat
# over the measured window), then its system calls per message (a separate
# run with `strace -c -f -p PID`, which slows the server: its CPU is not
# quoted). Server pinned to CPU 0, generator to CPU 1, every echo verified.
#
#   cargo build --release -p zerows -p zerows-loadtest
#   benches/tools/io_profile.sh [SERVER ...]
#
# A SERVER is a binary taking `--listen ADDR`, with arguments of its own in
# the same word if any: "target/release/zerows --io uring". Several are
# run cell by cell in turn (A B A B), REPS times each. Kernel crossings:
# every system call counts, io_uring_enter included.
# Settings (environment): REPS (3), DURATION (4 s measured after 1 s of
# warm-up), STRACE_DURATION (3), PORT (first port tried, 19400), BIN
# (target/release, for zerows-loadtest), OUT (target/epoll-profile-DATE).
# Cells: ping-pong 100 × 32 B and 1,000 × 32 B, pipelined (16 in flight)
# 1,000 × 32 B, ping-pong 100 × 16 KiB; CELLS ("MODE CONNS SIZE;..."), to
# run others. STRACE=0 skips the system call counts.
#
# Invariants: loopback only; every server started here is stopped (SIGTERM,
# then SIGKILL after 3 s) before the next starts; every generator run is
# bounded by `timeout`; a run with any error fails the script (exit 1).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$root/target/release}
REPS=${REPS:-3}
DURATION=${DURATION:-4}
STRACE_DURATION=${STRACE_DURATION:-3}
PORT=${PORT:-19400}
OUT=${OUT:-$root/target/io-profile-$(date -u +%Y%m%d-%H%M%S)}
GEN=$BIN/zerows-loadtest
[ $# -gt 0 ] || set -- "$BIN/zerows"

die() { echo "io_profile.sh: $*" >&2; exit 2; }
[ -x "$GEN" ] || die "$GEN not found (cargo build --release -p zerows-loadtest)"
for b in "$@"; do read -ra w <<<"$b"; command -v "${w[0]}" >/dev/null || die "${w[0]} not found"; done
for t in taskset strace python3; do command -v $t >/dev/null || die "$t is needed"; done
mkdir -p "$OUT"

CELLS=${CELLS:-pingpong 100 32;pingpong 1000 32;pipelined 1000 32;pingpong 100 16384}
IFS=';' read -ra cells <<<"$CELLS"
STRACE=${STRACE:-1}
port=$PORT
pid=
stop() {
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
}
trap stop EXIT

# one BINARY MODE CONNS SIZE TAG EXTRA...: a fresh server, one generator run.
one() {
    local bin=$1 mode=$2 conns=$3 size=$4 tag=$5
    shift 5
    port=$((port + 1))
    local cmd
    read -ra cmd <<<"$bin"
    taskset -c 0 "${cmd[@]}" --listen "127.0.0.1:$port" >"$OUT/$tag.server.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    timeout 120 taskset -c 1 "$GEN" run "ws://127.0.0.1:$port/" -c "$conns" --size "$size" \
        --mode "$mode" --server-pid "$pid" --quiet --json "$OUT/$tag.json" "$@" \
        >"$OUT/$tag.log" 2>&1 || { echo "run $tag failed (see $OUT/$tag.log)" >&2; stop; exit 1; }
    stop
}

for rep in $(seq "$REPS"); do
    for cell in "${cells[@]}"; do
        read -r mode conns size <<<"$cell"
        k=0
        for bin in "$@"; do
            k=$((k + 1))
            one "$bin" "$mode" "$conns" "$size" "b$k-$mode-$conns-$size-r$rep" --warmup 1 --duration $((DURATION + 1))
        done
    done
done
for cell in "${cells[@]}"; do
    [ "$STRACE" = 0 ] && break
    read -r mode conns size <<<"$cell"
    k=0
    for bin in "$@"; do
        k=$((k + 1))
        one "$bin" "$mode" "$conns" "$size" "b$k-$mode-$conns-$size-strace" --warmup 0.5 \
            --duration "$STRACE_DURATION" --strace
    done
done

python3 - "$OUT" "$REPS" "$CELLS" "$@" <<'PY' | tee "$OUT/table.md"
import json, os, sys, statistics
out, reps, bins = sys.argv[1], int(sys.argv[2]), sys.argv[4:]
cells = [(m, int(c), int(s)) for m, c, s in (x.split() for x in sys.argv[3].split(";"))]
def load(tag):
    return json.load(open(f"{out}/{tag}.json"))
def strace(tag):
    f = f"{out}/{tag}.json"
    return load(tag)["server"] if os.path.exists(f) else {}
print("| cell | server | msg/s | server µs CPU/msg | user | system | system share | syscalls/msg (strace run) | most frequent per msg |")
print("|---|---|---:|---:|---:|---:|---:|---:|---|")
for mode, conns, size in cells:
    for k, b in enumerate(bins, 1):
        runs = [load(f"b{k}-{mode}-{conns}-{size}-r{r}") for r in range(1, reps + 1)]
        for v in runs:
            if v["error_total"]:
                sys.exit(f"errors in a run of {b}")
        med = lambda f: statistics.median(f(v) for v in runs)
        rng = lambda f: "%.2f–%.2f" % (min(f(v) for v in runs), max(f(v) for v in runs))
        cpu = lambda v: v["server"]["cpu_us_per_message"]
        usr = lambda v: v["server"]["user_us_per_message"]
        sysc = lambda v: v["server"]["system_us_per_message"]
        st = strace(f"b{k}-{mode}-{conns}-{size}-strace")
        top = ", ".join("%s %.3f" % (n, c) for n, c in st.get("syscalls", [])[:3])
        print("| %s %d × %d B | %s | %.1fk | %.2f (%s) | %.2f | %.2f | %.0f %% | %.3f | %s |" % (
            mode, conns, size, " ".join(w.split("/")[-1] for w in b.split()),
            med(lambda v: v["messages_per_sec"]) / 1e3, med(cpu), rng(cpu), med(usr), med(sysc),
            100 * med(sysc) / max(med(cpu), 1e-9), st.get("syscalls_per_message", 0), top))
PY
echo "runs and table: $OUT"
