#!/usr/bin/env python3
"""A peer server on Python's `websockets` for the zerows client's interop
scenarios (examples/client_interop.rs). Its twin on Node's `ws` is
echo_server.js; both must behave alike:

  /refuse        the upgrade is answered 403 with a short body;
  /close-now     a close 4003 "at once" as soon as the connection opens;
  /greet         first a ping "hello-ping", a text message in three frames
                 (a ping "mid" between the first two, a code point cut
                 between the last two), a binary message in three frames,
                 then, once both pongs are in, "pongs: hello-ping mid";
                 then as any other path;
  any other      echo, except for these text messages:
    close CODE [REASON]   close with CODE ("none": a close without a code)
    close-of TOKEN        "CODE REASON" of the close the server received on
                          the connection opened with ?id=TOKEN (waits for it)
    big N                 a binary message of N bytes
    bad-utf8              a text message in three frames, the last not UTF-8
    slow                  "slow message" in two frames, 300 ms apart
    drop                  the TCP connection ended without a close
    header NAME           the request header's value ("" if absent)
    subprotocol           the subprotocol chosen ("" if none)
    path                  the request target, query included

"chat" is chosen when offered. Messages up to 64 MiB are accepted.
permessage-deflate is accepted when offered, with the library's defaults
(the server keeps its context; it limits the client's window to 12 bits).

Usage: python3 echo_server.py PORT [LIFETIME_SECONDS]
PORT 0 lets the kernel choose; the first line on stdout is
"listening on ws://127.0.0.1:PORT/". The server exits on SIGTERM or
SIGINT, or after LIFETIME_SECONDS (default 600) should nobody stop it.
"""

import asyncio
import signal
import sys
import urllib.parse
from http import HTTPStatus

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

MIB = 1 << 20
MAX_MESSAGE = 64 * MIB
REFUSAL = "refused by the test server\n"
# How long close-of waits for the connection it asks about to end.
CLOSE_OF_WAIT = 10.0

# TOKEN -> (code, reason) of the close received on that connection.
closes: dict[str, tuple[int, str]] = {}


def split_target(target: str) -> tuple[str, str | None]:
    parts = urllib.parse.urlsplit(target)
    token = urllib.parse.parse_qs(parts.query).get("id", [None])[0]
    return parts.path, token


def process_request(connection, request):
    path, _ = split_target(request.path)
    if path == "/refuse":
        return connection.respond(HTTPStatus.FORBIDDEN, REFUSAL)
    return None


def select_subprotocol(_connection, offered):
    # Without a subprotocol offered the connection goes on with none (the
    # library's default would refuse it).
    return "chat" if "chat" in offered else None


async def greet(ws) -> None:
    first = await ws.ping(b"hello-ping")
    pongs = [first]

    async def text_frames():
        yield b"frag"
        # Between the frames of a message: control frames may interleave.
        pongs.append(await ws.ping(b"mid"))
        yield b"mented gr\xc3"
        yield b"\xa9eting"

    await ws.send(text_frames(), text=True)
    await ws.send([bytes(range(256)) * 4, b"", bytes(i * 7 % 251 for i in range(70000))])
    await asyncio.wait_for(asyncio.gather(*pongs), 10)
    await ws.send("pongs: hello-ping mid")


async def close_of(token: str) -> str:
    # Bounded wait: the connection being asked about may still be ending.
    for _ in range(int(CLOSE_OF_WAIT / 0.01)):
        if token in closes:
            code, reason = closes[token]
            return f"{code} {reason}"
        await asyncio.sleep(0.01)
    return "unknown"


async def command(ws, msg: str) -> bool:
    """Answer a command message; False if it is not one (echo it)."""
    verb, _, rest = msg.partition(" ")
    if verb == "close" and rest:
        code, _, reason = rest.partition(" ")
        await ws.close(None if code == "none" else int(code), reason)
    elif verb == "close-of" and rest:
        await ws.send(await close_of(rest))
    elif verb == "big" and rest.isdigit() and int(rest) <= MAX_MESSAGE:
        await ws.send(bytes(int(rest)))
    elif msg == "bad-utf8":
        await ws.send([b"valid ", b"\xce", b"\xba\xff"], text=True)
    elif msg == "slow":

        async def slow_frames():
            yield "slow "
            await asyncio.sleep(0.3)
            yield "message"

        await ws.send(slow_frames())
    elif msg == "drop":
        ws.transport.abort()
    elif verb == "header" and rest:
        await ws.send(ws.request.headers.get(rest, ""))
    elif msg == "subprotocol":
        await ws.send(ws.subprotocol or "")
    elif msg == "path":
        await ws.send(ws.request.path)
    else:
        return False
    return True


async def handler(ws) -> None:
    path, token = split_target(ws.request.path)
    try:
        if path == "/close-now":
            await ws.close(4003, "at once")
        if path == "/greet":
            await greet(ws)
        async for msg in ws:
            if isinstance(msg, str) and await command(ws, msg):
                continue
            await ws.send(msg)
    except ConnectionClosed:
        pass
    finally:
        if token is not None:
            await ws.wait_closed()
            closes[token] = (ws.close_code, ws.close_reason or "")


async def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    lifetime = float(sys.argv[2]) if len(sys.argv) > 2 else 600.0
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(
            sig, lambda: stop.done() or stop.set_result(None)
        )
    async with serve(
        handler,
        "127.0.0.1",
        port,
        process_request=process_request,
        select_subprotocol=select_subprotocol,
        compression="deflate",
        max_size=MAX_MESSAGE,
        # No keepalive pings: scenarios check every frame the server sends.
        ping_interval=None,
        close_timeout=5,
    ) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{bound}/", flush=True)
        try:
            await asyncio.wait_for(stop, lifetime)
        except asyncio.TimeoutError:
            print(f"lifetime of {lifetime} s over: exiting", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
