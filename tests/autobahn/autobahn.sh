#!/usr/bin/env bash
# Run the Autobahn TestSuite server cases (groups 1-7, 9, 10, and 12-13 for
# permessage-deflate; there is no group 8, and group 11 is not in the suite)
# against the zerows echo server, using kosoku (pip install kosoku==0.1.0), a
# native runner of the Autobahn case files.
#
# Usage: tests/autobahn/autobahn.sh [options]
#   --summary FILE    also write the markdown summary to FILE (e.g. docs/autobahn.md)
#   --outdir DIR      report directory (default target/autobahn; one subdir per group)
#   --port N          first port to try on 127.0.0.1 (default 9301; the next free one is used)
#   --groups "1 2 6"  case groups to run (default "1 2 3 4 5 6 7 9 10 12 13"; 9 = performance)
#   --no-perf         skip group 9
#   --case GLOB       run just these case ids/globs in one kosoku run (repeatable), e.g. --case '6.4.*'
#   -h, --help
#
# Environment:
#   ZEROWS_BIN        server binary (default target/release/zerows); started as
#                     "$ZEROWS_BIN --listen 127.0.0.1:PORT"
#   SERVER_CMD        overrides ZEROWS_BIN with a whole command (split on spaces);
#                     "--listen 127.0.0.1:PORT" is appended. For trying the script
#                     against another server.
#   AUTOBAHN_SUMMARY, AUTOBAHN_OUTDIR, AUTOBAHN_PORT, AUTOBAHN_GROUPS: as the options
#   AUTOBAHN_PARALLELISM (2)      kosoku -p for groups other than 9
#   AUTOBAHN_PERF_PARALLELISM (1) kosoku -p for group 9 (1 keeps its timings meaningful)
#   AUTOBAHN_GROUP_TIMEOUT (300)  seconds allowed per group (groups 9 and 12: AUTOBAHN_PERF_TIMEOUT, 1200)
#   AUTOBAHN_TIMEOUT (1800)       overall budget in seconds; groups not started by then are MISSING
#   AUTOBAHN_STARTUP_TIMEOUT (30) seconds to wait for the server to accept connections
#
# Exit status: 0 only if every case is OK or INFORMATIONAL (behaviour and close
# behaviour); non-zero on any FAILED / NON-STRICT / UNIMPLEMENTED / ERROR / wrong
# close code / missing case / timeout / server crash.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

SUMMARY=${AUTOBAHN_SUMMARY:-}
OUTDIR=${AUTOBAHN_OUTDIR:-target/autobahn}
PORT=${AUTOBAHN_PORT:-9301}
GROUPS_TO_RUN=${AUTOBAHN_GROUPS:-"1 2 3 4 5 6 7 9 10 12 13"}
PARALLELISM=${AUTOBAHN_PARALLELISM:-2}
PERF_PARALLELISM=${AUTOBAHN_PERF_PARALLELISM:-1}
GROUP_TIMEOUT=${AUTOBAHN_GROUP_TIMEOUT:-300}
PERF_TIMEOUT=${AUTOBAHN_PERF_TIMEOUT:-1200}
TOTAL_TIMEOUT=${AUTOBAHN_TIMEOUT:-1800}
STARTUP_TIMEOUT=${AUTOBAHN_STARTUP_TIMEOUT:-30}
ZEROWS_BIN=${ZEROWS_BIN:-target/release/zerows}
SERVER_CMD=${SERVER_CMD:-}
NO_PERF=0
CASES=()

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --summary) SUMMARY=$2; shift 2 ;;
        --summary=*) SUMMARY=${1#*=}; shift ;;
        --outdir) OUTDIR=$2; shift 2 ;;
        --outdir=*) OUTDIR=${1#*=}; shift ;;
        --port) PORT=$2; shift 2 ;;
        --port=*) PORT=${1#*=}; shift ;;
        --groups) GROUPS_TO_RUN=$2; shift 2 ;;
        --groups=*) GROUPS_TO_RUN=${1#*=}; shift ;;
        --no-perf) NO_PERF=1; shift ;;
        --case) CASES+=("$2"); shift 2 ;;
        --case=*) CASES+=("${1#*=}"); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "autobahn.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

