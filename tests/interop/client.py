#!/usr/bin/env python3
"""Echo conversations with zerows through Python's `websockets` (an
independent client implementation): text, binary, fragmented and 16 MiB
messages, an oversized message (1009), close codes echoed, pings answered
with their payload; and permessage-deflate (RFC 7692): the extension
negotiated as the profile expects on every connection, and byte-exact
echoes of compressible and incompressible messages.

Usage: python3 tests/interop/client.py ws://127.0.0.1:PORT/ [--profile P] [--steps a,b]
Profiles (what the client offers; what the server was started with):
  on                websockets' default offer (permessage-deflate;
                    client_max_window_bits); server default: deflate accepted
                    with server_ and client_no_context_takeover
  off               compression=None: nothing offered, nothing accepted
  declined          the default offer; server --deflate off: declined
  takeover          the default offer; server --deflate-client-takeover:
                    accepted without client_no_context_takeover
  client-window-10  the default offer; server --deflate-client-window-bits 10:
                    accepted with client_max_window_bits=10
  any               the default offer; server --deflate-window-bits 10:
                    accepted with server_no_context_takeover, windows as the
                    server likes (the echoes show it keeps to them)
  server-window-10  also server_max_window_bits=10; server default: accepted
                    with server_max_window_bits <= 10 (websockets itself
                    refuses an answer without it)
Exits 0 if every step passes, 1 if any failed, 2 on timeout. Every step has
its own timeout; the whole run is capped too.
"""

import argparse
import asyncio
import os
import random
import sys

import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, PerMessageDeflate

URL = "ws://127.0.0.1:9001/"
PROFILE = "on"
STEP_TIMEOUT = 30.0
TOTAL_TIMEOUT = float(os.environ.get("INTEROP_TIMEOUT", "120"))
MIB = 1 << 20


def fail(what: str) -> None:
    raise AssertionError(what)


def check(cond: bool, what: str) -> None:
    if not cond:
        fail(what)


# What each profile offers (connect()'s compression / extensions) and what
# it expects of the negotiated PerMessageDeflate (None: no extension at all).
PROFILES = {
    "on": ({}, {"remote_no_context_takeover": True, "local_no_context_takeover": True,
                "remote_max_window_bits": 15, "local_max_window_bits": 15}),
    "off": ({"compression": None}, None),
    "declined": ({}, None),
    "takeover": ({}, {"remote_no_context_takeover": True, "local_no_context_takeover": False}),
    "client-window-10": ({}, {"remote_no_context_takeover": True, "local_max_window_bits": 10}),
    "any": ({}, {"remote_no_context_takeover": True}),
    "server-window-10": ({"extensions": [ClientPerMessageDeflateFactory(
        server_max_window_bits=10, compress_settings={"memLevel": 5})], "compression": None},
        {"remote_max_window_bits": (lambda v: v <= 10, "<= 10")}),
}


class Client:
    """connect() with the profile's offer, checking the negotiated
    extension once open (an async context manager, like connect)."""

    def __init__(self, **kw):
        offer, self.expect = PROFILES[PROFILE]
        # max_size None: the server's own limit (16 MiB) is what is tested.
        self.cm = connect(URL, max_size=None, open_timeout=10, close_timeout=10, ping_interval=None, **offer, **kw)

    async def __aenter__(self):
        ws = await self.cm.__aenter__()
        try:
            check_negotiated(ws, self.expect)
        except BaseException:
            await self.cm.__aexit__(*sys.exc_info())
            raise
        return ws

    async def __aexit__(self, *exc):
        return await self.cm.__aexit__(*exc)


def check_negotiated(ws, expect) -> None:
    header = ws.response.headers.get("Sec-WebSocket-Extensions")
    exts = ws.protocol.extensions
    if expect is None:
        check(header is None and exts == [], f"profile {PROFILE}: no extension expected, got {header!r}")
        return
    check(len(exts) == 1 and isinstance(exts[0], PerMessageDeflate),
          f"profile {PROFILE}: PerMessageDeflate not active (header {header!r}, extensions {exts!r})")
    pmd = exts[0]
    for attr, want in expect.items():
        got = getattr(pmd, attr)
        ok = want[0](got) if isinstance(want, tuple) else got == want
        check(ok, f"profile {PROFILE}: {attr} = {got}, expected {want[1] if isinstance(want, tuple) else want} "
                  f"(answer {header!r})")


def open_ws():
    return Client()


