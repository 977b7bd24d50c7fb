#!/usr/bin/env python3
"""Client half of tests/e2e/nginx.sh: talks to two zerows instances through nginx
with the `websockets` library (pip install websockets), a client zerows did
not write, and checks what arrives.

Usage: nginx_client.py --proxy http://127.0.0.1:NGINX/ \
                       --direct-a http://127.0.0.1:A/ --direct-b http://127.0.0.1:B/ \
                       [--pid-a PID]

With --pid-a it ends with a drain test: SIGTERM to instance A while
connections through nginx are open on both instances.

Prints one line per check and closes with "nginx: N passed, N failed".
"""

import argparse
import asyncio
import contextlib
import http.client
import os
import random
import signal
import socket
import ssl
import sys
import time
import urllib.parse

from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

TIMEOUT = 10.0
MIB = 1 << 20

passed = 0
failed = 0


class Failure(Exception):
    pass


def check(name, fn):
    global passed, failed
    t0 = time.monotonic()
    try:
        detail = fn()
    except Exception as e:  # noqa: BLE001 - any exception fails the check
        failed += 1
        print(f"not ok - {name} ({(time.monotonic() - t0) * 1000:.0f} ms)\n  {type(e).__name__}: {e}", flush=True)
        raise Failure(name) from e
    passed += 1
    extra = f": {detail}" if detail else ""
    print(f"ok - {name} ({(time.monotonic() - t0) * 1000:.0f} ms){extra}", flush=True)


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def http_get(base, path):
    """GET base+path with a plain HTTP/1.1 client (no proxies from the environment)."""
    u = urllib.parse.urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def metrics(base):
    status, _, body = http_get(base, "/metrics")
    expect(status == 200, f"{base}metrics: status {status}")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


ACCEPTED = 'zerows_handshakes_total{result="accepted"}'
PAYLOAD_IN = 'zerows_payload_bytes_total{direction="in"}'
PAYLOAD_OUT = 'zerows_payload_bytes_total{direction="out"}'


