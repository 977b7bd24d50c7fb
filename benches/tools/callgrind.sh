#!/usr/bin/env bash
# Instructions per message, zerows against tungstenite, counted by
# callgrind (repeatable, unlike wall-clock time on a shared machine).
#
# Each workload of benches/callgrind.rs runs at two repetition counts; the
# difference of the two totals divided by the difference in messages is the
# cost of one message, with start-up, input building and the handshake
# cancelled out.
#
# Usage: benches/tools/callgrind.sh            (from the repository root)
# Env:   CARGO_TARGET_DIR (default target), OUT (default
#        $CARGO_TARGET_DIR/callgrind)
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
out="${OUT:-$CARGO_TARGET_DIR/callgrind}"
mkdir -p "$out"

# The bench profile (release + debug info), as `cargo bench` builds it.
exe=$(cargo bench --bench callgrind --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "callgrind" and m.get("executable"):
        print(m["executable"])
')
[ -x "$exe" ] || { echo "callgrind bench binary not found" >&2; exit 1; }

# Total instructions of one run: the `summary:` line callgrind writes.
count() { # impl workload reps
    local f="$out/$1.$2.$3.out"
    valgrind --tool=callgrind --callgrind-out-file="$f" "$exe" "$1" "$2" "$3" >/dev/null 2>&1
    awk '/^summary:/ {print $2}' "$f"
}

# workload, low reps, high reps, messages per rep
workloads=(
    "frame16 1000 11000 1"
    "frame125 1000 11000 1"
    "frame1k 1000 11000 1"
    "text32 1 11 1000"
    "binary1k 1 11 1000"
    "fragmented 1 21 100"
    "received32 1 11 1000"
    "json1k 1 11 100"
    "json16k 1 3 100"
)

printf '%-11s %14s %14s %8s\n' workload zerows_Ir/msg tungst_Ir/msg ratio
for w in "${workloads[@]}"; do
    read -r name lo hi per <<<"$w"
    msgs=$(( (hi - lo) * per ))
    declare -A ir=()
    for imp in zerows tungstenite; do
        a=$(count "$imp" "$name" "$lo")
        b=$(count "$imp" "$name" "$hi")
        ir[$imp]=$(python3 -c "print(f'{($b - $a) / $msgs:.1f}')")
    done
    ratio=$(python3 -c "print(f'{${ir[tungstenite]} / ${ir[zerows]}:.2f}')")
    printf '%-11s %14s %14s %7sx\n' "$name" "${ir[zerows]}" "${ir[tungstenite]}" "$ratio"
done

# permessage-deflate: the same JSON-like messages compressed by the client
# (zlib level 6, no context takeover) and echoed as they came, against the
# plain echo (tungstenite has no permessage-deflate).
printf '\n%-11s %14s %14s %8s\n' size plain_Ir/msg deflate_Ir/msg ratio
for size in 1k 16k; do
    hi=11
    [ "$size" = 16k ] && hi=3
    msgs=$(( (hi - 1) * 100 ))
    p=$(( $(count zerows "json$size" "$hi") - $(count zerows "json$size" 1) ))
    d=$(( $(count zerows "deflate$size" "$hi") - $(count zerows "deflate$size" 1) ))
    python3 -c "print(f'{\"$size\":<11} {$p / $msgs:14.1f} {$d / $msgs:14.1f} {$d / $p:7.2f}x')"
done