def pattern(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


async def text_and_binary() -> None:
    async with open_ws() as ws:
        for msg in ["hello", "", "ζ unicode ✓ 😀", "x" * 125, "y" * 126, "z" * 65536]:
            await ws.send(msg)
            got = await ws.recv()
            check(got == msg, f"text echo of {len(msg)} chars differs")
        for msg in [b"\x00\x01\x02", b"", bytes(range(256)) * 300]:
            await ws.send(msg)
            got = await ws.recv()
            check(got == msg, f"binary echo of {len(msg)} bytes differs")


async def fragmented() -> None:
    async with open_ws() as ws:
        parts = ["frag", "mented ", "", "téxt ", "😀" * 1000]
        await ws.send(parts)  # an iterable: one message, one frame per part
        got = await ws.recv()
        check(got == "".join(parts), "fragmented text echo differs")
        bparts = [pattern(10, 1), pattern(70000, 2), b"", pattern(3, 3)]
        await ws.send(bparts)
        got = await ws.recv()
        check(got == b"".join(bparts), "fragmented binary echo differs")
        # The echo itself comes back fragmented for long messages: read it
        # frame by frame too.
        await ws.send(pattern(100000, 4))
        pieces = [p async for p in ws.recv_streaming()]
        check(b"".join(pieces) == pattern(100000, 4), "streamed echo differs")


async def sixteen_mib() -> None:
    async with open_ws() as ws:
        big = pattern(16 * MIB, 5)
        await ws.send(big)
        got = await ws.recv()
        check(got == big, "16 MiB binary echo differs")
        text = ("abcé€😀" * (16 * MIB // 14 + 1)).encode()[: 16 * MIB]
        text = text[: len(text.decode("utf-8", "ignore").encode())]
        msg = text.decode()
        await ws.send(msg)
        got = await ws.recv()
        check(got == msg, f"16 MiB text echo ({len(text)} bytes) differs")
    async with open_ws() as ws:
        await ws.send(bytes(16 * MIB + 1))
        try:
            await ws.recv()
            fail("16 MiB + 1 was echoed")
        except ConnectionClosed as e:
            check(e.rcvd is not None and e.rcvd.code == 1009,
                  f"16 MiB + 1: expected close 1009, got {e.rcvd}")


async def close_codes() -> None:
    for code, reason in [(1000, ""), (1001, "away"), (3000, "app"), (4000, "bye"), (4999, "ζ")]:
        async with open_ws() as ws:
            await ws.send("before close")
            check(await ws.recv() == "before close", "echo before close")
            await ws.close(code=code, reason=reason)
            check(ws.close_code == code, f"client closed with {code}, server answered {ws.close_code}")


async def pings() -> None:
    async with open_ws() as ws:
        for payload in [b"", b"ping", bytes(range(125)), "ζ".encode()]:
            waiter = await ws.ping(payload)
            # websockets resolves the waiter only for a pong with this payload.
            await asyncio.wait_for(waiter, STEP_TIMEOUT)
        # Pings between the fragments of a message.
        await ws.send(["a", "b", "c"])
        waiter = await ws.ping(b"mid")
        check(await ws.recv() == "abc", "echo around a ping")
        await asyncio.wait_for(waiter, STEP_TIMEOUT)


def json_like(n: int, seed: int) -> str:
    """Compressible text of about n bytes, with some non-ASCII."""
    rng = random.Random(seed)
    items = []
    size = 0
    while size < n:
        s = '{"id":%d,"user":"name-%d","ok":%s,"score":%d,"tags":["alpha","béta","γ"]}' % (
            len(items), rng.randrange(1000), rng.choice(["true", "false"]), rng.randrange(10**6))
        items.append(s)
        size += len(s.encode()) + 1
    return ("[" + ",".join(items) + "]")[:n]


def far_repeats(n: int, seed: int) -> str:
    """Text repeating a 4 KiB random unit: compressible only with a window over 1 KiB."""
    unit = random.Random(seed).randbytes(3072).hex()[:4096]
    return (unit * (n // 4096 + 1))[:n]


MULTIBYTE = "héllo wörld — Grüße, ¿qué tal? 你好，世界 😀🌍 𝄞 " * 40


async def deflate_echo() -> None:
    """Byte-exact echoes through the profile's compression: compressible
    JSON-like text (1 KiB, 200 KiB), 200 KiB whose repeats are 4 KiB apart,
    64 KiB of random binary, an empty text, multi-byte UTF-8, the same
    message five times (context takeover), a burst of 100 small messages."""
    async with open_ws() as ws:
        msgs = [json_like(1024, 1), json_like(200 * 1024, 2), far_repeats(200 * 1024, 3),
                pattern(64 * 1024, 4), "", MULTIBYTE, "😀", b""]
        for msg in msgs:
            await ws.send(msg)
            got = await ws.recv()
            check(type(got) is type(msg), f"sent {type(msg).__name__}, echo is {type(got).__name__}")
            check(got == msg, f"echo of {len(msg)}-{'byte' if isinstance(msg, bytes) else 'char'} message differs")
        same = json_like(3000, 5)
        for i in range(5):
            await ws.send(same)
            check(await ws.recv() == same, f"repeat {i} of the same message differs")
        burst = [f"small #{i} ✓ {'x' * (i % 17)}" if i % 3 else pattern(i, i) for i in range(100)]
        for msg in burst:
            await ws.send(msg)
        for i, msg in enumerate(burst):
            got = await ws.recv()
            check(got == msg, f"burst message {i} differs or is out of order: {got!r:.60}")


STEPS = [text_and_binary, fragmented, sixteen_mib, close_codes, pings, deflate_echo]


async def main(steps) -> int:
    print(f"websockets {websockets.__version__} against {URL}, profile {PROFILE}")
    status = 0
    for step in steps:
        try:
            await asyncio.wait_for(step(), STEP_TIMEOUT)
        except asyncio.TimeoutError:
            print(f"FAIL {step.__name__}: timed out after {STEP_TIMEOUT} s", file=sys.stderr)
            status = max(status, 2)
            continue
        except Exception as e:  # noqa: BLE001 - any failure is reported
            print(f"FAIL {step.__name__}: {type(e).__name__}: {e}", file=sys.stderr)
            status = max(status, 1)
            continue
        print(f"ok   {step.__name__}")
    return status


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("url", nargs="?", default=URL)
    ap.add_argument("--profile", choices=sorted(PROFILES), default=PROFILE)
    ap.add_argument("--steps", help="comma-separated step names (default: all)")
    a = ap.parse_args()
    URL, PROFILE = a.url, a.profile
    by_name = {s.__name__: s for s in STEPS}
    steps = [by_name[n] for n in a.steps.split(",")] if a.steps else STEPS
    try:
        sys.exit(asyncio.run(asyncio.wait_for(main(steps), TOTAL_TIMEOUT)))
    except asyncio.TimeoutError:
        print(f"FAIL: run exceeded {TOTAL_TIMEOUT} s", file=sys.stderr)
        sys.exit(2)
