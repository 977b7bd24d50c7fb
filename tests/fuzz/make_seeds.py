#!/usr/bin/env python3
"""Write the seed corpora under tests/fuzz/seeds/ (small, committed)."""
import os, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REQ = (b"GET / HTTP/1.1\r\nHost: localhost:9001\r\nUpgrade: websocket\r\n"
       b"Connection: Upgrade\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
       b"Sec-WebSocket-Version: 13\r\n\r\n")
KEY = bytes([0x11, 0x22, 0x33, 0x44])


def hdr(fin, op, n, mask=None, rsv=0):
    b0 = (0x80 if fin else 0) | rsv | op
    m = 0x80 if mask else 0
    if n < 126:
        h = bytes([b0, m | n])
    elif n < 65536:
        h = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, m | 127]) + struct.pack(">Q", n)
    return h + (mask or b"")


def cf(op, payload, fin=True, key=KEY, rsv=0):
    return hdr(fin, op, len(payload), key, rsv) + bytes(p ^ key[i % 4] for i, p in enumerate(payload))


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

# conn with permessage-deflate: byte 4 is 0x80 | offer << 5 | npieces (the
# offers of conn.rs: 0 plain, 1 client_max_window_bits, 2 declined by the
# server, 3 server_max_window_bits=10). RSV1 (0x40) on a message's first
# frame; its payload is raw deflate ending in a sync flush, tail cut.
RSV1 = 0x40

def pack(data, level=6):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\0\0\xff\xff")
    return out[:-4]

