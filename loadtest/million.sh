#!/usr/bin/env bash
# Many idle WebSocket connections at once: S zerows processes share one
# loopback port (--reuse-port), `zerows-loadtest idle --procs P` opens N
# connections from P processes, holds them all with the server's heartbeat
# on, sends one verified echo on each, and closes each with 1000 (the
# server's 1000 verified). Prints time to establish, handshakes/s, server
# RSS and kernel memory per connection, the servers' CPU while holding, and
# the echo round's duration.
#
#   cargo build --release -p zerows -p zerows-loadtest
#   loadtest/million.sh                          # N=1000000
#   N=20000 SERVERS=2 PROCS=2 HOLD=10 loadtest/million.sh
#
# Settings (environment): N (1000000), SERVERS (N/16000 rounded up: the
# kernel's reuse-port hash spreads connections unevenly, so each server is
# kept well under the 20,000 files one process may open), PROCS (N/18000
# rounded up), HOLD (90 s), PING (server heartbeat interval, 2/3 of HOLD, at
# least 1 s: every connection is pinged during the hold; at 1,000,000 on 2
# cores a ping every 20 s takes all the CPU, see docs/benchmarks.md), PONG_TIMEOUT (PING, at least 5 s: zerows checks a pinged
# connection again only when its pong deadline passes, so this also paces
# the pings after the first), PORT (9700), MAX_PER_SERVER (19000, each server's
# --max-connections), LISTEN (reuse-port: one port for every server;
# ports: server i on PORT+i and the generator's --ports, for a zerows
# without --reuse-port; auto: reuse-port when the binary has it),
# ECHO_ONCE (1), SYSCTL (1: raise the sysctls below when allowed; 0: leave
# them), BIN (target/release), OUT (target/million-DATE).
#
# Exit status: that of the generator (1 if any connection failed, any echo
# or close was wrong, or fewer than N were held at once), 2 for a setup
# problem.
#
# Invariants: loopback only; every process started here is stopped by its
# pid on exit (trap: SIGTERM, then SIGKILL after 5 s); every wait is
# bounded (server start 10 s each, the generator by its own deadlines and
# `timeout`); sysctls are only ever raised, and each change is printed.

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
N=${N:-1000000}
SERVERS=${SERVERS:-$(((N + 15999) / 16000))}
PROCS=${PROCS:-$(((N + 17999) / 18000))}
HOLD=${HOLD:-90}
PING=${PING:-$(((HOLD * 2 / 3) > 1 ? HOLD * 2 / 3 : 1))}
PONG_TIMEOUT=${PONG_TIMEOUT:-$((PING > 5 ? PING : 5))}
PORT=${PORT:-9700}
MAX_PER_SERVER=${MAX_PER_SERVER:-19000}
LISTEN=${LISTEN:-reuse-port}
ECHO_ONCE=${ECHO_ONCE:-1}
SYSCTL=${SYSCTL:-1}
BIN=${BIN:-$root/target/release}
OUT=${OUT:-$root/target/million-$(date -u +%Y%m%d-%H%M%S)}

die() { echo "million.sh: $*" >&2; exit 2; }
for v in N SERVERS PROCS HOLD PING PONG_TIMEOUT PORT MAX_PER_SERVER; do
    if ! [[ ${!v} =~ ^[0-9]+$ ]] || [ "${!v}" -lt 1 ]; then die "$v=${!v}: must be a positive integer"; fi
done
ZEROWS=$BIN/zerows
GEN=$BIN/zerows-loadtest
for b in "$ZEROWS" "$GEN"; do
    [ -x "$b" ] || die "need $b: cargo build --release -p zerows -p zerows-loadtest"
done
command -v python3 >/dev/null || die "python3 is needed for the summary"

has_reuse_port() { "$ZEROWS" --help 2>/dev/null | grep -q -- --reuse-port; }
case $LISTEN in
    auto) if has_reuse_port; then LISTEN=reuse-port; else LISTEN=ports; fi ;;
    reuse-port) has_reuse_port || die "$ZEROWS has no --reuse-port option (build a zerows that has it, or run with LISTEN=ports: one port per server)" ;;
    ports) ;;
    *) die "LISTEN=$LISTEN: reuse-port, ports or auto" ;;
