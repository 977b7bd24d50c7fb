#!/usr/bin/env bash
# Run the Autobahn TestSuite client cases (groups 1-7, 9, 10, and 12-13 for
# permessage-deflate, which the driver offers; there is no group 8)
# against the zerows client, using kosoku (pip install kosoku==0.1.0) as the
# fuzzing server and examples/autobahn_client.rs as the client under test.
#
# Each group gets its own kosoku fuzzingserver on a free 127.0.0.1 port. The
# driver asks it for the case count (/getCaseCount), runs every case
# (/runCase?case=N&agent=AGENT: echo each message until the server closes),
# then asks for the reports (/updateReports?agent=AGENT), after which kosoku
# writes its report directory (index.json) and exits.
#
# Usage: tests/autobahn/client.sh [options]
#   --summary FILE    also write the markdown summary to FILE (e.g. docs/autobahn-client.md)
#   --outdir DIR      report directory (default target/autobahn-client; one subdir per group)
#   --port N          first port to try on 127.0.0.1 (default 9401; the next free one is used)
#   --groups "1 2 6"  case groups to run (default "1 2 3 4 5 6 7 9 10 12 13"; 9 = performance)
#   --no-perf         skip group 9
#   --case GLOB       run just these case ids/globs in one kosoku run (repeatable), e.g. --case '6.4.*'
#   -h, --help
#
# Environment:
#   AUTOBAHN_CLIENT_BIN    the driver (default target/release/examples/autobahn_client),
#                          started as "$AUTOBAHN_CLIENT_BIN ws://127.0.0.1:PORT AGENT"
#   AUTOBAHN_AGENT (zerows)            the agent name the reports are filed under
#   AUTOBAHN_CLIENT_SUMMARY, AUTOBAHN_CLIENT_OUTDIR, AUTOBAHN_CLIENT_PORT,
#   AUTOBAHN_CLIENT_GROUPS: as the options
#   AUTOBAHN_GROUP_TIMEOUT (300)  seconds allowed per group (groups 9 and 12: AUTOBAHN_PERF_TIMEOUT, 1200)
#   AUTOBAHN_TIMEOUT (1800)       overall budget in seconds; groups not started by then are MISSING
#   AUTOBAHN_STARTUP_TIMEOUT (30) seconds to wait for kosoku to listen
#   AUTOBAHN_REPORT_TIMEOUT (60)  seconds to wait for kosoku to write its reports and exit
#                                 once the driver is done
#
# Exit status: 0 only if every case is OK or INFORMATIONAL (behaviour and close
# behaviour); non-zero on any FAILED / NON-STRICT / UNIMPLEMENTED / ERROR / wrong
# close code / missing case / timeout / driver failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

SUMMARY=${AUTOBAHN_CLIENT_SUMMARY:-}
OUTDIR=${AUTOBAHN_CLIENT_OUTDIR:-target/autobahn-client}
PORT=${AUTOBAHN_CLIENT_PORT:-9401}
GROUPS_TO_RUN=${AUTOBAHN_CLIENT_GROUPS:-"1 2 3 4 5 6 7 9 10 12 13"}
GROUP_TIMEOUT=${AUTOBAHN_GROUP_TIMEOUT:-300}
PERF_TIMEOUT=${AUTOBAHN_PERF_TIMEOUT:-1200}
TOTAL_TIMEOUT=${AUTOBAHN_TIMEOUT:-1800}
STARTUP_TIMEOUT=${AUTOBAHN_STARTUP_TIMEOUT:-30}
REPORT_TIMEOUT=${AUTOBAHN_REPORT_TIMEOUT:-60}
DRIVER=${AUTOBAHN_CLIENT_BIN:-target/release/examples/autobahn_client}
AGENT=${AUTOBAHN_AGENT:-zerows}
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
        *) echo "client.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

log() { echo "[autobahn-client $(date -u +%H:%M:%S)] $*"; }
die() { echo "client.sh: error: $*" >&2; exit 2; }
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
[ -x "$DRIVER" ] || die "driver $DRIVER not found or not executable (run: cargo build --release --examples)"
case "$AGENT" in
    *[!A-Za-z0-9_.-]*|"") die "agent name '$AGENT' must be letters, digits, '_', '.' or '-'" ;;
esac

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

