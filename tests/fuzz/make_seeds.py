#!/usr/bin/env python3
"""Write the seed corpora under tests/fuzz/seeds/ (small, committed)."""
import os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
REQ = (b"GET / HTTP/1.1\r\nHost: localhost:9001\r\nUpgrade: websocket\r\n"
       b"Connection: Upgrade\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
       b"Sec-WebSocket-Version: 13\r\n\r\n")
KEY = bytes([0x11, 0x22, 0x33, 0x44])


def hdr(fin, op, n, mask=None):
    b0 = (0x80 if fin else 0) | op
    m = 0x80 if mask else 0
    if n < 126:
        h = bytes([b0, m | n])
    elif n < 65536:
        h = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, m | 127]) + struct.pack(">Q", n)
    return h + (mask or b"")


def cf(op, payload, fin=True, key=KEY):
    return hdr(fin, op, len(payload), key) + bytes(p ^ key[i % 4] for i, p in enumerate(payload))


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# handshake: selector byte (low 3 bits: split bytes), splits, head.
heads = {
    "upgrade": REQ,
    "proto": REQ[:-2] + b"Sec-WebSocket-Protocol: superchat, chat\r\nOrigin: http://example.com\r\n\r\n",
    "page": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "metrics": b"GET /metrics HTTP/1.1\r\n\r\n",
    "v10": b"GET / HTTP/1.0\r\nUpgrade: websocket\r\n\r\n",
    "post": b"POST / HTTP/1.1\r\nHost: a\r\n\r\nbody",
    "lf": b"GET / HTTP/1.1\nHost: a\n\n\r\n\r\n",
    "badkey": REQ.replace(b"x3JJHMbDL1EzLkh9GBhXDw==", b"AAAA"),
    "version": REQ.replace(b"Version: 13", b"Version: 8"),
}
for name, h in heads.items():
    write("handshake", name, b"\x00" + h)
    write("handshake", name + "-split", b"\x23\x00\x05\x02" + h + cf(1, b"hi"))

# frame: headers in every length form, both roles.
frames = {
    "text": hdr(True, 1, 5, KEY), "bin126": hdr(True, 2, 126, KEY),
    "bin64k": hdr(False, 2, 70000, KEY), "ping": hdr(True, 9, 125, KEY),
    "close": hdr(True, 8, 2), "nonmin": bytes([0x82, 0xFE, 0, 5]) + KEY,
    "server": hdr(True, 1, 300), "cont": hdr(False, 0, 0),
}
for name, h in frames.items():
    write("frame", name, h)

# conn: chunk, extra buffer, max_message, chunk2, npieces | pieces | frames
def conn(name, cfg, pieces, body):
    write("conn", name, bytes(cfg) + bytes([len(pieces)]) + bytes(pieces) + body)

utf = "héllo wörld €𝄞".encode()
conn("echo", [2, 0, 0, 0xC0], [0, 1, 6], cf(1, b"hello") + cf(2, bytes(range(10))) + cf(9, b"p") + cf(8, b"\x03\xe8"))
conn("frag", [0, 0, 0, 0x42], [2, 3], cf(1, utf[:5], fin=False) + cf(9, b"") + cf(0, utf[5:9], fin=False) + cf(0, utf[9:]))
conn("utf8-bad", [1, 3, 0, 5], [0], cf(1, utf[:6] + b"\xc3\x28"))
conn("long", [0x80 | 20, 0, 0, 3], [50, 9], cf(2, bytes(300)) + cf(1, "é".encode() * 200))
conn("big16", [0xC1, 0, 0, 0x81], [0xF3], cf(2, bytes(5000)))
conn("toobig", [4, 0, 4, 1], [1], cf(1, b"x" * 99) + cf(1, b"y" * 150))
conn("badclose", [3, 0, 0, 7], [4], cf(8, b"\x03"))
conn("closereason", [3, 0, 0, 7], [4], cf(8, b"\x0f\xa0" + utf))
conn("unmasked", [0, 0, 0, 0], [], hdr(True, 1, 2) + b"hi")
conn("cont-first", [0, 0, 0, 0], [], cf(0, b"x"))
conn("pong-close", [7, 1, 0, 9], [1, 1, 1], cf(10, b"zz") + cf(8, b"") + cf(1, b"after"))

# client: whole/16, npieces | pieces | server frames (unmasked)
def sf(op, payload, fin=True):
    return hdr(fin, op, len(payload)) + payload

def client(name, whole, pieces, body):
    write("client", name, bytes([whole, len(pieces)]) + bytes(pieces) + body)

cut = "aé€𝄞z".encode()
client("text", 4, [], sf(1, b"Hello world!"))
client("fragments", 1, [1, 2, 3], sf(1, cut[:2], fin=False) + sf(9, b"p") + sf(0, cut[2:4], fin=False)
       + sf(0, cut[4:5], fin=False) + sf(10, b"") + sf(0, cut[5:]) + sf(8, b"\x03\xe8bye"))
client("binary", 0, [7], sf(2, bytes(range(256)) * 3) + sf(8, b""))
client("bad_utf8", 2, [1], sf(1, b"ok\xff", fin=False) + sf(0, b"x"))
client("masked", 2, [], bytes([0x81, 0x81, 1, 2, 3, 4, 0]))
client("close_bad", 2, [], sf(8, b"\x03\xed"))
