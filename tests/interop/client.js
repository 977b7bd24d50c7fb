#!/usr/bin/env node
// Echo conversations with zerows through Node's `ws` (an independent client
// implementation): text, binary, fragmented (`fin: false`) and 16 MiB
// messages, an oversized message (1009), close codes echoed, pings answered
// with their payload.
//
// Usage: node tests/interop/client.js ws://127.0.0.1:PORT/
// Exits 0 if every check passes, 1 on the first mismatch or on timeout.
'use strict';

const crypto = require('crypto');
const WebSocket = require('ws');

const URL = process.argv[2] || 'ws://127.0.0.1:9001/';
const STEP_TIMEOUT_MS = 30_000;
const TOTAL_TIMEOUT_MS = Number(process.env.INTEROP_TIMEOUT || 120) * 1000;
const MIB = 1 << 20;

const total = setTimeout(() => {
  console.error(`FAIL: run exceeded ${TOTAL_TIMEOUT_MS} ms`);
  process.exit(1);
}, TOTAL_TIMEOUT_MS);

function check(cond, what) {
  if (!cond) throw new Error(what);
}

/** A connection with a queue of received messages, pongs and the close. */
function open() {
  return new Promise((resolve, reject) => {
    // perMessageDeflate is offered (the default) and must be declined.
    const ws = new WebSocket(URL, { maxPayload: 64 * MIB, handshakeTimeout: 10_000 });
    const c = { ws, messages: [], pongs: [], waiters: [], closed: null };
    const wake = () => {
      const w = c.waiters;
      c.waiters = [];
      w.forEach((f) => f());
    };
    ws.on('message', (data, isBinary) => {
      c.messages.push({ data, isBinary });
      wake();
    });
    ws.on('pong', (data) => {
      c.pongs.push(data);
      wake();
    });
    ws.on('close', (code, reason) => {
      c.closed = { code, reason: reason.toString() };
      wake();
    });
    ws.on('error', (e) => {
      c.error = e;
      wake();
      reject(e);
    });
    ws.on('upgrade', (res) => {
      c.extensions = res.headers['sec-websocket-extensions'];
    });
    ws.on('open', () => resolve(c));
  });
}

/** Wait until `pick(c)` returns something other than undefined. */
function next(c, what, pick) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), STEP_TIMEOUT_MS);
    const attempt = () => {
      const v = pick(c);
      if (v !== undefined) {
        clearTimeout(timer);
        resolve(v);
      } else if (c.closed && what !== 'close') {
        clearTimeout(timer);
        reject(new Error(`connection closed (${c.closed.code}) while waiting for ${what}`));
      } else {
        c.waiters.push(attempt);
      }
    };
    attempt();
  });
}

const message = (c) => next(c, 'a message', (x) => x.messages.shift());
const pong = (c) => next(c, 'a pong', (x) => x.pongs.shift());
const closed = (c) => next(c, 'close', (x) => x.closed || undefined);

async function closeWith(c, code = 1000) {
  c.ws.close(code);
  const cl = await closed(c);
  check(cl.code === code, `closed with ${code}, server answered ${cl.code}`);
}

async function textAndBinary() {
  const c = await open();
  check(!c.extensions, `server accepted an extension it does not implement: ${c.extensions}`);
  for (const msg of ['hello', '', 'ζ unicode ✓ 😀', 'x'.repeat(125), 'y'.repeat(126), 'z'.repeat(65536)]) {
    c.ws.send(msg);
    const m = await message(c);
    check(!m.isBinary && m.data.toString() === msg, `text echo of ${msg.length} chars differs`);
  }
  for (const msg of [Buffer.from([0, 1, 2]), Buffer.alloc(0), crypto.randomBytes(200_000)]) {
    c.ws.send(msg);
    const m = await message(c);
    check(m.isBinary && Buffer.compare(m.data, msg) === 0, `binary echo of ${msg.length} bytes differs`);
  }
  await closeWith(c);
}

async function fragmented() {
  const c = await open();
  const parts = ['frag', 'mented ', '', 'téxt ', '😀'.repeat(1000)];
  parts.forEach((p, i) => c.ws.send(p, { fin: i === parts.length - 1 }));
  let m = await message(c);
  check(!m.isBinary && m.data.toString() === parts.join(''), 'fragmented text echo differs');
  const bparts = [crypto.randomBytes(10), crypto.randomBytes(70_000), Buffer.alloc(0), crypto.randomBytes(3)];
  bparts.forEach((p, i) => c.ws.send(p, { binary: true, fin: i === bparts.length - 1 }));
  m = await message(c);
  check(m.isBinary && Buffer.compare(m.data, Buffer.concat(bparts)) === 0, 'fragmented binary echo differs');
  // A ping between the fragments is answered at once.
  c.ws.send('before ', { fin: false });
  c.ws.ping(Buffer.from('between'));
  const p = await pong(c);
  check(p.toString() === 'between', `pong between fragments: ${p}`);
  c.ws.send('after', { fin: true });
  m = await message(c);
  check(m.data.toString() === 'before after', 'message around a ping differs');
  await closeWith(c);
}

async function sixteenMiB() {
  let c = await open();
  const big = crypto.randomBytes(16 * MIB);
  c.ws.send(big);
  let m = await message(c);
  check(m.isBinary && Buffer.compare(m.data, big) === 0, '16 MiB binary echo differs');
  let text = Buffer.from('abcé€😀'.repeat(Math.ceil((16 * MIB) / 14))).subarray(0, 16 * MIB).toString();
  // Cut at a code point boundary: at most 16 MiB of valid UTF-8.
  text = text.replace(/\uFFFD+$/, '');
  c.ws.send(text);
  m = await message(c);
  check(!m.isBinary && m.data.toString() === text, `16 MiB text echo (${Buffer.byteLength(text)} bytes) differs`);
  await closeWith(c);

  c = await open();
  c.ws.send(Buffer.alloc(16 * MIB + 1));
  const cl = await closed(c);
  check(cl.code === 1009, `16 MiB + 1: expected close 1009, got ${cl.code}`);
  check(c.messages.length === 0, '16 MiB + 1 was echoed');
}

async function closeCodes() {
  for (const [code, reason] of [[1000, ''], [1001, 'away'], [3000, 'app'], [4000, 'bye'], [4999, 'ζ']]) {
    const c = await open();
    c.ws.send('before close');
    const m = await message(c);
    check(m.data.toString() === 'before close', 'echo before close');
    c.ws.close(code, reason);
    const cl = await closed(c);
    check(cl.code === code, `client closed with ${code}, server answered ${cl.code}`);
  }
}

async function pings() {
  const c = await open();
  for (const payload of [Buffer.alloc(0), Buffer.from('ping'), crypto.randomBytes(125), Buffer.from('ζ')]) {
    c.ws.ping(payload);
    const p = await pong(c);
    check(Buffer.compare(p, payload) === 0, `pong payload differs for a ${payload.length}-byte ping`);
  }
  await closeWith(c);
}

async function main() {
  console.log(`ws ${require('ws/package.json').version} against ${URL}`);
  for (const step of [textAndBinary, fragmented, sixteenMiB, closeCodes, pings]) {
    await step();
    console.log(`ok   ${step.name}`);
  }
}

main().then(
  () => {
    clearTimeout(total);
    process.exit(0);
  },
  (e) => {
    console.error(`FAIL: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  },
);