# The next free port from PORT on; sets ADDR.
pick_port() {
    local first=$PORT
    until port_free "$PORT"; do
        PORT=$((PORT + 1))
        [ "$PORT" -lt $((first + 100)) ] || die "no free port in $first..$PORT on 127.0.0.1"
    done
    ADDR="127.0.0.1:$PORT"
}

mkdir -p "$OUTDIR"
# Remove only what a previous run of this script wrote (OUTDIR may be a shared dir).
rm -rf "$OUTDIR"/group-* "$OUTDIR"/custom "$OUTDIR"/custom.*log

# ---------------------------------------------------------------- kosoku control
KOSOKU_PID=""
NOTES=()   # problems: each fails the run
INFOS=()   # informational lines for the summary

# start_kosoku DIR LIFETIME ARGS...: a fuzzing server on a free port, its log
# in DIR.log, gone after LIFETIME seconds even if this script is killed.
start_kosoku() {
    local dir=$1 life=$2; shift 2
    pick_port
    # setsid: own process group, so kosoku and anything it starts can be killed.
    PYTHONUNBUFFERED=1 setsid timeout -k 5 "$life" "$KOSOKU" -m fuzzingserver "$@" -o "$dir" "$ADDR" \
        </dev/null >"$dir.log" 2>&1 &
    KOSOKU_PID=$!
    # kosoku prints this line once it is bound; probing the port instead
    # would open a connection the fuzzing server counts.
    local deadline=$(( $(now_ms) + STARTUP_TIMEOUT * 1000 ))
    until grep -q "fuzzingserver listening on" "$dir.log" 2>/dev/null; do
        if ! kill -0 "$KOSOKU_PID" 2>/dev/null; then
            local st=0; wait "$KOSOKU_PID" || st=$?
            KOSOKU_PID=""
            tail -n 20 "$dir.log" || true
            NOTES+=("$(basename "$dir"): kosoku exited with status $st before listening on $ADDR; see $dir.log")
            return 1
        fi
        if [ "$(now_ms)" -ge "$deadline" ]; then
            stop_kosoku
            NOTES+=("$(basename "$dir"): kosoku did not listen on $ADDR within ${STARTUP_TIMEOUT}s; see $dir.log")
            return 1
        fi
        sleep 0.1
    done
}

stop_kosoku() {
    [ -n "$KOSOKU_PID" ] || return 0
    local pid=$KOSOKU_PID
    KOSOKU_PID=""
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "kosoku did not exit on SIGTERM within 5s; sending SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# Wait up to SECS for kosoku to exit by itself; its status in KOSOKU_RC
# (124 if it had to be stopped).
wait_kosoku() {
    local secs=$1 pid=$KOSOKU_PID
    local deadline=$(( $(now_ms) + secs * 1000 ))
    while kill -0 "$pid" 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        stop_kosoku
        KOSOKU_RC=124
        return
    fi
    KOSOKU_PID=""
    KOSOKU_RC=0
    wait "$pid" || KOSOKU_RC=$?
}

DRIVER_PID=""
# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    if [ -n "$DRIVER_PID" ]; then
        kill -TERM "$DRIVER_PID" 2>/dev/null || true
        wait "$DRIVER_PID" 2>/dev/null || true
    fi
    stop_kosoku
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- run
log "kosoku $KOSOKU_VERSION ($KOSOKU), driver $DRIVER, agent $AGENT, reports in $OUTDIR"

RUN_START=$(now_ms)
DEADLINE=$(( RUN_START + TOTAL_TIMEOUT * 1000 ))
REPORT_DIRS=()
EXPECT=()

# run_batch NAME TIMEOUT GLOB...
run_batch() {
    local name=$1 limit=$2; shift 2
    local dir="$OUTDIR/$name" args=() g
    for g in "$@"; do args+=(-i "$g"); EXPECT+=(--expect "$g"); done
    REPORT_DIRS+=("$dir")
    local left=$(( (DEADLINE - $(now_ms)) / 1000 ))
    if [ "$left" -le 0 ]; then
        NOTES+=("$name not run: overall budget AUTOBAHN_TIMEOUT=${TOTAL_TIMEOUT}s exhausted")
        log "$name: SKIPPED (overall time budget exhausted)"
        return 0
    fi
    [ "$limit" -le "$left" ] || limit=$left
    local t0
    t0=$(now_ms)
    start_kosoku "$dir" $((STARTUP_TIMEOUT + limit + REPORT_TIMEOUT + 10)) "${args[@]}" \
        || { log "$name: kosoku did not start"; return 0; }
    log "$name: kosoku ${args[*]} on $ADDR; driver (timeout ${limit}s)"
    local rc=0
    # In the background, so that a signal to this script is handled at once
    # (bash defers traps while a foreground command runs).
    timeout -k 10 "$limit" "$DRIVER" "ws://$ADDR" "$AGENT" </dev/null >"$dir.driver.log" 2>&1 &
    DRIVER_PID=$!
    wait "$DRIVER_PID" || rc=$?
    DRIVER_PID=""
    case $rc in
        0) ;;
        124|137)
            NOTES+=("$name: the driver timed out after ${limit}s (a case hung?); see $dir.driver.log")
            log "$name: driver TIMED OUT after ${limit}s"; tail -n 5 "$dir.driver.log" || true ;;
        *)
            NOTES+=("$name: the driver exited with status $rc; see $dir.driver.log")
            log "$name: driver exited with status $rc"; tail -n 10 "$dir.driver.log" || true ;;
    esac
    # After /updateReports kosoku writes the reports and exits; if the driver
    # never got there, it would wait for ever.
    wait_kosoku "$REPORT_TIMEOUT"
    local secs
    secs=$(awk -v ms=$(( $(now_ms) - t0 )) 'BEGIN { printf "%.1f", ms / 1000 }')
    case $KOSOKU_RC in
        0) log "$name: done in ${secs}s, kosoku reports all cases passed" ;;
        1) log "$name: done in ${secs}s, kosoku reports failures (details below)" ;;
        124)
            NOTES+=("$name: kosoku had not written its reports ${REPORT_TIMEOUT}s after the driver ended; its cases are MISSING")
            log "$name: kosoku did not finish; stopped" ;;
        *)
            NOTES+=("$name: kosoku failed with exit status $KOSOKU_RC; see $dir.log")
            log "$name: kosoku exited with status $KOSOKU_RC"; tail -n 20 "$dir.log" || true ;;
    esac
    if [ ! -f "$dir/index.json" ] && [ "$KOSOKU_RC" -le 1 ]; then
        NOTES+=("$name: kosoku wrote no index.json; see $dir.log")
        tail -n 20 "$dir.log" || true
    fi
    INFOS+=("$name ($*): ${secs}s wall")
}