def packed(op, data, parts=1, level=6):
    p = pack(data, level)
    step = max(1, -(-len(p) // parts))
    cuts = [p[i:i + step] for i in range(0, len(p), step)] or [b""]
    keys = [KEY, bytes([9, 8, 7, 6]), bytes([0xff, 0, 0x7f, 1])]
    return b"".join(cf(op if i == 0 else 0, c, fin=i == len(cuts) - 1, key=keys[i % 3],
                       rsv=RSV1 if i == 0 else 0) for i, c in enumerate(cuts))

def dconn(name, cfg, offer, pieces, body):
    write("conn", name, bytes(cfg) + bytes([0x80 | offer << 5 | len(pieces)]) + bytes(pieces) + body)

js = b"".join(b'{"id":%d,"name":"z\xc3\xa9\xe2\x86\x92%d","ok":true},' % (i, i) for i in range(20))
dconn("deflate-echo", [0x42, 0, 0, 0xC0], 1, [0, 7],
      packed(1, js) + packed(2, bytes(i % 7 for i in range(700))) + cf(1, b"plain")
      + packed(1, b"") + cf(9, b"p") + cf(8, b"\x03\xe8"))
dconn("deflate-frag", [3, 0, 0, 0x81], 0, [2, 5],
      packed(1, utf * 20, parts=3) + packed(2, bytes(range(256)) * 4, parts=4, level=0))
# A ping between the fragments of a compressed message.
fr = pack(js)
dconn("deflate-frag-ping", [0x85, 0, 0, 2], 1, [],
      cf(1, fr[:9], fin=False, rsv=RSV1) + cf(9, b"mid") + cf(0, fr[9:30], fin=False) + cf(0, fr[30:]))
# 100,000 zero bytes in about 100: past a max_message of 1000.
dconn("deflate-bomb", [0xC2, 0, 6, 0x10], 1, [], packed(2, bytes(100_000)) + cf(1, b"never"))
# 1 MiB of zeros in about 1 KiB, past 65536, fragmented.
dconn("deflate-bomb-frag", [0xC6, 0, 7, 0x43], 0, [0xF2], packed(2, bytes(1 << 20), parts=3))
# Within max_message (1000) once inflated, though 1000 is near.
dconn("deflate-fits", [9, 0, 6, 0x20], 1, [], packed(1, b"a" * 1000))
dconn("deflate-broken", [2, 0, 0, 0x20], 1, [], cf(2, b"\xff\xff\xff", rsv=RSV1))
# Valid in its first frame, then (the cut sync flush's empty stored block
# completed) a block of the reserved type 3.
dconn("deflate-broken-later", [1, 0, 0, 0x7F], 1, [3],
      cf(2, pack(bytes(range(200))), fin=False, rsv=RSV1) + cf(0, b"\0\0\xff\xff\xff"))
# A compressed frame that announces 100 bytes and breaks in the 20 sent.
dconn("deflate-unfinished", [4, 0, 0, 0x50], 1, [],
      hdr(True, 2, 100, KEY, RSV1) + bytes(b ^ KEY[i % 4] for i, b in enumerate(pack(b"abc" * 9)[:8] + b"\xff" * 12)))
dconn("deflate-bad-utf8", [3, 0, 0, 9], 1, [], packed(1, b"ok " + utf + b"\xff no"))
dconn("deflate-cut-utf8", [3, 0, 0, 9], 0, [], packed(1, utf[:-1]))
dconn("deflate-binary-not-utf8", [3, 0, 0, 9], 1, [], packed(2, b"ok \xff no") + cf(8, b""))
dconn("deflate-rsv1-cont", [1, 0, 0, 3], 1, [],
      cf(1, b"ab", fin=False) + cf(0, pack(b"c"), rsv=RSV1))
dconn("deflate-rsv1-ping", [1, 0, 0, 3], 1, [], cf(9, b"", rsv=RSV1))
dconn("deflate-rsv2", [1, 0, 0, 3], 1, [], cf(1, pack(b"hello"), rsv=RSV1 | 0x20))
dconn("deflate-declined", [1, 0, 0, 3], 2, [], packed(1, b"hello"))
dconn("deflate-small-window", [0x48, 0, 0, 1], 3, [5], packed(1, js) + packed(2, bytes(3000), parts=2))
# A final block: the stream ends with the message (no tail), or before it.
fin = zlib.compressobj(6, zlib.DEFLATED, -15)
fin = fin.compress(b"final block") + fin.flush(zlib.Z_FINISH)
dconn("deflate-final-block", [4, 0, 0, 4], 1, [], cf(1, fin, rsv=RSV1) + cf(1, fin + b"\0", rsv=RSV1))

# client: whole/16, flags | npieces | pieces | server frames (unmasked);
# flags 0x10: permessage-deflate agreed, 0x20: the server keeps its context.
def sf(op, payload, fin=True, rsv=0):
    h = bytearray(hdr(fin, op, len(payload)))
    h[0] |= rsv
    return bytes(h) + payload

def client(name, whole, pieces, body, flags=0):
    write("client", name, bytes([whole, flags | len(pieces)]) + bytes(pieces) + body)

def spacked(op, data, parts=1, z=None):
    if z is None:
        p = pack(data)
    else:
        p = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
        p = p[:-4]
    step = max(1, -(-len(p) // parts))
    cuts = [p[i:i + step] for i in range(0, len(p), step)] or [b""]
    return b"".join(sf(op if i == 0 else 0, c, fin=i == len(cuts) - 1, rsv=RSV1 if i == 0 else 0)
                    for i, c in enumerate(cuts))

D, T = 0x10, 0x20
client("deflate", 4, [], spacked(1, js) + spacked(2, bytes(5000), parts=3) + sf(1, b"plain")
       + spacked(1, b"") + sf(8, b"\x03\xe8"), flags=D)
client("deflate-frag-ping", 0, [3, 1, 9], sf(1, fr[:9], fin=False, rsv=RSV1) + sf(9, b"mid")
       + sf(0, fr[9:30], fin=False) + sf(0, fr[30:]), flags=D)
zt = zlib.compressobj(6, zlib.DEFLATED, -15)
client("deflate-takeover", 2, [5], spacked(1, js, z=zt) + spacked(1, js, z=zt, parts=2), flags=D | T)
client("deflate-bomb", 1, [], spacked(2, bytes(1 << 20)), flags=D)
client("deflate-broken", 1, [], sf(2, b"\xff\xff\xff", rsv=RSV1), flags=D)
client("deflate-bad-utf8", 1, [2], spacked(1, b"ok " + utf + b"\xff no"), flags=D)
client("deflate-final-block", 1, [], sf(1, fin, rsv=RSV1) + sf(1, fin + b"\0", rsv=RSV1), flags=D)
client("deflate-rsv1-cont", 1, [], sf(1, b"ab", fin=False) + sf(0, pack(b"c"), rsv=RSV1), flags=D)

cut = "aé€𝄞z".encode()
client("text", 4, [], sf(1, b"Hello world!"))
client("fragments", 1, [1, 2, 3], sf(1, cut[:2], fin=False) + sf(9, b"p") + sf(0, cut[2:4], fin=False)
       + sf(0, cut[4:5], fin=False) + sf(10, b"") + sf(0, cut[5:]) + sf(8, b"\x03\xe8bye"))
client("binary", 0, [7], sf(2, bytes(range(256)) * 3) + sf(8, b""))
client("bad_utf8", 2, [1], sf(1, b"ok\xff", fin=False) + sf(0, b"x"))
client("masked", 2, [], bytes([0x81, 0x81, 1, 2, 3, 4, 0]))
client("close_bad", 2, [], sf(8, b"\x03\xed"))