class Run:
    def __init__(self, args):
        self.proxy = args.proxy
        self.ws_url = "ws" + args.proxy[len("http"):]
        self.direct = {"A": args.direct_a, "B": args.direct_b}
        self.pid_a = args.pid_a
        self.tls_proxy = args.tls_proxy
        self.ca = args.ca
        self.upgrades = 0  # successful upgrades through nginx
        self.payload = 0  # payload bytes sent (each also echoed)
        self.rng = random.Random(6455)
        # connect() used as a context manager works on every websockets
        # version; the stack closes whatever a failed check left open.
        self.stack = contextlib.ExitStack()

    def open(self, **kw):
        ws = self.connect(**kw)
        self.upgrades += 1
        return ws

    def connect(self, uri=None, **kw):
        return self.stack.enter_context(connect(
            uri or self.ws_url,
            proxy=None,
            open_timeout=TIMEOUT,
            close_timeout=5,
            max_size=4 * MIB,
            ping_interval=None,
            **kw,
        ))

    def echo(self, ws, msg):
        ws.send(msg)
        got = ws.recv(timeout=TIMEOUT)
        expect(type(got) is type(msg), f"sent {type(msg).__name__}, echo is {type(got).__name__}")
        expect(got == msg, f"echo of {len(msg)}-{'byte' if isinstance(msg, bytes) else 'char'} message differs (got {len(got)})")
        self.payload += len(msg.encode() if isinstance(msg, str) else msg)

    def session(self, i):
        ws = self.open()
        try:
            resp = ws.response
            expect(resp.status_code == 101, f"status {resp.status_code}")
            # websockets offers permessage-deflate; nginx passes the offer and
            # zerows's answer through, so every echo below goes compressed.
            ext = resp.headers.get("Sec-WebSocket-Extensions") or ""
            expect(ext.startswith("permessage-deflate"), f"permessage-deflate not negotiated through nginx: {ext!r}")
            expect([type(e).__name__ for e in ws.protocol.extensions] == ["PerMessageDeflate"],
                   f"negotiated extensions: {ws.protocol.extensions!r}")
            self.echo(ws, f"hello #{i} through nginx: héllo wörld — 你好 😀")
            self.echo(ws, bytes(range(256)) * 4)
            self.echo(ws, "")
            self.echo(ws, b"")
            self.echo(ws, self.rng.randbytes(MIB))
            self.echo(ws, "".join(self.rng.choice("aé€😀 ") for _ in range(MIB // 2)))  # ~1.1 MiB of mixed UTF-8
            self.echo(ws, "x" * (MIB - 2) + "é")  # exactly 1 MiB of text
            # A fragmented message: three frames, echoed as one message.
            parts = ["frag-1 ", "frag-2 ü ", "frag-3 🚀"]
            ws.send(iter(parts))
            got = ws.recv(timeout=TIMEOUT)
            expect(got == "".join(parts), f"fragmented message echo differs: {got!r}")
            self.payload += len("".join(parts).encode())
            pong = ws.ping(b"ping-through-nginx")
            expect(pong.wait(TIMEOUT), "no pong within 10 s")
            ws.close(1000, "done")
            expect(ws.close_code == 1000, f"server's close code {ws.close_code}, expected 1000")
        finally:
            ws.close()

    def main(self):
        def page():
            status, headers, body = http_get(self.proxy, "/")
            expect(status == 200, f"status {status}")
            expect("text/html" in headers.get("content-type", ""), f"content-type {headers.get('content-type')}")
            expect(b'id="state"' in body, "not the echo page")
            return f"{len(body)} bytes of HTML"

        check("GET / through nginx serves the echo page", page)

        def healthz():
            status, _, body = http_get(self.proxy, "/healthz")
            expect(status == 200 and body.strip() == b"ok", f"status {status}, body {body!r}")

        check("GET /healthz through nginx: 200", healthz)

        def metrics_hidden():
            status, _, _ = http_get(self.proxy, "/metrics")
            expect(status == 404, f"/metrics through nginx: status {status}")
            status, _, _ = http_get(self.direct["A"], "/metrics")
            expect(status == 200, f"/metrics on instance A directly: status {status}")

        check("GET /metrics: 404 through nginx, 200 on the instance directly", metrics_hidden)

        before = {k: metrics(u) for k, u in self.direct.items()}
        n = 6
        for i in range(n):
            check(
                f"session {i + 1}/{n}: text, binary, empty, 1 MiB binary, 1 MiB text, fragmented, ping, close 1000",
                lambda i=i: self.session(i),
            )

        def origin_same():
            u = urllib.parse.urlsplit(self.proxy)
            ws = self.open(origin=f"http://{u.hostname}:{u.port}")
            try:
                self.echo(ws, "same-origin browser through the proxy")
            finally:
                ws.close()

        check("Origin of the proxy's own host:port is accepted (Host forwarded with its port)", origin_same)

        def origin_other():
            try:
                ws = self.connect(origin="http://evil.example")
            except InvalidStatus as e:
                expect(e.response.status_code == 403, f"status {e.response.status_code}, expected 403")
                return
            ws.close()
            raise AssertionError("a foreign Origin was accepted")

        check("foreign Origin is refused with 403 through nginx", origin_other)

        def concurrent():
            conns = [self.open() for _ in range(16)]
            try:
                msgs = [self.rng.randbytes(self.rng.randrange(1, 200_000)) for _ in conns]
                for ws, m in zip(conns, msgs):
                    ws.send(m)
                for ws, m in zip(conns, msgs):
                    got = ws.recv(timeout=TIMEOUT)
                    expect(got == m, "echo differs on a concurrent connection")
                    self.payload += len(m)
            finally:
                for ws in conns:
                    ws.close()

        check("16 concurrent connections each get their own echo", concurrent)

        if self.tls_proxy:
            def tls():
                # The asyncio client here: the threaded one can hang writing
                # to a TLS socket its reader thread is using (Python ssl).
                return asyncio.run(asyncio.wait_for(self.tls_sessions(), 60))

            check("wss:// through nginx's TLS termination (text, 1 MiB binary, same-origin https)", tls)

        def both_served():
            after = {k: metrics(u) for k, u in self.direct.items()}
            acc = {k: after[k][ACCEPTED] - before[k][ACCEPTED] for k in after}
            pin = sum(after[k][PAYLOAD_IN] - before[k][PAYLOAD_IN] for k in after)
            pout = sum(after[k][PAYLOAD_OUT] - before[k][PAYLOAD_OUT] for k in after)
            expect(acc["A"] >= 1 and acc["B"] >= 1, f"upgrades accepted per instance: {acc}")
            expect(acc["A"] + acc["B"] == self.upgrades, f"instances accepted {acc}, client made {self.upgrades} upgrades")
            expect(pin == self.payload and pout == self.payload, f"payload in {pin}, out {pout}, client sent {self.payload}")
            return f"upgrades A={acc['A']:.0f} B={acc['B']:.0f}, payload {self.payload} bytes each way"

        check("both upstream instances served connections; their counters match the client's", both_served)

        if self.pid_a:
            self.drain()

    async def tls_sessions(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        u = urllib.parse.urlsplit(self.tls_proxy)
        version = None
        for i in range(2):
            async with aconnect(
                "wss" + self.tls_proxy[len("https"):],
                ssl=ctx,
                origin=f"https://{u.hostname}:{u.port}",
                proxy=None,
                open_timeout=TIMEOUT,
                close_timeout=5,
                max_size=4 * MIB,
                ping_interval=None,
            ) as ws:
                self.upgrades += 1
                version = ws.transport.get_extra_info("ssl_object").version()
                expect(version in ("TLSv1.2", "TLSv1.3"), f"TLS version {version}")
                for msg in (f"over TLS #{i}: ünïcödé 🔒", self.rng.randbytes(MIB)):
                    await ws.send(msg)
                    got = await asyncio.wait_for(ws.recv(), TIMEOUT)
                    expect(got == msg, f"echo over TLS differs ({len(got)} vs {len(msg)})")
                    self.payload += len(msg.encode() if isinstance(msg, str) else msg)
                await ws.close(1000)
                expect(ws.close_code == 1000, f"close code {ws.close_code}")
        return version

    def raw_upgrade(self, base):
        """A direct connection to an instance that upgrades and then never answers a close."""
        u = urllib.parse.urlsplit(base)
        s = socket.create_connection((u.hostname, u.port), timeout=TIMEOUT)
        s.sendall(
            f"GET / HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            expect(chunk, "connection closed during the upgrade")
            head += chunk
        expect(head.startswith(b"HTTP/1.1 101"), f"raw upgrade answered {head[:40]!r}")
        return s

    def drain(self):
        conns = []
        stubborn = None
        try:
            def open_on_both():
                # Round robin puts consecutive connections on alternate instances.
                for _ in range(6):
                    conns.append(self.open())
                gauges = {k: metrics(u)["zerows_connections"] - 1 for k, u in self.direct.items()}  # minus the scrape itself
                expect(gauges["A"] >= 1 and gauges["B"] >= 1, f"open connections per instance: {gauges}")
                self.on_a = int(gauges["A"])
                return f"A={gauges['A']:.0f} B={gauges['B']:.0f}"

            check("drain: 6 connections open through nginx on both instances", open_on_both)
            stubborn = self.raw_upgrade(self.direct["A"])
            os.kill(self.pid_a, signal.SIGTERM)

            def health_503():
                deadline = time.monotonic() + 3
                dropped = 0
                while True:
                    try:
                        status, _, _ = http_get(self.direct["A"], "/healthz")
                    except (http.client.HTTPException, OSError) as e:
                        # A request caught at the moment the drain begins can
                        # be closed unanswered (zerows 0.1.0); a checker retries.
                        status = f"{type(e).__name__}"
                        dropped += 1
                    if status == 503:
                        break
                    expect(time.monotonic() < deadline, f"/healthz on A still {status}")
                    time.sleep(0.05)
                # /metrics while draining: zerows_accepting 0 if it is served
                # (zerows 0.1.0 answers every new connection 503 while it
                # drains, /metrics included).
                status, _, body = http_get(self.direct["A"], "/metrics")
                note = f"; {dropped} probe(s) closed unanswered first" if dropped else ""
                if status == 200:
                    expect(b"\nzerows_accepting 0\n" in body, "zerows_accepting is not 0 while draining")
                    return "/metrics: zerows_accepting 0" + note
                expect(status == 503, f"/metrics while draining: status {status}")
                return "/metrics is 503 too while draining" + note

            check("drain: A's /healthz answers 503", health_503)

            def going_away():
                codes = {}
                for i, ws in enumerate(conns):
                    try:
                        ws.send(f"still there? {i}")
                        got = ws.recv(timeout=3)
                        expect(got == f"still there? {i}", "echo differs")
                        codes[i] = "open"
                    except ConnectionClosed as e:
                        codes[i] = e.rcvd.code if e.rcvd else None
                    except TimeoutError:
                        codes[i] = "timeout"
                closed = [i for i, c in codes.items() if c == 1001]
                other = {i: c for i, c in codes.items() if c not in (1001, "open")}
                expect(not other, f"unexpected outcomes: {other}")
                expect(len(closed) == self.on_a, f"{len(closed)} connections got 1001, instance A had {self.on_a}")
                return f"{len(closed)} closed with 1001, {len(codes) - len(closed)} still echoing"

            check("drain: A's connections get close 1001 through nginx, B's keep echoing", going_away)

            def new_conns_go_to_b():
                # A draining instance answers 503 once it has read the
                # request, and nginx retries it on the other instance, so no
                # client sees a refusal.
                for i in range(8):
                    try:
                        ws = self.open()
                    except InvalidStatus as e:
                        raise AssertionError(f"new connection {i}: HTTP {e.response.status_code}")
                    try:
                        self.echo(ws, f"new connection {i} during A's drain")
                    finally:
                        ws.close()
                return "none refused"

            check("drain: new connections through nginx succeed (nginx retries A's 503 on B)", new_conns_go_to_b)
        finally:
            if stubborn is not None:
                stubborn.close()
            for ws in conns:
                ws.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--proxy", required=True)
    p.add_argument("--direct-a", required=True)
    p.add_argument("--direct-b", required=True)
    p.add_argument("--pid-a", type=int, default=0)
    p.add_argument("--tls-proxy", help="https://HOST:PORT/ of nginx's TLS listener")
    p.add_argument("--ca", help="certificate to trust for --tls-proxy")
    args = p.parse_args()
    rc = 0
    try:
        run = Run(args)
        with run.stack:
            run.main()
    except Failure:
        rc = 1
    except Exception as e:  # noqa: BLE001
        print(f"nginx: FAIL: {type(e).__name__}: {e}", flush=True)
        rc = 1
    if rc and failed == 0:
        globals()["failed"] = 1
    print(f"nginx: {passed} passed, {failed} failed", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