if [ ${#CASES[@]} -gt 0 ]; then
    run_batch custom "$PERF_TIMEOUT" "${CASES[@]}"
else
    for g in $GROUPS_TO_RUN; do
        case "$g" in
            9) [ "$NO_PERF" = 1 ] || run_batch "group-9" "$PERF_TIMEOUT" "9.*" ;;
            *[!0-9]*|"") die "bad group '$g' (expected numbers like '1 2 9')" ;;
            # Group 12: 1,000 compressed messages per case, each inflated
            # and compressed again by the driver (about 4 minutes here).
            12) run_batch "group-12" "$PERF_TIMEOUT" "12.*" ;;
            *) run_batch "group-$g" "$GROUP_TIMEOUT" "$g.*" ;;
        esac
    done
fi

[ ${#REPORT_DIRS[@]} -gt 0 ] || die "nothing to run (empty --groups?)"
TOTAL_SECS=$(awk -v ms=$(( $(now_ms) - RUN_START )) 'BEGIN { printf "%.1f", ms / 1000 }')
log "all groups finished in ${TOTAL_SECS}s"
INFOS+=("total wall time ${TOTAL_SECS}s; client: ${DRIVER##*/}; kosoku $KOSOKU_VERSION")

SUMMARY_ARGS=("${EXPECT[@]}")
for n in "${NOTES[@]+"${NOTES[@]}"}"; do SUMMARY_ARGS+=(--note "$n"); done
for n in "${INFOS[@]+"${INFOS[@]}"}"; do SUMMARY_ARGS+=(--info "$n"); done
[ -z "$SUMMARY" ] || SUMMARY_ARGS+=(--markdown "$SUMMARY")

echo
rc=0
python3 tests/autobahn/summary.py "${REPORT_DIRS[@]}" "${SUMMARY_ARGS[@]}" \
    --title "Autobahn TestSuite (kosoku) client results" \
    --generator "\`tests/autobahn/client.sh\` (kosoku fuzzingserver, examples/autobahn_client.rs)" || rc=$?
echo "HTML reports: $OUTDIR/<group>/index.html; driver logs: $OUTDIR/<group>.driver.log"
exit "$rc"
