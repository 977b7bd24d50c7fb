#!/usr/bin/env python3
"""Echo conversations with zerows through Python's `websockets` (an
independent client implementation): text, binary, fragmented and 16 MiB
messages, an oversized message (1009), close codes echoed, pings answered
with their payload.

Usage: python3 tests/interop/client.py ws://127.0.0.1:PORT/
Exits 0 if every check passes, 1 on the first mismatch, 2 on timeout.
Every conversation has its own timeout; the whole run is capped too.
"""

import asyncio
import os
import random
import sys

import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

URL = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:9001/"
STEP_TIMEOUT = 30.0
TOTAL_TIMEOUT = float(os.environ.get("INTEROP_TIMEOUT", "120"))
MIB = 1 << 20


def fail(what: str) -> None:
    raise AssertionError(what)


def check(cond: bool, what: str) -> None:
    if not cond:
        fail(what)


def open_ws():
    # max_size None: the server's own limit (16 MiB) is what is tested.
    # Compression is offered (the default) and must be declined.
    return connect(URL, max_size=None, open_timeout=10, close_timeout=10, ping_interval=None)


def pattern(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


async def text_and_binary() -> None:
    async with open_ws() as ws:
        check(ws.response.headers.get("Sec-WebSocket-Extensions") is None,
              "server accepted an extension it does not implement")
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


async def main() -> int:
    print(f"websockets {websockets.__version__} against {URL}")
    for step in [text_and_binary, fragmented, sixteen_mib, close_codes, pings]:
        try:
            await asyncio.wait_for(step(), STEP_TIMEOUT)
        except asyncio.TimeoutError:
            print(f"FAIL {step.__name__}: timed out after {STEP_TIMEOUT} s", file=sys.stderr)
            return 2
        except Exception as e:  # noqa: BLE001 - any failure is reported
            print(f"FAIL {step.__name__}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(f"ok   {step.__name__}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(asyncio.wait_for(main(), TOTAL_TIMEOUT)))
    except asyncio.TimeoutError:
        print(f"FAIL: run exceeded {TOTAL_TIMEOUT} s", file=sys.stderr)
        sys.exit(2)