log() { echo "[autobahn $(date -u +%H:%M:%S)] $*"; }
die() { echo "autobahn.sh: error: $*" >&2; exit 2; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# ---------------------------------------------------------------- preflight
command -v python3 >/dev/null || die "python3 not found"
command -v timeout >/dev/null || die "timeout (coreutils) not found"
command -v setsid >/dev/null || die "setsid (util-linux) not found"
KOSOKU=${KOSOKU:-$(command -v kosoku || true)}
if [ -z "$KOSOKU" ]; then
    scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
    [ -x "$scripts_dir/kosoku" ] && KOSOKU="$scripts_dir/kosoku"
fi
[ -n "$KOSOKU" ] || die "kosoku not found; install it with: python3 -m pip install kosoku==0.1.0"
KOSOKU_VERSION=$(python3 -c 'import importlib.metadata as m; print(m.version("kosoku"))' 2>/dev/null || echo "?")
[ "$KOSOKU_VERSION" = "0.1.0" ] || log "warning: kosoku $KOSOKU_VERSION installed; this script was validated with 0.1.0"

if [ -n "$SERVER_CMD" ]; then
    read -r -a SERVER_ARGV <<< "$SERVER_CMD"
else
    [ -x "$ZEROWS_BIN" ] || die "server binary $ZEROWS_BIN not found or not executable (run: cargo build --release)"
    SERVER_ARGV=("$ZEROWS_BIN")
fi

port_free() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}
first_port=$PORT
until port_free "$PORT"; do
    PORT=$((PORT + 1))
    [ "$PORT" -lt $((first_port + 100)) ] || die "no free port in $first_port..$PORT on 127.0.0.1"
done
ADDR="127.0.0.1:$PORT"

mkdir -p "$OUTDIR"
# Remove only what a previous run of this script wrote (OUTDIR may be a shared dir).
rm -rf "$OUTDIR"/group-* "$OUTDIR"/custom "$OUTDIR"/custom.log "$OUTDIR"/server.log
SERVER_LOG="$OUTDIR/server.log"
: > "$SERVER_LOG"

# ---------------------------------------------------------------- server control
SERVER_PID=""
NOTES=()   # problems: each fails the run
INFOS=()   # informational lines for the summary

