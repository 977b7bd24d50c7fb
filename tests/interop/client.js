#!/usr/bin/env node
// Echo conversations with zerows through Node's `ws` (an independent client
// implementation): text, binary, fragmented (`fin: false`) and 16 MiB
// messages, an oversized message (1009), close codes echoed, pings answered
// with their payload; and permessage-deflate (RFC 7692): the extension
// negotiated as the profile expects on every connection, and byte-exact
// echoes of compressible and incompressible messages.
//
// Usage: node tests/interop/client.js ws://127.0.0.1:PORT/ [--profile P] [--steps a,b]
// Profiles (what ws offers; what the server was started with), as client.py:
//   on                ws's default offer (permessage-deflate; client_max_window_bits);
//                     server default: accepted with server_ and client_no_context_takeover
//   off               perMessageDeflate: false: nothing offered, nothing accepted
//   declined          the default offer; server --deflate off: declined
//   takeover          the default offer; server --deflate-client-takeover:
//                     accepted without client_no_context_takeover
//   client-window-10  the default offer; server --deflate-client-window-bits 10:
//                     accepted with client_max_window_bits=10
//   any               the default offer; server --deflate-window-bits 10: accepted
//                     with server_no_context_takeover, windows as the server likes
//   server-window-10  serverMaxWindowBits: 10; server default: accepted with
//                     server_max_window_bits <= 10 (ws itself would not insist)
// Every step runs; exits 0 if all passed, 1 otherwise (or on timeout).
'use strict';

const crypto = require('crypto');
const WebSocket = require('ws');

const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : undefined;
};
const PROFILE = flag('--profile') || 'on';
const STEPS_ARG = flag('--steps');
const URL = args[0] || 'ws://127.0.0.1:9001/';
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

// What each profile offers (the perMessageDeflate option) and expects of the
// answer's parameters (null: no extension accepted). A value is the exact
// parameter value (true for a flag), `undefined` its absence, a function a test.
const PROFILES = {
  on: [true, { server_no_context_takeover: true, client_no_context_takeover: true,
    server_max_window_bits: (v) => v === undefined || v === '15',
    client_max_window_bits: (v) => v === undefined || v === '15' }],
  off: [false, null],
  declined: [true, null],
  takeover: [true, { server_no_context_takeover: true, client_no_context_takeover: undefined }],
  'client-window-10': [true, { server_no_context_takeover: true, client_max_window_bits: '10' }],
  any: [true, { server_no_context_takeover: true }],
  'server-window-10': [{ serverMaxWindowBits: 10 },
    { server_max_window_bits: (v) => v !== undefined && v !== true && Number(v) <= 10 }],
};
if (!PROFILES[PROFILE]) {
  console.error(`unknown profile ${PROFILE}; one of ${Object.keys(PROFILES).join(', ')}`);
  process.exit(2);
}

/** The answer's Sec-WebSocket-Extensions -> [{name, params}]. */
function parseExtensions(header) {
  if (!header) return [];
  return header.split(',').map((el) => {
    const [name, ...ps] = el.split(';').map((x) => x.trim());
    const params = {};
    for (const p of ps) {
      const eq = p.indexOf('=');
      if (eq < 0) params[p] = true;
      else params[p.slice(0, eq).trim()] = p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    }
    return { name, params };
  });
}

function checkNegotiated(c, expect) {
  const what = `profile ${PROFILE}: answer ${JSON.stringify(c.extensions || '')}, ws.extensions ${JSON.stringify(c.ws.extensions)}`;
  if (expect === null) {
    check(!c.extensions && c.ws.extensions === '', `${what}: no extension expected`);
    return;
  }
  check(c.ws.extensions === 'permessage-deflate', `${what}: permessage-deflate not active`);
  const exts = parseExtensions(c.extensions);
  check(exts.length === 1 && exts[0].name === 'permessage-deflate', `${what}: not one permessage-deflate`);
  for (const [k, want] of Object.entries(expect)) {
    const got = exts[0].params[k];
    const ok = typeof want === 'function' ? want(got) : got === want;
    check(ok, `${what}: ${k} is ${got}, expected ${typeof want === 'function' ? want.toString() : want}`);
  }
}

/** A connection with a queue of received messages, pongs and the close;
 * its negotiated extension checked against the profile. `deflate` overrides
 * the profile's perMessageDeflate option's fields. */
