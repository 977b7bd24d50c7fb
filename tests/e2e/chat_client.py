#!/usr/bin/env python3
"""Python half of tests/e2e/chat.sh: a `websockets` client (pip install
websockets) in the chat example's rooms, driven by tests/e2e/chat.js.

Usage: chat_client.py --url http://127.0.0.1:PORT/ [--room e2e] [--other-room other]

At start it checks the room names the server must refuse (and one it must
accept), then holds two connections open: one in --room, one in
--other-room. It reports facts and leaves the judging to chat.js.

Protocol: one JSON object per line. Events on stdout; the first is
  {"event": "ready", "upgrades": [{"query": ..., "status": ...}, ...]}
then one reply per command read from stdin:
  {"cmd": "send", "texts": [...]}  sends them in order in --room
                                   -> {"event": "sent", "n": N}
  {"cmd": "received"}              -> {"event": "received", "room": [...],
                                       "other": [...], "closed": {...}}
                                   (every message so far, in arrival order;
                                   "closed": connections that ended, with
                                   their close code)
  {"cmd": "close"}                 closes both with 1000
                                   -> {"event": "closed", "codes": {...}}, exit 0
End of stdin: close and exit. Any error: {"event": "error", "message": ...}, exit 1.
"""

import argparse
import asyncio
import json
import sys
import urllib.parse

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

TIMEOUT = 10.0


def emit(**event):
    print(json.dumps(event, ensure_ascii=False), flush=True)


def ws_url(base, query):
    u = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit(("ws", u.netloc, "/", query, ""))


async def upgrade_status(url):
    """The HTTP status the server answers a WebSocket upgrade of `url` with."""
    try:
        async with connect(url, proxy=None, open_timeout=TIMEOUT, close_timeout=5, ping_interval=None):
            return 101
    except InvalidStatus as e:
        return e.response.status_code


class Member:
    """One connection in a room: everything it receives, in order."""

    def __init__(self, ws):
        self.ws = ws
        self.got = []
        self.closed = None
        self.task = asyncio.create_task(self.read())

    async def read(self):
        try:
            async for msg in self.ws:
                # A binary message would be a bug in the server: keep it, marked.
                self.got.append(msg if isinstance(msg, str) else f"<binary {msg.hex()}>")
        finally:
            self.closed = self.ws.close_code

    async def close(self):
        await self.ws.close(1000)
        await asyncio.wait_for(self.task, TIMEOUT)
        return self.ws.close_code


async def main(args):
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    # Room names: 1 to 64 of [A-Za-z0-9_-]; anything else is a 404 on the upgrade.
    queries = ["room=bad%20name", "room=" + "x" * 65, "room=", "room=caf%C3%A9", "room=" + "y" * 64]
    upgrades = []
    for q in queries:
        upgrades.append({"query": q, "status": await upgrade_status(ws_url(args.url, q))})

    opts = dict(proxy=None, open_timeout=TIMEOUT, close_timeout=5, ping_interval=None)
    room = Member(await connect(ws_url(args.url, "room=" + args.room), **opts))
    other = Member(await connect(ws_url(args.url, "room=" + args.other_room), **opts))
    emit(event="ready", upgrades=upgrades)

    while True:
        line = await stdin.readline()
        if not line:
            await room.close()
            await other.close()
            return
        cmd = json.loads(line)
        if cmd["cmd"] == "send":
            for text in cmd["texts"]:
                await asyncio.wait_for(room.ws.send(text), TIMEOUT)
            emit(event="sent", n=len(cmd["texts"]))
        elif cmd["cmd"] == "received":
            closed = {k: m.closed for k, m in (("room", room), ("other", other)) if m.task.done()}
            emit(event="received", room=room.got, other=other.got, closed=closed)
        elif cmd["cmd"] == "close":
            codes = {"room": await room.close(), "other": await other.close()}
            emit(event="closed", codes=codes)
            return
        else:
            raise ValueError(f"unknown command {cmd!r}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT/ of the chat server")
    p.add_argument("--room", default="e2e")
    p.add_argument("--other-room", default="other")
    try:
        asyncio.run(main(p.parse_args()))
    except Exception as e:  # noqa: BLE001 - reported to chat.js, which fails the test
        emit(event="error", message=f"{type(e).__name__}: {e}")
        sys.exit(1)
