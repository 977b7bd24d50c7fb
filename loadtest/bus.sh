#!/usr/bin/env bash
# Topics across instances: zerows' chat example (examples/chat.rs, 1 loop)
# three times behind one Redis (--bus), against one instance alone,
# measured by `zerows-loadtest fanout`.
#
# Two kinds of run, interleaved (bus single bus single …) for REPS
# repetitions:
#   bus     redis-server and three chat instances with --bus, all pinned to
#           CPU 0; fanout opens 3 × SUBSCRIBERS_PER_INSTANCE connections to
#           one room, round-robin over the three instances (--also), the
#           publisher (connection 0) on the first, and is given the three
#           pids, so each instance's CPU is divided by the deliveries to its
#           own subscribers.
#   single  one chat instance without --bus, pinned to CPU 0, with
#           SUBSCRIBERS_PER_INSTANCE subscribers: the local-only baseline.
# The generator is pinned to CPU 1. Every run starts its servers fresh on
# new ports and kills them after. The generator verifies every delivery
# (each subscriber gets each message exactly once, in order, intact); a run
# with any error fails the script (exit status 1).
#
#   cargo build --release -p zerows-loadtest && cargo build --release --example chat
#   loadtest/bus.sh
#   SUBSCRIBERS_PER_INSTANCE=100 MESSAGES=50 REPS=1 loadtest/bus.sh
#
# Settings (environment): SUBSCRIBERS_PER_INSTANCE (1000), MESSAGES (200),
# WARMUP (5), SIZE (32), REPS (3), TIMEOUT (30: seconds a message may take
# to reach every subscriber), PORT (first port tried, 9560), OUT (where the
# JSON of every run and the table go; default target/bus-DATE), BIN
# (target/release), REDIS (redis-server).
#
# Publishes per second through the bus are measured by benches/bus.rs
# (`cargo bench --bench bus -- MESSAGES RATE`), not here: fanout keeps one
# message in flight, so its rate is only the inverse of its latency.
#
# Invariants: only loopback addresses are used (every server binds
# 127.0.0.1, Redis included, with persistence off); every process started
# here is stopped by its own pid (SIGTERM, then SIGKILL after 3 s); every
# wait is bounded (a server's start 10 s, a generator run GEN_LIMIT
# seconds); the generator and each server stay below the open-file limit
# (checked first).

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
SUBSCRIBERS_PER_INSTANCE=${SUBSCRIBERS_PER_INSTANCE:-1000}
MESSAGES=${MESSAGES:-200}
WARMUP=${WARMUP:-5}
SIZE=${SIZE:-32}
REPS=${REPS:-3}
TIMEOUT=${TIMEOUT:-30}
PORT=${PORT:-9560}
GEN_LIMIT=${GEN_LIMIT:-300}
BIN=${BIN:-$root/target/release}
REDIS=${REDIS:-redis-server}
OUT=${OUT:-$root/target/bus-$(date -u +%Y%m%d-%H%M%S)}
INSTANCES=3

die() { echo "bus.sh: $*" >&2; exit 2; }

for b in "$BIN/zerows-loadtest" "$BIN/examples/chat"; do
    [ -x "$b" ] || die "$b not found: cargo build --release -p zerows-loadtest && cargo build --release --example chat"
done
command -v "$REDIS" >/dev/null || die "$REDIS not found (REDIS=/path/to/redis-server)"
command -v redis-cli >/dev/null || die "redis-cli is needed to see that Redis is up"
command -v taskset >/dev/null || die "taskset is needed (util-linux)"
command -v python3 >/dev/null || die "python3 is needed for the table"
for v in SUBSCRIBERS_PER_INSTANCE MESSAGES REPS; do
    [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] || die "bad $v ${!v}"
done
S=$SUBSCRIBERS_PER_INSTANCE

# Descriptors: the generator holds every client socket, each server its own
# share; each needs that plus a few.
need=$((INSTANCES * S + 64))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    ulimit -n "$need" 2>/dev/null || die "open-file limit $(ulimit -n) (hard $(ulimit -Hn)) is below the $need needed for $((INSTANCES * S)) subscribers"
fi

# The binaries are copied so that a rebuild during the runs cannot mix builds.
mkdir -p "$OUT/bin" "$OUT/runs"
cp "$BIN/zerows-loadtest" "$BIN/examples/chat" "$OUT/bin/"
GEN=$OUT/bin/zerows-loadtest
manifest=$OUT/runs.tsv
: >"$manifest"

