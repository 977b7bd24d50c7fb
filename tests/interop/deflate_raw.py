#!/usr/bin/env python3
"""permessage-deflate (RFC 7692) at the byte level: the handshake written by
hand and frames built and masked here (socket + zlib only), so that offers,
RSV bits and compressed payloads no library would send can be tried.

Usage: python3 tests/interop/deflate_raw.py ws://127.0.0.1:PORT/ --profile P [--pid PID]

The profile names the flags the server was started with (tests/interop/run.sh
starts one server per profile):

  default            no deflate flags (deflate on)
  off                --deflate off
  limit              --max-message-size 1048576
  client-window-10   --deflate-client-window-bits 10
  server-window-10   --deflate-window-bits 10
  takeover           --deflate-client-takeover

--pid PID: the server's pid; its peak resident memory (VmHWM in
/proc/PID/status) must stay under 64 MiB through the checks (run.sh passes it
for every profile but the default one, where the library clients' 16 MiB
messages legitimately use more).

Every check runs (each with its own deadline) and prints "ok" or "FAIL";
exits 0 if all passed, 1 if any failed (2 on SIGTERM).
"""

import argparse
import base64
import hashlib
import os
import random
import re
import signal
import socket
import sys
import time
import urllib.parse
import zlib

STEP_TIMEOUT = 20.0
IO_TIMEOUT = 10.0
MIB = 1 << 20
TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.1: stripped by the sender, appended by the receiver
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"  # what Chromium and Node's ws send


class Failure(AssertionError):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Failure(what)


# --------------------------------------------------------------------------
# DEFLATE helpers


def deflate(data: bytes, wbits: int = 15, level: int = 6, strip: bool = True) -> bytes:
    """One message compressed as RFC 7692 §7.2.1 says: sync flush, tail removed."""
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4] if strip else out


def inflate(data: bytes, wbits: int = 15, limit: int = 64 * MIB) -> bytes:
    """What a receiver with a `wbits` window makes of a message (§7.2.2).
    zlib refuses ("invalid distance too far back") data that reaches further
    back than the window."""
    d = zlib.decompressobj(-wbits)
    out = d.decompress(data + TAIL, limit)
    check(not d.unconsumed_tail, f"inflated message over {limit} bytes")
    return out


