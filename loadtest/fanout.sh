#!/usr/bin/env bash
# Fan-out comparison: zerows' chat example (examples/chat.rs, 1 loop) against
# the tokio-tungstenite chat peer (loadtest/src/peers/tokio_tungstenite.rs
# --service chat, 1 worker thread), measured by `zerows-loadtest fanout`.
#
# For each subscriber count, the two servers are run in turn (A B A B …) for
# REPS repetitions. Every run starts its server fresh on a new port, pinned
# to CPU 0, with the generator pinned to CPU 1, and kills the server after.
# The generator verifies every delivery; a run with any error fails the
# script (exit status 1). With STRACE=1, separate runs (after the timed
# ones) count the server's system calls over the measured messages with
# `strace -c -f -p PID`; strace slows the server, so those runs give only
# the syscall figures.
#
#   cargo build --release -p zerows-loadtest && cargo build --release --example chat
#   loadtest/fanout.sh                                   # N = 10000 and 19000
#   SUBSCRIBERS=1000 MESSAGES=50 REPS=1 loadtest/fanout.sh
#   STRACE=1 loadtest/fanout.sh
#
# Settings (environment): SUBSCRIBERS ("10000 19000"), MESSAGES (40),
# WARMUP (3), SIZE (32), REPS (3), STRACE (0), STRACE_MESSAGES (10),
# STRACE_REPS (1), TIMEOUT (30: seconds a message may take to reach every
# subscriber), PORT (first port tried, 9460), OUT (where the JSON of every
# run and the table go; default target/fanout-DATE), BIN (target/release).
#
# Invariants: only loopback addresses are used; every process started here
# is stopped by its own pid (SIGTERM, then SIGKILL after 3 s); every wait is
# bounded (server start 10 s, a generator run GEN_LIMIT seconds); both the
# generator and the server stay below the open-file limit (checked first).

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
SUBSCRIBERS=${SUBSCRIBERS:-"10000 19000"}
MESSAGES=${MESSAGES:-40}
WARMUP=${WARMUP:-3}
SIZE=${SIZE:-32}
REPS=${REPS:-3}
STRACE=${STRACE:-0}
STRACE_MESSAGES=${STRACE_MESSAGES:-10}
STRACE_REPS=${STRACE_REPS:-1}
TIMEOUT=${TIMEOUT:-30}
PORT=${PORT:-9460}
GEN_LIMIT=${GEN_LIMIT:-900}
BIN=${BIN:-$root/target/release}
OUT=${OUT:-$root/target/fanout-$(date -u +%Y%m%d-%H%M%S)}

die() { echo "fanout.sh: $*" >&2; exit 2; }

for b in "$BIN/zerows-loadtest" "$BIN/peer-tokio-tungstenite" "$BIN/examples/chat"; do
    [ -x "$b" ] || die "$b not found: cargo build --release -p zerows-loadtest && cargo build --release --example chat"
done
command -v taskset >/dev/null || die "taskset is needed (util-linux)"
command -v python3 >/dev/null || die "python3 is needed for the table"
if [ "$STRACE" = 1 ]; then command -v strace >/dev/null || die "STRACE=1 needs strace"; fi

# Descriptors: the generator holds N client sockets, the server N server
# sockets; each needs N plus a few.
max_n=0
for n in $SUBSCRIBERS; do
    [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || die "bad subscriber count $n"
    [ "$n" -gt "$max_n" ] && max_n=$n
done
need=$((max_n + 64))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    ulimit -n "$need" 2>/dev/null || die "open-file limit $(ulimit -n) (hard $(ulimit -Hn)) is below the $need needed for $max_n subscribers"
fi

# The binaries are copied so that a rebuild during the runs cannot mix builds.
mkdir -p "$OUT/bin" "$OUT/runs"
cp "$BIN/zerows-loadtest" "$BIN/peer-tokio-tungstenite" "$BIN/examples/chat" "$OUT/bin/"
GEN=$OUT/bin/zerows-loadtest
manifest=$OUT/runs.tsv
: >"$manifest"

port=$PORT
server_pid=

# A port nobody listens on, from $port up.
next_port() {
    local tries=0
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((port + 1))
        tries=$((tries + 1))
        [ $tries -lt 200 ] || die "no free port from $PORT"
    done
}

stop_server() {
    [ -n "$server_pid" ] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 30); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# start_server NAME LOG: start it pinned to CPU 0 on $port and wait (10 s at
# most) until it says it listens.
start_server() {
    local name=$1 log=$2
    case $name in
    zerows) taskset -c 0 "$OUT/bin/chat" "127.0.0.1:$port" 1 >"$log" 2>&1 & ;;
    tokio-tungstenite)
        taskset -c 0 "$OUT/bin/peer-tokio-tungstenite" --listen "127.0.0.1:$port" \
            --service chat --runtime multi --workers 1 >"$log" 2>&1 & ;;
    *) die "unknown server $name" ;;
    esac
    server_pid=$!
    for _ in $(seq 100); do
        if grep -q -e "chat on" -e "listening on" "$log" 2>/dev/null; then return 0; fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