start_server() {
    log "starting server: ${SERVER_ARGV[*]} --listen $ADDR (log: $SERVER_LOG)"
    # setsid: own process group, so the whole server (and any children) can be killed.
    setsid "${SERVER_ARGV[@]}" --listen "$ADDR" </dev/null >>"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    local deadline=$(( $(now_ms) + STARTUP_TIMEOUT * 1000 ))
    until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            local st=0; wait "$SERVER_PID" || st=$?
            SERVER_PID=""
            echo "---- server log (last 40 lines) ----"; tail -n 40 "$SERVER_LOG" || true
            die "server exited with status $st before accepting connections on $ADDR"
        fi
        if [ "$(now_ms)" -ge "$deadline" ]; then
            echo "---- server log (last 40 lines) ----"; tail -n 40 "$SERVER_LOG" || true
            die "server did not accept connections on $ADDR within ${STARTUP_TIMEOUT}s"
        fi
        sleep 0.1
    done
    kill -0 "$SERVER_PID" 2>/dev/null || die "server exited right after startup (port $PORT taken by another process?)"
    log "server pid $SERVER_PID accepting on $ADDR"
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    local pid=$SERVER_PID
    SERVER_PID=""
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "server did not exit on SIGTERM within 5s; sending SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# The server is running iff SERVER_PID is set and alive; a crash is recorded.
check_server() {
    local when=$1
    if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
        local st=0; wait "$SERVER_PID" || st=$?
        SERVER_PID=""
        NOTES+=("server process exited unexpectedly (status $st) $when; see $SERVER_LOG")
        log "ERROR: server exited unexpectedly (status $st) $when"
        echo "---- server log (last 40 lines) ----"; tail -n 40 "$SERVER_LOG" || true
        return 1
    fi
    return 0
}

# shellcheck disable=SC2317  # invoked via trap
cleanup() { stop_server; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- run
log "kosoku $KOSOKU_VERSION ($KOSOKU), server address $ADDR, reports in $OUTDIR"
start_server

RUN_START=$(now_ms)
DEADLINE=$(( RUN_START + TOTAL_TIMEOUT * 1000 ))
REPORT_DIRS=()
EXPECT=()

# run_batch NAME TIMEOUT PARALLELISM GLOB...
run_batch() {
    local name=$1 limit=$2 par=$3; shift 3
    local dir="$OUTDIR/$name" args=() g
    for g in "$@"; do args+=(-i "$g"); EXPECT+=(--expect "$g"); done
    REPORT_DIRS+=("$dir")
    check_server "before $name" || start_server
    local left=$(( (DEADLINE - $(now_ms)) / 1000 ))
    if [ "$left" -le 0 ]; then
        NOTES+=("$name not run: overall budget AUTOBAHN_TIMEOUT=${TOTAL_TIMEOUT}s exhausted")
        log "$name: SKIPPED (overall time budget exhausted)"
        return 0
    fi
    [ "$limit" -le "$left" ] || limit=$left
    log "$name: kosoku ${args[*]} -p $par (timeout ${limit}s)"
    local t0 rc=0
    t0=$(now_ms)
    timeout -k 10 "$limit" "$KOSOKU" -m fuzzingclient "${args[@]}" -p "$par" -o "$dir" "$ADDR" \
        </dev/null >"$dir.log" 2>&1 || rc=$?
    local secs
    secs=$(awk -v ms=$(( $(now_ms) - t0 )) 'BEGIN { printf "%.1f", ms / 1000 }')
    case $rc in
        0) log "$name: done in ${secs}s, kosoku reports all cases passed" ;;
        1) log "$name: done in ${secs}s, kosoku reports failures (details below)" ;;
        124|137)
            NOTES+=("$name: kosoku timed out after ${limit}s; it writes no report then, so its cases are MISSING (a case probably hung: the server ignored a close or stopped answering)")
            log "$name: TIMED OUT after ${limit}s" ;;
        *)
            NOTES+=("$name: kosoku failed with exit status $rc; see $dir.log")
            log "$name: kosoku exited with status $rc"; tail -n 20 "$dir.log" || true ;;
    esac
    if [ ! -f "$dir/index.json" ] && [ "$rc" -le 1 ]; then
        NOTES+=("$name: kosoku wrote no index.json; see $dir.log")
        tail -n 20 "$dir.log" || true
    fi
    INFOS+=("$name ($*): ${secs}s wall, kosoku -p $par")
    check_server "during $name" || true
}

if [ ${#CASES[@]} -gt 0 ]; then
    run_batch custom "$PERF_TIMEOUT" "$PARALLELISM" "${CASES[@]}"
else
    for g in $GROUPS_TO_RUN; do
        case "$g" in
            9) [ "$NO_PERF" = 1 ] || run_batch "group-9" "$PERF_TIMEOUT" "$PERF_PARALLELISM" "9.*" ;;
            *[!0-9]*|"") die "bad group '$g' (expected numbers like '1 2 9')" ;;
            # Group 12 sends 1,000 compressed messages per case, compressed
            # and checked by the Python side: minutes, like group 9.
            12) run_batch "group-12" "$PERF_TIMEOUT" "$PARALLELISM" "12.*" ;;
            *) run_batch "group-$g" "$GROUP_TIMEOUT" "$PARALLELISM" "$g.*" ;;
        esac
    done
fi

[ ${#REPORT_DIRS[@]} -gt 0 ] || die "nothing to run (empty --groups?)"
stop_server
TOTAL_SECS=$(awk -v ms=$(( $(now_ms) - RUN_START )) 'BEGIN { printf "%.1f", ms / 1000 }')
log "all groups finished in ${TOTAL_SECS}s"
INFOS+=("total wall time ${TOTAL_SECS}s; server: ${SERVER_ARGV[*]##*/}; kosoku $KOSOKU_VERSION")

SUMMARY_ARGS=("${EXPECT[@]}")
for n in "${NOTES[@]+"${NOTES[@]}"}"; do SUMMARY_ARGS+=(--note "$n"); done
for n in "${INFOS[@]+"${INFOS[@]}"}"; do SUMMARY_ARGS+=(--info "$n"); done
[ -z "$SUMMARY" ] || SUMMARY_ARGS+=(--markdown "$SUMMARY")

echo
rc=0
python3 tests/autobahn/summary.py "${REPORT_DIRS[@]}" "${SUMMARY_ARGS[@]}" || rc=$?
echo "HTML reports: $OUTDIR/<group>/index.html"
exit "$rc"