def json_like(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    items = []
    size = 0
    i = 0
    while size < n:
        s = '{"id":%d,"name":"user-%d","active":%s,"score":%d.%02d,"tags":["alpha","béta","γ"]}' % (
            i, rng.randrange(1000), rng.choice(["true", "false"]), rng.randrange(100), rng.randrange(100))
        items.append(s)
        size += len(s.encode()) + 1
        i += 1
    return ("[" + ",".join(items) + "]").encode()


def far_repeats(n: int, seed: int, block: int = 4096) -> bytes:
    """Text whose only redundancy is `block` bytes back: compressed with a
    32 KiB window it uses distances a 1 KiB (10-bit) window cannot hold."""
    unit = base64.b64encode(random.Random(seed).randbytes(block * 3 // 4))
    return (unit * (n // len(unit) + 1))[:n]


# --------------------------------------------------------------------------
# A WebSocket client written by hand


def parse_extensions(values: list[str]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Sec-WebSocket-Extensions values -> [(name, [(param, value or None)])]."""
    out = []
    for value in values:
        for element in value.split(","):
            if not element.strip():
                continue
            parts = [p.strip() for p in element.split(";")]
            params = []
            for p in parts[1:]:
                if "=" in p:
                    k, v = p.split("=", 1)
                    v = v.strip()
                    if len(v) >= 2 and v[0] == v[-1] == '"':
                        v = v[1:-1]
                    params.append((k.strip(), v))
                else:
                    params.append((p, None))
            out.append((parts[0], params))
    return out


class Raw:
    """One connection: handshake by hand, masked frames out, frames in."""

    def __init__(self, url: str, extensions=None):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.sock = socket.create_connection((self.host, self.port), timeout=IO_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {u.path or '/'} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if isinstance(extensions, str):
            extensions = [extensions]
        for e in extensions or []:
            lines.append(f"Sec-WebSocket-Extensions: {e}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        deadline = time.monotonic() + IO_TIMEOUT
        while b"\r\n\r\n" not in self.buf:
            check(time.monotonic() < deadline and len(self.buf) < 16384, "no complete response head")
            chunk = self.sock.recv(4096)
            check(chunk != b"", f"connection closed during the handshake: {self.buf!r}")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split(" ")[1])
        self.headers = [(k.strip().lower(), v.strip()) for k, v in (h.split(":", 1) for h in header_lines)]
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            check(self.header("sec-websocket-accept") == [want], "wrong Sec-WebSocket-Accept")
        ext = self.header("sec-websocket-extensions")
        self.ext_header = ", ".join(ext)
        self.extensions = parse_extensions(ext)

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def deflate_params(self) -> dict | None:
        """The accepted permessage-deflate's parameters, or None if declined.
        Checks the response against RFC 7692 §7.1 on the way."""
        names = [n for n, _ in self.extensions]
        if not names:
            return None
        check(names == ["permessage-deflate"], f"response accepts {names!r}, not one permessage-deflate")
        params = self.extensions[0][1]
        keys = [k for k, _ in params]
        check(len(keys) == len(set(keys)), f"duplicate parameter in the response: {self.ext_header!r}")
        allowed = {"server_no_context_takeover", "client_no_context_takeover",
                   "server_max_window_bits", "client_max_window_bits"}
        check(set(keys) <= allowed, f"unknown parameter in the response: {self.ext_header!r}")
        out = dict(params)
        for flag in ("server_no_context_takeover", "client_no_context_takeover"):
            check(out.get(flag) is None, f"{flag} with a value: {self.ext_header!r}")
        for bits in ("server_max_window_bits", "client_max_window_bits"):
            if bits in out:
                v = out[bits]
                check(v is not None and re.fullmatch(r"[1-9][0-9]*", v) is not None and 8 <= int(v) <= 15,
                      f"{bits} not an integer 8..15 in the response: {self.ext_header!r}")
                out[bits] = int(v)
        return out

    # -- frames --------------------------------------------------------------

    def send_frame(self, opcode: int, payload: bytes = b"", fin: bool = True,
                   rsv1: bool = False, rsv2: bool = False, rsv3: bool = False) -> None:
        b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0) | (0x10 if rsv3 else 0) | opcode
        n = len(payload)
        if n < 126:
            head = bytes([b0, 0x80 | n])
        elif n < 65536:
            head = bytes([b0, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([b0, 0x80 | 127]) + n.to_bytes(8, "big")
        key = os.urandom(4)
        if n:
            k = (key * (n // 4 + 1))[:n]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")
        self.sock.sendall(head + key + payload)

    def send_message(self, opcode: int, payload: bytes, rsv1: bool = False, pieces: int = 1) -> None:
        """One message in `pieces` frames, RSV1 on the first only (§6.1)."""
        cuts = sorted({0, len(payload)} | {len(payload) * i // pieces for i in range(1, pieces)})
        if len(cuts) == 1:
            cuts = [0, 0]  # an empty message is still one frame
        for i in range(len(cuts) - 1):
            first, last = i == 0, i == len(cuts) - 2
            self.send_frame(opcode if first else CONT, payload[cuts[i]:cuts[i + 1]], fin=last, rsv1=rsv1 and first)

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            check(left > 0, "timed out reading from the server")
            self.sock.settimeout(min(left, IO_TIMEOUT))
            try:
                chunk = self.sock.recv(max(65536, n - len(self.buf)))
            except socket.timeout:
                continue
            check(chunk != b"", "connection closed without a close frame")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self, timeout: float = IO_TIMEOUT):
        deadline = time.monotonic() + timeout
        b0, b1 = self._read(2, deadline)
        check(not b1 & 0x80, "the server masked a frame")
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(self._read(2, deadline), "big")
        elif n == 127:
            n = int.from_bytes(self._read(8, deadline), "big")
        payload = self._read(n, deadline)
        return {"fin": bool(b0 & 0x80), "rsv1": bool(b0 & 0x40), "rsv2": bool(b0 & 0x20),
                "rsv3": bool(b0 & 0x10), "opcode": b0 & 0x0F, "payload": payload}

    def read_message(self, timeout: float = IO_TIMEOUT):
        """(opcode, rsv1 of the first frame, payload as on the wire); pongs are skipped."""
        deadline = time.monotonic() + timeout
        first = None
        data = []
        for _ in range(100000):
            f = self.read_frame(max(0.01, deadline - time.monotonic()))
            check(not f["rsv2"] and not f["rsv3"], "the server set RSV2/RSV3")
            if f["opcode"] == PONG:
                continue
            check(f["opcode"] != CLOSE, f"closed instead of a message: {close_of(f)}")
            if first is None:
                check(f["opcode"] in (TEXT, BINARY), f"message starts with opcode {f['opcode']}")
                first = f
            else:
                check(f["opcode"] == CONT, f"opcode {f['opcode']} inside a message")
                check(not f["rsv1"], "the server set RSV1 on a continuation frame")
            data.append(f["payload"])
            if f["fin"]:
                return first["opcode"], first["rsv1"], b"".join(data)
        raise Failure("message in too many frames")

    def expect_close(self, code: int, timeout: float = IO_TIMEOUT, echoed_first: int = 0) -> None:
        """The next frame is a close with `code`, after at most
        `echoed_first` data frames (the echo service sends a fragment back as
        soon as it has it, before the message's end is known to be valid);
        answer it and check the server ends the TCP connection."""
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            f = self.read_frame(max(0.01, deadline - time.monotonic()))
            if f["opcode"] == PONG:
                continue
            if f["opcode"] in (TEXT, BINARY, CONT) and not f["fin"] and echoed_first > 0:
                echoed_first -= 1
                continue
            check(f["opcode"] == CLOSE,
                  f"expected close {code}, got a frame with opcode {f['opcode']} ({len(f['payload'])} bytes)")
            got = close_of(f)
            check(got == code, f"expected close {code}, got {got}")
            break
        try:
            self.send_frame(CLOSE, f["payload"][:2])
        except OSError:
            pass
        # The server ends the connection (bounded wait).
        self.sock.settimeout(1.0)
        end = time.monotonic() + 8.0
        while time.monotonic() < end:
            try:
                if self.sock.recv(65536) == b"":
                    return
            except socket.timeout:
                continue
            except OSError:
                return
        raise Failure("the server did not close the TCP connection after the close handshake")

    def echo(self, opcode: int, payload: bytes, rsv1: bool = False, pieces: int = 1):
        self.send_message(opcode, payload, rsv1=rsv1, pieces=pieces)
        return self.read_message()

    def close(self) -> None:
        try:
            self.send_frame(CLOSE, (1000).to_bytes(2, "big"))
            self.expect_close(1000)
        finally:
            self.sock.close()

    def abort(self) -> None:
        self.sock.close()


def close_of(f) -> int | None:
    p = f["payload"]
    return int.from_bytes(p[:2], "big") if len(p) >= 2 else None


def send_quietly(c: Raw, *args, **kw) -> None:
    """A send the server may cut short by closing first (a 1009 mid-message)."""
    try:
        c.send_message(*args, **kw)
    except (BrokenPipeError, ConnectionResetError):
        pass


def accepted(extensions, url) -> tuple[Raw, dict]:
    c = Raw(url, extensions)
    check(c.status == 101, f"offer {extensions!r}: status {c.status}")
    p = c.deflate_params()
    check(p is not None, f"offer {extensions!r} was declined")
    return c, p


def roundtrip(c: Raw, msg: bytes, wbits_out: int, wbits_in: int, opcode: int = TEXT, pieces: int = 1) -> None:
    """Send `msg` compressed with a `wbits_out` window; the echo, whatever
    its form, must decompress with a `wbits_in` window back to `msg`."""
    op, rsv1, payload = c.echo(opcode, deflate(msg, wbits_out), rsv1=True, pieces=pieces)
    check(op == opcode, f"echo has opcode {op}")
    got = inflate(payload, wbits_in) if rsv1 else payload
    check(got == msg, f"echo of {len(msg)} bytes differs after inflating (RSV1 {rsv1})")


# --------------------------------------------------------------------------
# Checks by server profile

MSG_1K = json_like(1024, 1)


def t_garbage_1007(url):
    """RSV1 + bytes ff ff ff (BTYPE 11, reserved): close 1007, nothing echoed."""
    for opcode in (BINARY, TEXT):
        c, _ = accepted(DEFLATE_OFFER, url)
        c.send_frame(opcode, b"\xff\xff\xff", rsv1=True)
        c.expect_close(1007)


def t_garbage_in_continuation_1007(url):
    """A valid first frame, then a continuation that breaks the DEFLATE stream."""
    c, _ = accepted(DEFLATE_OFFER, url)
    good = deflate(MSG_1K)
    c.send_frame(TEXT, good[: len(good) // 2], fin=False, rsv1=True)
    c.send_frame(CONT, b"\xff\xff\xff\xff", fin=True)
    c.expect_close(1007, echoed_first=1)


def t_truncated_stream(url):
    """A message that ends inside a stored block (it announces 65535 bytes,
    14 come). RFC 7692 does not say whether a receiver must notice (zlib
    only asks for more input): close 1007, or an echo of the bytes sent, is
    accepted; a hang or another code is not. Prints which."""
    c, _ = accepted(DEFLATE_OFFER, url)
    z = b"\x00\xff\xff\x00\x00" + b"x" * 10
    c.send_frame(BINARY, z, rsv1=True)
    f = c.read_frame()
    if f["opcode"] == CLOSE:
        check(close_of(f) == 1007, f"closed with {close_of(f)}")
        print("#    truncated stream: close 1007")
        c.abort()
        return
    check(f["opcode"] == BINARY and f["fin"] and f["rsv1"] and f["payload"] == z,
          f"neither close 1007 nor the bytes echoed: {f}")
    print("#    truncated stream: echoed as sent (not detected)")
    c.close()


def t_invalid_utf8_after_inflate_1007(url):
    c, _ = accepted(DEFLATE_OFFER, url)
    c.send_frame(TEXT, deflate(b"valid then \xc3\x28 invalid"), rsv1=True)
    c.expect_close(1007)


def t_own_bytes_echoed(url):
    """The brief's behaviour: a compressed message comes back as the client's
    own compressed bytes, RSV1 set; an uncompressed one comes back as it was."""
    c, p = accepted(DEFLATE_OFFER, url)
    check("server_no_context_takeover" in p, f"no server_no_context_takeover: {c.ext_header!r}")
    check("client_no_context_takeover" in p, f"no client_no_context_takeover: {c.ext_header!r}")
    z = deflate(MSG_1K)
    op, rsv1, payload = c.echo(TEXT, z, rsv1=True)
    check((op, rsv1) == (TEXT, True), f"echo opcode {op}, RSV1 {rsv1}")
    check(payload == z, "echo payload is not the compressed bytes sent")
    check(inflate(payload) == MSG_1K, "echo does not inflate to the message")
    op, rsv1, payload = c.echo(TEXT, MSG_1K)
    check((op, rsv1, payload) == (TEXT, False, MSG_1K), "uncompressed message not echoed as sent")
    c.close()


def t_deflate_forms(url):
    """Compressed forms other than one sync-flushed block, all valid DEFLATE."""
    c, _ = accepted(DEFLATE_OFFER, url)
    msg = json_like(20000, 2)
    # A BFINAL=1 block (§7.2.3.4): the receiver still appends the tail.
    zc = zlib.compressobj(6, zlib.DEFLATED, -15)
    roundtrip_payload(c, zc.compress(msg) + zc.flush(zlib.Z_FINISH), msg, "a BFINAL block")
    # Stored (level 0) blocks (§7.2.3.3).
    roundtrip_payload(c, deflate(msg, level=0), msg, "stored blocks")
    # A full flush in the middle: several blocks.
    zc = zlib.compressobj(6, zlib.DEFLATED, -15)
    z = zc.compress(msg[:7000]) + zc.flush(zlib.Z_FULL_FLUSH) + zc.compress(msg[7000:]) + zc.flush(zlib.Z_SYNC_FLUSH)
    roundtrip_payload(c, z[:-4], msg, "a full flush mid-message")
    # The tail left on (an extra empty stored block once the receiver appends its own).
    roundtrip_payload(c, deflate(msg, strip=False), msg, "the 00 00 ff ff tail not removed")
    # Empty message: the empty compressed payload, and zlib's own empty block.
    roundtrip_payload(c, b"", b"", "an empty payload with RSV1")
    roundtrip_payload(c, deflate(b""), b"", "an empty message compressed")
    c.close()


def roundtrip_payload(c: Raw, z: bytes, msg: bytes, what: str) -> None:
    op, rsv1, payload = c.echo(TEXT, z, rsv1=True)
    check(op == TEXT, f"{what}: echo opcode {op}")
    got = inflate(payload) if rsv1 else payload
    check(got == msg, f"{what}: echo differs ({len(got)} bytes, sent {len(msg)})")


def t_fragmented_compressed(url):
    """One compressed message in many frames cut at arbitrary bytes of the
    DEFLATE stream (and inside UTF-8 sequences); a ping between fragments."""
    c, _ = accepted(DEFLATE_OFFER, url)
    msg = ("héllo wörld — 你好 😀 " * 2000).encode()
    for pieces in (2, 7, 300):
        roundtrip(c, msg, 15, 15, TEXT, pieces=pieces)
    z = deflate(msg)
    c.send_frame(TEXT, z[:10], fin=False, rsv1=True)
    c.send_frame(PING, b"mid")
    # The pong comes at once; the first fragment's echo may come before it.
    echoed = []
    for _ in range(3):
        f = c.read_frame()
        if f["opcode"] == PONG:
            break
        check(f["opcode"] == TEXT and not f["fin"], f"expected pong 'mid' or the first fragment, got {f}")
        echoed.append(f)
    check(f["opcode"] == PONG and f["payload"] == b"mid" and not f["rsv1"], f"expected pong 'mid', got {f}")
    c.send_frame(CONT, z[10:], fin=True)
    if echoed:
        rest = []
        for _ in range(1000):
            f = c.read_frame()
            check(f["opcode"] == CONT, f"opcode {f['opcode']} inside the echo")
            rest.append(f["payload"])
            if f["fin"]:
                break
        payload, rsv1 = echoed[0]["payload"] + b"".join(rest), echoed[0]["rsv1"]
    else:
        _, rsv1, payload = c.read_message()
    check((inflate(payload) if rsv1 else payload) == msg, "message around a ping differs")
    c.close()


def t_reserved_bits_1002(url):
    """RSV1 on a continuation or a control frame, and RSV2/RSV3 at all, are
    protocol errors even with deflate negotiated (RFC 7692 §6.1, RFC 6455 §5.2)."""
    cases = [
        ("RSV1 on a continuation", lambda c: (c.send_frame(TEXT, deflate(b"ab")[:1], fin=False, rsv1=True),
                                              c.send_frame(CONT, deflate(b"ab")[1:], rsv1=True))),
        ("RSV1 on a ping", lambda c: c.send_frame(PING, b"x", rsv1=True)),
        ("RSV1 on a close", lambda c: c.send_frame(CLOSE, (1000).to_bytes(2, "big"), rsv1=True)),
        ("RSV2 on a text frame", lambda c: c.send_frame(TEXT, b"x", rsv2=True)),
        ("RSV3 on a binary frame", lambda c: c.send_frame(BINARY, b"x", rsv3=True)),
        ("RSV1 on a continuation of an uncompressed message",
         lambda c: (c.send_frame(TEXT, b"a", fin=False), c.send_frame(CONT, deflate(b"b"), rsv1=True))),
    ]
    for what, send in cases:
        c, _ = accepted(DEFLATE_OFFER, url)
        send(c)
        try:
            c.expect_close(1002, echoed_first=1)
        except Failure as e:
            raise Failure(f"{what}: {e}") from None


def t_window_default_long_distance(url):
    """With no window negotiated the server must take 32 KiB distances."""
    c, p = accepted(DEFLATE_OFFER, url)
    msg = far_repeats(200 * 1024, 3, block=30000)
    roundtrip(c, msg, 15, p.get("server_max_window_bits", 15))
    roundtrip(c, msg, 15, p.get("server_max_window_bits", 15), BINARY, pieces=5)
    c.close()


# -- negotiation (RFC 7692 §5, §7.1) -------------------------------------------


def t_no_offer(url):
    c = Raw(url, None)
    check(c.status == 101, f"status {c.status}")
    check(c.header("sec-websocket-extensions") == [], f"extension without an offer: {c.ext_header!r}")
    c.close()


def t_plain_offer(url):
    """Bare `permessage-deflate`: accepted, no client_max_window_bits
    (§7.1.2.2: MUST NOT when the offer lacks it)."""
    c, p = accepted("permessage-deflate", url)
    check("client_max_window_bits" not in p, f"client_max_window_bits without an offer of it: {c.ext_header!r}")
    roundtrip(c, MSG_1K, 15, p.get("server_max_window_bits", 15))
    c.close()


def t_offer_with_takeover_params(url):
    """The client asks for both no-context-takeover flags: accepted, and
    server_no_context_takeover in the answer (§7.1.1.1)."""
    c, p = accepted("permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits", url)
    check("server_no_context_takeover" in p, f"server_no_context_takeover requested, not answered: {c.ext_header!r}")
    roundtrip(c, MSG_1K, p.get("client_max_window_bits", 15), p.get("server_max_window_bits", 15))
    c.close()


INVALID_OFFERS = [
    "permessage-deflate; foo",
    "permessage-deflate; foo=bar",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; client_no_context_takeover=true",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=010",
    "permessage-deflate; server_max_window_bits=abc",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; client_max_window_bits=7",
    "permessage-deflate; client_max_window_bits=",
]

NOT_DEFLATE = [
    "x-permessage-deflate",
    "permessage-deflate-x",
    "xpermessage-deflate; client_max_window_bits",
    "x-webkit-deflate-frame",
    "foo; bar=\"permessage-deflate\"",
]


def t_invalid_offers_declined(url):
    """§7.1: a server MUST decline an offer with an unknown parameter, an
    invalid value or a repeated parameter; an extension that only contains
    the name is not an offer of it. Declining: 101 without the extension
    (a 400 would be tolerated here)."""
    bad = []
    for offer in INVALID_OFFERS + NOT_DEFLATE:
        c = Raw(url, offer)
        if c.status == 101:
            if c.header("sec-websocket-extensions"):
                bad.append(f"{offer!r} -> {c.ext_header!r}")
            c.close()
        else:
            check(400 <= c.status < 500, f"offer {offer!r}: status {c.status}")
            c.abort()
    check(not bad, "accepted offers it must decline: " + "; ".join(bad))


def t_fallback_offer(url):
    """Offers are in order of preference; one that must be declined does not
    stop the next being accepted (§5). The answer must not carry the rejected
    offer's parameters."""
    for ext in (["permessage-deflate; foo, permessage-deflate; client_max_window_bits"],
                ["foo, permessage-deflate"],
                ["foo", "permessage-deflate; client_max_window_bits"],
                ["permessage-deflate; server_max_window_bits=16, permessage-deflate"]):
        c, p = accepted(ext, url)
        roundtrip(c, MSG_1K, p.get("client_max_window_bits", 15), p.get("server_max_window_bits", 15))
        c.close()


def t_quoted_value(url):
    """§7.1.2.2: a value may come as a quoted-string."""
    c, p = accepted('permessage-deflate; client_max_window_bits="10"', url)
    cw = p.get("client_max_window_bits", 10)
    check(cw <= 10, f"client_max_window_bits {cw} above the offered 10: {c.ext_header!r}")
    roundtrip(c, far_repeats(50000, 4), cw, p.get("server_max_window_bits", 15))
    c.close()


def t_client_window_offered_value(url):
    """The client says it will use at most 10 bits: the answer may repeat a
    value <= 10 or nothing; messages at 10 bits are echoed."""
    c, p = accepted("permessage-deflate; client_max_window_bits=10", url)
    cw = p.get("client_max_window_bits", 10)
    check(cw <= 10, f"client_max_window_bits {cw} above the offered 10: {c.ext_header!r}")
    roundtrip(c, far_repeats(50000, 5), cw, p.get("server_max_window_bits", 15))
    c.close()


def t_server_window_offered(url):
    """§7.1.2.1: an offer with server_max_window_bits=10 is declined, or
    accepted with server_max_window_bits <= 10 in the answer; the server's
    messages then never reach further back than 1 KiB, even when the client
    compressed with a 32 KiB window."""
    for offer in ("permessage-deflate; server_max_window_bits=10; client_max_window_bits",
                  "permessage-deflate; server_max_window_bits=10"):
        c = Raw(url, offer)
        check(c.status == 101, f"status {c.status}")
        p = c.deflate_params()
        if p is None:
            c.close()
            continue
        sw = p.get("server_max_window_bits")
        check(sw is not None and sw <= 10, f"offer {offer!r} answered {c.ext_header!r}: no server_max_window_bits <= 10")
        cw = p.get("client_max_window_bits", 15)
        msg = far_repeats(100000, 6)
        roundtrip(c, msg, cw, sw)
        roundtrip(c, msg, cw, sw, BINARY, pieces=3)
        c.close()


def t_server_window_8(url):
    """server_max_window_bits=8 (valid, but zlib cannot compress with it):
    declined, or answered with 8 and honoured; a second offer is the fallback."""
    c = Raw(url, "permessage-deflate; server_max_window_bits=8")
    check(c.status == 101, f"status {c.status}")
    p = c.deflate_params()
    if p is not None:
        check(p.get("server_max_window_bits") == 8, f"offer of 8 answered {c.ext_header!r}")
        roundtrip(c, far_repeats(20000, 7), p.get("client_max_window_bits", 15), 8)
    c.close()


# -- other server profiles -------------------------------------------------------


def t_off_declines(url):
    for offer in (DEFLATE_OFFER, "permessage-deflate", "permessage-deflate; server_no_context_takeover"):
        c = Raw(url, offer)
        check(c.status == 101, f"status {c.status}")
        check(c.header("sec-websocket-extensions") == [], f"--deflate off accepted {offer!r}: {c.ext_header!r}")
        op, rsv1, payload = c.echo(TEXT, MSG_1K)
        check((op, rsv1, payload) == (TEXT, False, MSG_1K), "echo differs")
        c.close()


def t_off_rsv1_1002(url):
    """RSV1 with no extension negotiated: 1002 (RFC 6455 §5.2), even if the
    payload is valid DEFLATE."""
    c = Raw(url, DEFLATE_OFFER)
    check(c.header("sec-websocket-extensions") == [], "extension accepted")
    c.send_frame(TEXT, deflate(b"hello"), rsv1=True)
    c.expect_close(1002)


def t_client_window_10_bare(url):
    """--deflate-client-window-bits 10 and an offer that lets the server say:
    the answer carries client_max_window_bits=10."""
    c, p = accepted(DEFLATE_OFFER, url)
    check(p.get("client_max_window_bits") == 10,
          f"--deflate-client-window-bits 10, offer {DEFLATE_OFFER!r}: answered {c.ext_header!r}")
    roundtrip(c, far_repeats(100000, 8), 10, p.get("server_max_window_bits", 15))
    c.close()


def t_client_window_10_capped(url):
    """Offer client_max_window_bits=12: the answer is <= 12, and 10 per the configuration."""
    c, p = accepted("permessage-deflate; client_max_window_bits=12", url)
    cw = p.get("client_max_window_bits")
    check(cw == 10, f"--deflate-client-window-bits 10, offer of 12: answered {c.ext_header!r}")
    roundtrip(c, far_repeats(100000, 9), 10, p.get("server_max_window_bits", 15))
    c.close()


def t_client_window_10_not_offered(url):
    """An offer without client_max_window_bits: the answer MUST NOT carry it
    (§7.1.2.2); if accepted, the client keeps its 32 KiB window."""
    c = Raw(url, "permessage-deflate")
    check(c.status == 101, f"status {c.status}")
    p = c.deflate_params()
    if p is not None:
        check("client_max_window_bits" not in p, f"client_max_window_bits without an offer of it: {c.ext_header!r}")
        roundtrip(c, far_repeats(100000, 10, block=30000), 15, p.get("server_max_window_bits", 15))
    c.close()


def t_server_window_10(url):
    """--deflate-window-bits 10: whatever the answer says the server's window
    is, its messages fit it, even when the client compressed with 32 KiB."""
    for offer in (DEFLATE_OFFER, "permessage-deflate"):
        c, p = accepted(offer, url)
        sw = p.get("server_max_window_bits", 15)
        cw = p.get("client_max_window_bits", 15)
        msg = far_repeats(100000, 11)
        roundtrip(c, msg, cw, sw)
        roundtrip(c, msg, cw, sw, BINARY, pieces=4)
        c.close()


def t_takeover(url):
    """--deflate-client-takeover: the answer does not ask for
    client_no_context_takeover, so the client may refer to earlier messages;
    the server's echoes (server_no_context_takeover) each stand alone."""
    c, p = accepted(DEFLATE_OFFER, url)
    check("client_no_context_takeover" not in p,
          f"--deflate-client-takeover, but the answer asks for client_no_context_takeover: {c.ext_header!r}")
    check("server_no_context_takeover" in p, f"no server_no_context_takeover: {c.ext_header!r}")
    sw = p.get("server_max_window_bits", 15)
    z = zlib.compressobj(6, zlib.DEFLATED, -p.get("client_max_window_bits", 15))
    msgs = [json_like(3000, 12), json_like(3000, 12), json_like(3000, 13), b"", json_like(3000, 12)]
    for i, msg in enumerate(msgs):
        payload = z.compress(msg) + z.flush(zlib.Z_SYNC_FLUSH)
        payload = payload[:-4]
        op, rsv1, echoed = c.echo(TEXT, payload, rsv1=True)
        got = inflate(echoed, sw) if rsv1 else echoed  # a fresh inflater: no server context
        check(got == msg, f"message {i} with context takeover: echo differs ({len(got)} bytes, sent {len(msg)})")
    c.close()


# -- limit: --max-message-size 1048576 -------------------------------------------------

LIMIT = MIB


def zeros_compressed(n: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [c.compress(bytes(min(MIB, n - i))) for i in range(0, n, MIB)]
    out = b"".join(parts) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


def t_limit_exact(url):
    """Inflating to exactly the limit is accepted (binary and text)."""
    c, _ = accepted(DEFLATE_OFFER, url)
    for opcode, msg in ((BINARY, bytes(LIMIT)), (TEXT, b"a" * LIMIT)):
        roundtrip_op(c, opcode, msg)
    c.close()


def roundtrip_op(c, opcode, msg):
    op, rsv1, payload = c.echo(opcode, deflate(msg, level=9), rsv1=True)
    check(op == opcode, f"echo opcode {op}")
    got = inflate(payload) if rsv1 else payload
    check(got == msg, f"{len(msg)}-byte message: echo differs ({len(got)} bytes)")


def t_limit_plus_one_1009(url):
    for opcode, msg in ((BINARY, bytes(LIMIT + 1)), (TEXT, b"a" * (LIMIT + 1))):
        c, _ = accepted(DEFLATE_OFFER, url)
        send_quietly(c, opcode, deflate(msg, level=9), rsv1=True)
        c.expect_close(1009)


def t_bomb_1009(url):
    """64 MiB of zeros in one ~64 KB frame; then in 16 frames; then as text."""
    bomb = zeros_compressed(64 * MIB)
    check(len(bomb) < 70000, f"bomb is {len(bomb)} bytes")
    for opcode, pieces in ((BINARY, 1), (BINARY, 16), (TEXT, 1)):
        c, _ = accepted(DEFLATE_OFFER, url)
        send_quietly(c, opcode, bomb, rsv1=True, pieces=pieces)
        try:
            c.expect_close(1009)
        except Failure as e:
            raise Failure(f"bomb in {pieces} frame(s), opcode {opcode}: {e}") from None


def t_bombs_in_parallel(url):
    """Eight connections bomb at once; each gets 1009."""
    bomb = zeros_compressed(64 * MIB)
    conns = [accepted(DEFLATE_OFFER, url)[0] for _ in range(8)]
    for c in conns:
        send_quietly(c, BINARY, bomb, rsv1=True)
    for c in conns:
        c.expect_close(1009)


def t_limit_still_serves(url):
    c, _ = accepted(DEFLATE_OFFER, url)
    roundtrip(c, MSG_1K, 15, 15)
    c.close()


def vm_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise Failure("no VmHWM in /proc/PID/status")


PROFILES = {
    "default": [t_no_offer, t_plain_offer, t_own_bytes_echoed, t_deflate_forms, t_fragmented_compressed,
                t_window_default_long_distance, t_offer_with_takeover_params,
                t_garbage_1007, t_garbage_in_continuation_1007, t_truncated_stream,
                t_invalid_utf8_after_inflate_1007, t_reserved_bits_1002,
                t_client_window_offered_value, t_quoted_value, t_fallback_offer,
                t_invalid_offers_declined, t_server_window_offered, t_server_window_8],
    "off": [t_off_declines, t_off_rsv1_1002],
    "limit": [t_limit_exact, t_limit_plus_one_1009, t_bomb_1009, t_bombs_in_parallel, t_limit_still_serves],
    "client-window-10": [t_client_window_10_bare, t_client_window_10_capped, t_client_window_10_not_offered],
    "server-window-10": [t_server_window_10, t_server_window_offered],
    "takeover": [t_takeover],
}

RSS_LIMIT_KIB = 64 * 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="default")
    ap.add_argument("--pid", type=int, help="server pid: its VmHWM must stay under 64 MiB")
    a = ap.parse_args()
    print(f"raw permessage-deflate checks, profile {a.profile}, against {a.url}")
    if a.pid:
        print(f"#    server VmHWM before: {vm_hwm_kib(a.pid)} KiB")
    failed = 0

    def on_alarm(*_):
        raise TimeoutError(f"step exceeded {STEP_TIMEOUT} s")

    signal.signal(signal.SIGALRM, on_alarm)
    for t in PROFILES[a.profile]:
        t0 = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, STEP_TIMEOUT)
        try:
            t(a.url)
            print(f"ok   {t.__name__} ({time.monotonic() - t0:.2f} s)")
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failed += 1
            print(f"FAIL {t.__name__}: {type(e).__name__}: {e}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    if a.pid:
        hwm = vm_hwm_kib(a.pid)
        ok = hwm < RSS_LIMIT_KIB
        print(f"{'ok  ' if ok else 'FAIL'} server VmHWM after the checks: {hwm} KiB (limit {RSS_LIMIT_KIB} KiB)")
        failed += not ok
    print(f"{len(PROFILES[a.profile]) + bool(a.pid) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))
    # Each step is bounded by its alarm (STEP_TIMEOUT); the whole run by
    # run.sh's `timeout`.
    sys.exit(main())