failed=0
# run KIND N NAME REP MESSAGES [EXTRA…]
run() {
    local kind=$1 n=$2 name=$3 rep=$4 m=$5
    shift 5
    local tag="$n-$name-$kind-$rep"
    local json=$OUT/runs/$tag.json log=$OUT/runs/$tag.server.log
    next_port
    rm -f "$json"
    local code=0
    if start_server "$name" "$log"; then
        timeout "$GEN_LIMIT" taskset -c 1 "$GEN" fanout "ws://127.0.0.1:$port/?room=bench" \
            --subscribers "$n" --messages "$m" --warmup "$WARMUP" --size "$SIZE" \
            --timeout "$TIMEOUT" --server-pid "$server_pid" --json "$json" --quiet "$@" \
            2>"$OUT/runs/$tag.gen.log" || code=$?
    else
        echo "server $name did not start (see $log)" >"$OUT/runs/$tag.gen.log"
        code=3
    fi
    stop_server
    port=$((port + 1))
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$n" "$name" "$rep" "$code" "$json" >>"$manifest"
    local what
    what=$(python3 - "$json" <<'EOF' 2>/dev/null || true
import json, sys
v = json.load(open(sys.argv[1]))
s = v.get("server") or {}
sc = v.get("syscalls")
print("to last %.1f ms (median subscriber %.1f ms), server %.2f µs CPU/delivery%s, %d errors" % (
    v["latency_last_us"]["median"] / 1000, v["latency_median_us"]["median"] / 1000,
    s.get("cpu_us_per_message", 0),
    ", %.3f syscalls/delivery" % sc["per_delivery"] if sc else "", v["error_total"]))
EOF
)
    echo "[$kind] N=$n $name #$rep: exit $code${what:+, $what}" >&2
    if [ "$code" != 0 ]; then
        failed=1
        sed 's/^/    /' "$OUT/runs/$tag.gen.log" | tail -5 >&2
    fi
    sleep 1
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
for n in $SUBSCRIBERS; do
    for rep in $(seq "$REPS"); do
        for name in zerows tokio-tungstenite; do
            run timed "$n" "$name" "$rep" "$MESSAGES"
        done
    done
done
if [ "$STRACE" = 1 ]; then
    for n in $SUBSCRIBERS; do
        for rep in $(seq "$STRACE_REPS"); do
            for name in zerows tokio-tungstenite; do
                run strace "$n" "$name" "$rep" "$STRACE_MESSAGES" --strace
            done
        done
    done
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$manifest" "$OUT/table.md" "$started" "$load_before" "$load_after" \
    "$MESSAGES" "$WARMUP" "$SIZE" "$REPS" "$STRACE_MESSAGES" <<'EOF'
import json, sys

manifest, out, started, lb, la, m, w, size, reps, sm = sys.argv[1:]
runs = []
for line in open(manifest):
    kind, n, name, rep, code, path = line.rstrip("\n").split("\t")
    try:
        v = json.load(open(path))
    except (OSError, ValueError):
        v = None
    runs.append(dict(kind=kind, n=int(n), name=name, ok=code == "0" and v is not None, v=v, code=code))

def median(xs):
    xs = sorted(xs)
    k = len(xs)
    return (xs[(k - 1) // 2] + xs[k // 2]) / 2 if k else float("nan")

def cell(xs, fmt):
    if not xs:
        return "–"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return (fmt + " ({}–{})").format(median(xs), fmt.format(min(xs)), fmt.format(max(xs)))

keys = []
for r in runs:
    if (r["n"], r["name"]) not in keys:
        keys.append((r["n"], r["name"]))

o = []
o.append("Fan-out on loopback: N connections in one room (all subscribers; the first also publishes), %s measured "
         "messages of %s B text (+%s warm-up) per run, one at a time; %s run(s) per cell, servers interleaved, each "
         "started fresh and pinned to CPU 0; generator pinned to CPU 1. Started %s; load average before / after: "
         "%s / %s. Each cell: the median over the runs of each run's median, min–max of the runs in brackets; "
         "CPU per delivery is the server's CPU time over the measured messages divided by messages × N."
         % (m, size, w, reps, started, lb, la))
o.append("")
o.append("| subscribers | server | to last subscriber, ms | to median subscriber, ms | server CPU µs / delivery | of which user + system | server CPU % | generator CPU % | server peak RSS MiB | runs ok |")
o.append("|---:|---|---|---|---|---|---:|---:|---:|---|")
base = {}
for n, name in keys:
    rs = [r for r in runs if r["kind"] == "timed" and r["n"] == n and r["name"] == name]
    if not rs:
        continue
    ok = [r["v"] for r in rs if r["ok"]]
    last = [v["latency_last_us"]["median"] / 1000 for v in ok]
    med = [v["latency_median_us"]["median"] / 1000 for v in ok]
    cpu = [v["server"]["cpu_us_per_message"] for v in ok if v.get("server")]
    user = [v["server_user_us_per_delivery"] for v in ok if v.get("server_user_us_per_delivery") is not None]
    system = [v["server_system_us_per_delivery"] for v in ok if v.get("server_system_us_per_delivery") is not None]
    split = "%.2f + %.2f" % (median(user), median(system)) if user and system else "–"
    spct = [v["server"]["cpu_percent"] for v in ok if v.get("server")]
    gpct = [v["generator_cpu_percent"] for v in ok]
    rss = [v["server"]["peak_rss_bytes"] / 1048576 for v in ok if v.get("server")]
    bad = [r for r in rs if not r["ok"]]
    note = "%d of %d" % (len(ok), len(rs))
    if bad:
        firsts = [(r["v"] or {}).get("first_error") or ("exit %s" % r["code"]) for r in bad]
        note += " (failed: %s)" % "; ".join(firsts)
    o.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        n, name, cell(last, "{:.1f}"), cell(med, "{:.1f}"), cell(cpu, "{:.2f}"), split,
        "%.0f" % median(spct) if spct else "–", "%.0f" % median(gpct) if gpct else "–",
        "%.1f" % max(rss) if rss else "–", note))

st = [r for r in runs if r["kind"] == "strace"]
if st:
    o.append("")
    o.append("System calls of the server over the measured messages (`strace -c -f -p PID`, separate runs of %s messages, "
             "all threads), per delivered message and, by call, per published message:" % sm)
    o.append("")
    o.append("| subscribers | server | syscalls / delivery | most frequent, calls per published message | runs ok |")
    o.append("|---:|---|---:|---|---|")
    for n, name in keys:
        rs = [r for r in st if r["n"] == n and r["name"] == name]
        if not rs:
            continue
        ok = [r["v"] for r in rs if r["ok"] and r["v"].get("syscalls")]
        per = [v["syscalls"]["per_delivery"] for v in ok]
        top = ""
        if ok:
            k = max(ok[0]["messages_complete"], 1)
            top = ", ".join("%s %s" % (c["name"], ("%.1f" % (c["calls"] / k)).removesuffix(".0"))
                            for c in ok[0]["syscalls"]["top"][:4])
        o.append("| %d | %s | %s | %s | %d of %d |" % (n, name, cell(per, "{:.3f}"), top or "–", len(ok), len(rs)))

text = "\n".join(o) + "\n"
open(out, "w").write(text)
print(text)
EOF
echo "runs, logs and table: $OUT" >&2
exit $failed