port=$PORT
# Every process started for the current run, in the order started.
pids=()

# A port nobody listens on, from $port up.
next_port() {
    local tries=0
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((port + 1))
        tries=$((tries + 1))
        [ $tries -lt 200 ] || die "no free port from $PORT"
    done
}

stop_one() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Stop the run's processes, the last started (the chat instances) first.
stop_all() {
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_one "${pids[i]}"; done
    pids=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# start_redis LOG: Redis on a new $port, pinned to CPU 0, without
# persistence; waits (10 s at most) until it answers PING.
start_redis() {
    local log=$1
    next_port
    taskset -c 0 "$REDIS" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$OUT/runs" >"$log" 2>&1 &
    pids+=($!)
    redis_port=$port
    port=$((port + 1))
    for _ in $(seq 100); do
        if [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ]; then
            return 0
        fi
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

# start_chat LOG [BUS_URL]: a chat instance on a new $port, pinned to CPU 0;
# waits (10 s at most) until it says it listens. Sets chat_port, chat_pid.
start_chat() {
    local log=$1
    shift
    next_port
    taskset -c 0 "$OUT/bin/chat" "127.0.0.1:$port" 1 ${1:+--bus "$1"} >"$log" 2>&1 &
    chat_pid=$!
    pids+=("$chat_pid")
    chat_port=$port
    port=$((port + 1))
    for _ in $(seq 100); do
        if grep -q "chat on" "$log" 2>/dev/null; then return 0; fi
        kill -0 "$chat_pid" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

failed=0
# run KIND REP: start the servers of KIND, run the generator, stop them.
run() {
    local kind=$1 rep=$2
    local tag="$kind-$rep"
    local json=$OUT/runs/$tag.json glog=$OUT/runs/$tag.gen.log
    rm -f "$json"
    local urls=() spids=() up=1 k
    if [ "$kind" = bus ]; then
        start_redis "$OUT/runs/$tag.redis.log" || up=0
        for k in $(seq "$INSTANCES"); do
            [ $up = 1 ] || break
            start_chat "$OUT/runs/$tag.chat$k.log" "redis://127.0.0.1:$redis_port" || up=0
            urls+=("ws://127.0.0.1:$chat_port/?room=bench")
            spids+=("$chat_pid")
        done
    else
        start_chat "$OUT/runs/$tag.chat1.log" || up=0
        urls+=("ws://127.0.0.1:$chat_port/?room=bench")
        spids+=("$chat_pid")
    fi
    local code=0
    if [ $up = 1 ]; then
        local extra=()
        for k in "${!urls[@]}"; do
            [ "$k" = 0 ] || extra+=(--also "${urls[k]}")
            extra+=(--server-pid "${spids[k]}")
        done
        timeout "$GEN_LIMIT" taskset -c 1 "$GEN" fanout "${urls[0]}" "${extra[@]}" \
            --subscribers $((S * ${#urls[@]})) --messages "$MESSAGES" --warmup "$WARMUP" \
            --size "$SIZE" --timeout "$TIMEOUT" --json "$json" --quiet 2>"$glog" || code=$?
    else
        echo "a server did not start (see $OUT/runs/$tag.*.log)" >"$glog"
        code=3
    fi
    stop_all
    printf '%s\t%s\t%s\t%s\n' "$kind" "$rep" "$code" "$json" >>"$manifest"
    local what
    what=$(python3 - "$json" <<'EOF' 2>/dev/null || true
import json, sys
v = json.load(open(sys.argv[1]))
t = v["targets"]
lat = ", ".join("%.0f" % x["latency_last_us"]["median"] for x in t)
cpu = ", ".join("%.2f" % (x.get("server") or {}).get("cpu_us_per_message", 0) for x in t)
print("to last per instance %s µs (median), server CPU %s µs/delivery, %d errors" % (lat, cpu, v["error_total"]))
EOF
)
    echo "[$kind] #$rep: exit $code${what:+, $what}" >&2
    if [ "$code" != 0 ]; then
        failed=1
        sed 's/^/    /' "$glog" | tail -5 >&2
    fi
    sleep 1
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
for rep in $(seq "$REPS"); do
    for kind in bus single; do
        run "$kind" "$rep"
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$manifest" "$OUT/table.md" "$started" "$load_before" "$load_after" \
    "$S" "$MESSAGES" "$WARMUP" "$SIZE" "$REPS" <<'EOF'
import json, sys

manifest, out, started, lb, la, s, m, w, size, reps = sys.argv[1:]
runs = []
for line in open(manifest):
    kind, rep, code, path = line.rstrip("\n").split("\t")
    try:
        v = json.load(open(path))
    except (OSError, ValueError):
        v = None
    runs.append(dict(kind=kind, ok=code == "0" and v is not None, v=v, code=code))

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

def cpu(t):
    return t["server"]["cpu_us_per_message"] if t.get("server") else None

def split(ts):
    u = [t["server_user_us_per_delivery"] for t in ts if t.get("server_user_us_per_delivery") is not None]
    y = [t["server_system_us_per_delivery"] for t in ts if t.get("server_system_us_per_delivery") is not None]
    return (sum(u) / len(u), sum(y) / len(y)) if u and y else None

o = []
o.append("Topics across instances on loopback: %s subscribers per chat instance (examples/chat.rs, 1 loop) in one "
         "room; bus = three instances behind one redis-server (--bus), subscribers round-robin over them, the "
         "publisher on the first; single = one instance without --bus. %s measured messages of %s B text "
         "(+%s warm-up) per run, one at a time; %s run(s) per kind, interleaved, servers started fresh and "
         "pinned to CPU 0 (Redis too), generator pinned to CPU 1. Started %s; load average before / after: "
         "%s / %s." % (s, m, size, w, reps, started, lb, la))
o.append("")
o.append("Each cell: the median over the runs, min–max of the runs in brackets. Latency: from publication to the "
         "last subscriber of an instance, the run's median (p50) and p99 over its messages; local = the "
         "publisher's instance, remote = the slower of the other two. CPU: an instance's CPU time over the "
         "measured messages divided by the deliveries to its own subscribers (user + system: the split, "
         "medians); remote = the mean of the other two; all = the instances' CPU together over every delivery "
         "(Redis not counted).")
o.append("")
o.append("| run | subscribers | local p50 µs | local p99 µs | remote p50 µs | remote p99 µs "
         "| CPU µs/delivery, local | user + system | remote | user + system | all | runs ok |")
o.append("|---|---:|---|---|---|---|---|---|---|---|---|---|")
for kind in ("bus", "single"):
    rs = [r for r in runs if r["kind"] == kind]
    if not rs:
        continue
    ok = [r["v"] for r in rs if r["ok"]]
    loc = [v["targets"][0] for v in ok]
    rem = [v["targets"][1:] for v in ok if len(v["targets"]) > 1]
    lp50 = [t["latency_last_us"]["median"] for t in loc]
    lp99 = [t["latency_last_us"]["p99"] for t in loc]
    rp50 = [max(t["latency_last_us"]["median"] for t in ts) for ts in rem]
    rp99 = [max(t["latency_last_us"]["p99"] for t in ts) for ts in rem]
    lcpu = [cpu(t) for t in loc if cpu(t) is not None]
    rcpu = [sum(cpu(t) for t in ts) / len(ts) for ts in rem if all(cpu(t) is not None for t in ts)]
    acpu = [sum(t["server"]["cpu_seconds"] for t in v["targets"]) * 1e6 / max(v["delivered"], 1)
            for v in ok if all(t.get("server") for t in v["targets"])]
    lsp = [x for x in (split([t]) for t in loc) if x]
    rsp = [x for x in (split(ts) for ts in rem) if x]
    fmt_sp = lambda xs: "%.2f + %.2f" % (median([a for a, _ in xs]), median([b for _, b in xs])) if xs else "–"
    bad = [r for r in rs if not r["ok"]]
    note = "%d of %d" % (len(ok), len(rs))
    if bad:
        firsts = [(r["v"] or {}).get("first_error") or ("exit %s" % r["code"]) for r in bad]
        note += " (failed: %s)" % "; ".join(firsts)
    subs = ok[0]["subscribers"] if ok else "–"
    o.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        kind, subs, cell(lp50, "{:.0f}"), cell(lp99, "{:.0f}"), cell(rp50, "{:.0f}"), cell(rp99, "{:.0f}"),
        cell(lcpu, "{:.2f}"), fmt_sp(lsp), cell(rcpu, "{:.2f}"), fmt_sp(rsp), cell(acpu, "{:.2f}"), note))

text = "\n".join(o) + "\n"
open(out, "w").write(text)
print(text)
EOF
echo "runs, logs and table: $OUT" >&2
exit $failed