esac
[ $((N / SERVERS)) -lt "$MAX_PER_SERVER" ] || die "$N connections over $SERVERS servers exceed MAX_PER_SERVER=$MAX_PER_SERVER each; raise SERVERS"
[ $((PORT + SERVERS)) -le 65536 ] || die "PORT=$PORT + SERVERS=$SERVERS passes port 65535"

mkdir -p "$OUT"
echo "million.sh: N=$N SERVERS=$SERVERS PROCS=$PROCS HOLD=${HOLD}s PING=${PING}s PORT=$PORT LISTEN=$LISTEN; output in $OUT"

# ---- limits ------------------------------------------------------------
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ]; then
    ulimit -n "$hard"
fi
echo "open files: soft $(ulimit -n), hard $hard (per process)"
need=$((MAX_PER_SERVER + 256))
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    die "the open-file hard limit $hard is below the $need a server at MAX_PER_SERVER=$MAX_PER_SERVER needs"
fi

# Raise sysctl $1 to $2 (one number, or space-separated numbers compared
# field by field); never lowers. Prints what changed or could not.
raise() {
    local key=$1 want=$2 file old new i
    local -a o w up
    file=/proc/sys/${key//.//}
    [ -r "$file" ] || { echo "sysctl $key: not present"; return 0; }
    old=$(tr -s '[:space:]' ' ' <"$file" | sed 's/ $//')
    read -r -a o <<<"$old"
    read -r -a w <<<"$want"
    up=()
    for i in "${!w[@]}"; do
        if [ "${o[$i]:-0}" -ge "${w[$i]}" ]; then up+=("${o[$i]}"); else up+=("${w[$i]}"); fi
    done
    new=${up[*]}
    [ "$new" = "$old" ] && { echo "sysctl $key = $old (enough)"; return 0; }
    [ "$SYSCTL" = 1 ] || { echo "sysctl $key = $old; left as is (SYSCTL=0; $new wanted)"; return 0; }
    if echo "$new" >"$file" 2>/dev/null; then
        echo "sysctl $key: $old -> $new"
    else
        echo "sysctl $key = $old; could not raise it to $new (not root, or not in this namespace)"
    fi
}
raise net.core.somaxconn 65535
raise net.ipv4.tcp_max_syn_backlog 65535
raise net.netfilter.nf_conntrack_max $((2 * N + 65536))
# Pages: idle connections hold little buffer memory, but the echo round
# and the closes touch them all at once.
raise net.ipv4.tcp_mem "$((N / 2)) $N $((2 * N))"
raise fs.file-max $((4 * N + 65536))

cat /proc/meminfo >"$OUT/meminfo.before"
cat /proc/net/sockstat >"$OUT/sockstat.before"

# ---- servers -------------------------------------------------------------
pids=()
# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

server_args=(--max-connections "$MAX_PER_SERVER" --ping-interval "$PING" --pong-timeout "$PONG_TIMEOUT"
    --idle-timeout 0 --handshake-timeout 60)
for i in $(seq 0 $((SERVERS - 1))); do
    if [ "$LISTEN" = reuse-port ]; then
        port=$PORT
        extra=(--reuse-port)
    else
        port=$((PORT + i))
        extra=()
    fi
    log=$OUT/server-$i.log
    : >"$log"
    "$ZEROWS" --listen "127.0.0.1:$port" "${extra[@]}" "${server_args[@]}" >"$log" 2>&1 &
    pids+=($!)
done
for i in "${!pids[@]}"; do
    for _ in $(seq 100); do
        grep -q "listening on" "$OUT/server-$i.log" && break
        kill -0 "${pids[$i]}" 2>/dev/null || { tail -5 "$OUT/server-$i.log" >&2; die "server $i exited at startup"; }
        sleep 0.1
    done
    grep -q "listening on" "$OUT/server-$i.log" || die "server $i did not listen within 10 s"
done
echo "servers: ${pids[*]}"

# ---- the run ---------------------------------------------------------------
gen_args=(idle "ws://127.0.0.1:$PORT/" -c "$N" --procs "$PROCS" --hold "$HOLD"
    --connect-timeout 60 --echo-timeout 120 --json "$OUT/idle.json")
[ "$LISTEN" = ports ] && gen_args+=(--ports "$SERVERS")
[ "$ECHO_ONCE" = 1 ] && gen_args+=(--echo-once)
for p in "${pids[@]}"; do gen_args+=(--pid "$p"); done
# The generator's own deadlines end it; this is the backstop.
limit=$((600 + N / 100 + 2 * HOLD))
echo "+ zerows-loadtest ${gen_args[*]}"
start=$SECONDS
rc=0
timeout -k 10 "$limit" "$GEN" "${gen_args[@]}" 2>&1 | tee "$OUT/idle.txt" || rc=${PIPESTATUS[0]}
echo "generator exit status $rc after $((SECONDS - start)) s"

cat /proc/meminfo >"$OUT/meminfo.after"
cat /proc/net/sockstat >"$OUT/sockstat.after"
for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null || { echo "server $i (pid ${pids[$i]}) died during the run" >&2; [ "$rc" = 0 ] && rc=1; }
done

[ -f "$OUT/idle.json" ] || { echo "no summary written" >&2; exit $((rc == 0 ? 2 : rc)); }
python3 - "$OUT/idle.json" "$SERVERS" <<'EOF' | tee "$OUT/summary.md"
import json, sys
d = json.load(open(sys.argv[1]))
s = d["samples"]
def f(v, fmt):
    return "n/a" if v is None else fmt.format(v)
rows = [
    ("connections asked / made / held at once",
     f'{d["connections_requested"]} / {d["connections_made"]} / {d["held_at_once"]}'),
    ("server processes / generator processes", f'{sys.argv[2]} / {d["procs"]}'),
    ("time to establish all", f(d["establish_seconds"], "{:.2f} s")),
    ("handshakes/s", f(d["handshakes_per_sec"], "{:,.0f}")),
    ("handshake latency p50 / p99", f'{d["handshake_latency_us"]["p50"]/1000:.1f} / {d["handshake_latency_us"]["p99"]/1000:.1f} ms'),
    ("hold", f'{d["hold_seconds"]:.0f} s, {d["server_pings"]} server pings answered'),
    ("server RSS at 0 connections (sum)", f(s["server_rss_before"] and s["server_rss_before"] / 2**20, "{:.1f} MiB")),
    ("server RSS per connection", f(d["server_bytes_per_connection"], "{:,.0f} B")),
    ("kernel slab per connection (both ends)", f(d["kernel_slab_bytes_per_connection"], "{:,.0f} B")),
    ("kernel TCP buffers per connection", f(d["kernel_tcp_mem_bytes_per_connection"], "{:,.0f} B")),
    ("server CPU while idle (heartbeat on)", f(d["server_cpu_hold_percent"], "{:.2f}% of a core")),
    ("echo round (one message per connection)",
     f(d["echo_round_seconds"], "{:.3f} s") + f', {d["echoed"]} verified'),
    ("echo latency p50 / p99", f'{d["echo_latency_us"]["p50"]/1000:.1f} / {d["echo_latency_us"]["p99"]/1000:.1f} ms'),
    ("closes answered with 1000", str(d["closed_clean"])),
    ("errors", str(d["error_total"]) + ("" if not d["first_error"] else f' (first: {d["first_error"]})')),
    ("sockstat TCP before", s["kernel_before"]["sockstat_tcp"] or "n/a"),
    ("sockstat TCP held", s["kernel_held"]["sockstat_tcp"] or "n/a"),
]
print("| measure | value |")
print("| --- | --- |")
for k, v in rows:
    print(f"| {k} | {v} |")
EOF
exit "$rc"