function open(deflate) {
  const [offer, expect] = PROFILES[PROFILE];
  const perMessageDeflate = deflate && offer ? { ...(offer === true ? {} : offer), ...deflate } : offer;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(URL, { maxPayload: 64 * MIB, handshakeTimeout: 10_000, perMessageDeflate });
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
    ws.on('open', () => {
      try {
        checkNegotiated(c, expect);
      } catch (e) {
        ws.terminate();
        reject(e);
        return;
      }
      resolve(c);
    });
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

function jsonLike(n, seed) {
  let x = seed;
  const rnd = (m) => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % m;
  };
  const items = [];
  let size = 0;
  while (size < n) {
    const s = `{"id":${items.length},"user":"name-${rnd(1000)}","ok":${rnd(2) ? 'true' : 'false'},"score":${rnd(1e6)},"tags":["alpha","béta","γ"]}`;
    items.push(s);
    size += Buffer.byteLength(s) + 1;
  }
  return `[${items.join(',')}]`.slice(0, n);
}

/** Text repeating a 4 KiB random unit: compressible only with a window over 1 KiB. */
function farRepeats(n) {
  const unit = crypto.randomBytes(2048).toString('hex');
  return unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
}

const MULTIBYTE = 'héllo wörld — Grüße, ¿qué tal? 你好，世界 😀🌍 𝄞 '.repeat(40);

function same(m, msg) {
  return typeof msg === 'string'
    ? !m.isBinary && m.data.toString() === msg
    : m.isBinary && Buffer.compare(m.data, msg) === 0;
}

// Byte-exact echoes through the profile's compression: compressible JSON-like
// text (1 KiB, 200 KiB), 200 KiB whose repeats are 4 KiB apart, 64 KiB of
// random binary, an empty text, multi-byte UTF-8, the same message five times
// (context takeover), a burst of 100 small messages. With compression, once
// with ws's default threshold (messages under 1 KiB go uncompressed) and
// once with threshold 0 (every message compressed, the empty ones too).
async function deflateEcho() {
  const variants = PROFILES[PROFILE][0] ? [undefined, { threshold: 0 }] : [undefined];
  for (const variant of variants) {
    const c = await open(variant);
    const tag = variant ? ' (threshold 0)' : '';
    const msgs = [jsonLike(1024, 1), jsonLike(200 * 1024, 2), farRepeats(200 * 1024), crypto.randomBytes(64 * 1024),
      '', MULTIBYTE, '😀', Buffer.alloc(0)];
    for (const msg of msgs) {
      c.ws.send(msg);
      const m = await message(c);
      check(same(m, msg), `echo of a ${msg.length}-${typeof msg === 'string' ? 'char' : 'byte'} message differs${tag}`);
    }
    const repeated = jsonLike(3000, 5);
    for (let i = 0; i < 5; i++) {
      c.ws.send(repeated);
      check(same(await message(c), repeated), `repeat ${i} of the same message differs${tag}`);
    }
    const burst = Array.from({ length: 100 }, (_, i) => (i % 3 ? `small #${i} ✓ ${'x'.repeat(i % 17)}` : crypto.randomBytes(i)));
    burst.forEach((msg) => c.ws.send(msg));
    for (let i = 0; i < burst.length; i++) {
      check(same(await message(c), burst[i]), `burst message ${i} differs or is out of order${tag}`);
    }
    await closeWith(c);
  }
}

const STEPS = [textAndBinary, fragmented, sixteenMiB, closeCodes, pings, deflateEcho];

async function main() {
  console.log(`ws ${require('ws/package.json').version} against ${URL}, profile ${PROFILE}`);
  const byName = Object.fromEntries(STEPS.map((s) => [s.name, s]));
  const steps = STEPS_ARG ? STEPS_ARG.split(',').map((n) => byName[n] || (() => { throw new Error(`no step ${n}`); })()) : STEPS;
  let failed = 0;
  for (const step of steps) {
    try {
      await step();
      console.log(`ok   ${step.name}`);
    } catch (e) {
      failed += 1;
      console.error(`FAIL ${step.name}: ${e && e.message ? e.message : e}`);
    }
  }
  if (failed) throw new Error(`${failed} step(s) failed`);
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
