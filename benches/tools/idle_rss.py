#!/usr/bin/env python3
"""Resident memory of the real server per idle WebSocket connection.

Starts the zerows binary on a loopback port, opens and upgrades idle
connections from this process in steps, and reads the server's VmRSS from
/proc after each checkpoint. The growth from the baseline (after one
warm-up connection has come and gone) divided by the connections open is
the RSS per idle connection.

Usage: benches/tools/idle_rss.py [BINARY] [CHECKPOINT ...]
       (defaults: target/release/zerows 10000 19000)

Bounded: the whole run gives up after 120 s. Loopback only. The process
fd limit must cover the largest checkpoint plus a few (this script and the
server each hold one socket per connection).
"""

import os
import resource
import socket
import subprocess
import sys
import time

LIMIT_S = 120
PORT = 9187
REQUEST = (
    b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def upgrade(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("time limit reached")
    s = socket.create_connection(("127.0.0.1", PORT), timeout=left)
    s.sendall(REQUEST)
    head = b""
    # The 101 head is one short write; the bound stops a runaway answer.
    while not head.endswith(b"\r\n\r\n") and len(head) < 1024:
        chunk = s.recv(1024)
        if not chunk:
            raise ConnectionError("server closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101 "):
        raise ConnectionError(f"not upgraded: {head[:40]!r}")
    return s


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/zerows"
    checkpoints = [int(a) for a in sys.argv[2:]] or [10_000, 19_000]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < max(checkpoints) + 64:
        sys.exit(f"fd limit {hard} too low for {max(checkpoints)} connections")

    deadline = time.monotonic() + LIMIT_S
    server = subprocess.Popen(
        [binary, "--listen", f"127.0.0.1:{PORT}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Wait for the listener, then warm up with one connection.
        while True:
            try:
                upgrade(deadline).close()
                break
            except (ConnectionRefusedError, OSError):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)
        time.sleep(0.5)
        base = rss_kib(server.pid)
        print(f"baseline VmRSS {base} KiB")
        conns = []
        for target in checkpoints:
            while len(conns) < target:
                conns.append(upgrade(deadline))
            time.sleep(1.0)  # let the server finish its loop turn
            rss = rss_kib(server.pid)
            per = (rss - base) * 1024 / len(conns)
            print(
                f"{len(conns)} idle connections: VmRSS {rss} KiB, "
                f"+{rss - base} KiB, {per:.0f} B per connection"
            )
        for s in conns:
            s.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
