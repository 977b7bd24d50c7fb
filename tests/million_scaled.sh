#!/usr/bin/env bash
# The million-connection run (loadtest/million.sh) scaled down for CI:
# 20,000 idle connections over 2 zerows processes and 2 generator
# processes, held 10 s with the server's heartbeat on (pings every 3 s),
# one verified echo on each, every close answered with 1000. Fails unless
# all 20,000 were held at once, every server ping was answered (each
# connection pinged at least once), every echo came back intact and every
# close was clean. Sysctls are left as they are (SYSCTL=0); the port is
# shared with --reuse-port when the binary has it, else one port per
# server. Loopback only; bounded by million.sh's and the generator's limits.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${N:-20000}
OUT=${OUT:-target/million-scaled}
BIN=${BIN:-$PWD/target/release}
# Two consecutive free ports (the second is used only without --reuse-port).
PORT=$(python3 - <<'PY'
import socket
for base in range(20000, 60000, 7):
    try:
        socks = [socket.socket() for _ in range(2)]
        for i, s in enumerate(socks):
            s.bind(("127.0.0.1", base + i))
        print(base)
        break
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
PY
)
[ -n "$PORT" ] || { echo "million_scaled.sh: no two free consecutive ports" >&2; exit 2; }
rm -rf "$OUT"
N=$N SERVERS=2 PROCS=2 HOLD=10 PING=3 LISTEN=auto SYSCTL=0 PORT=$PORT BIN=$BIN OUT=$OUT \
    bash loadtest/million.sh
python3 - "$OUT/idle.json" "$N" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
checks = {
    "no errors": d["error_total"] == 0,
    "all made": d["connections_made"] == n,
    "all held at once": d["held_at_once"] == n,
    "every connection answered the heartbeat": d["server_pings"] >= n,
    "every echo verified": d["echoed"] == n,
    "every close answered with 1000": d["closed_clean"] == n,
}
bad = [k for k, ok in checks.items() if not ok]
if bad:
    print("million_scaled.sh: FAILED:", ", ".join(bad), file=sys.stderr)
    sys.exit(1)
print(f"million_scaled.sh: {n} held at once, {d['echoed']} echoes and {d['closed_clean']} closes verified, "
      f"{d['handshakes_per_sec']:.0f} handshakes/s, echo round {d['echo_round_seconds']:.2f} s")
PY
