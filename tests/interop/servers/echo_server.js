#!/usr/bin/env node
// A peer server on Node's `ws` for the zerows client's interop scenarios
// (examples/client_interop.rs). Its twin on Python's `websockets` is
// echo_server.py; both must behave alike:
//
//   /refuse        the upgrade is answered 403 with a short body;
//   /close-now     a close 4003 "at once" as soon as the connection opens;
//   /greet         first a ping "hello-ping", a text message in three frames
//                  (a ping "mid" between the first two, a code point cut
//                  between the last two), a binary message in three frames,
//                  then, once both pongs are in, "pongs: hello-ping mid";
//                  then as any other path;
//   any other      echo, except for these text messages:
//     close CODE [REASON]   close with CODE ("none": a close without a code)
//     close-of TOKEN        "CODE REASON" of the close the server received on
//                           the connection opened with ?id=TOKEN (waits for it)
//     big N                 a binary message of N bytes
//     bad-utf8              a text message in three frames, the last not UTF-8
//     slow                  "slow message" in two frames, 300 ms apart
//     drop                  the TCP connection ended without a close
//     header NAME           the request header's value ("" if absent)
//     subprotocol           the subprotocol chosen ("" if none)
//     path                  the request target, query included
//
// "chat" is chosen when offered. Messages up to 64 MiB are accepted.
// permessage-deflate is accepted when offered, with the library's defaults
// (the server keeps its context; messages under 1 KiB go uncompressed).
//
// Usage: node echo_server.js PORT [LIFETIME_SECONDS]
// PORT 0 lets the kernel choose; the first line on stdout is
// "listening on ws://127.0.0.1:PORT/". The server exits on SIGTERM or
// SIGINT, or after LIFETIME_SECONDS (default 600) should nobody stop it.
'use strict';

const { WebSocketServer } = require('ws');

const MIB = 1 << 20;
const MAX_MESSAGE = 64 * MIB;
const REFUSAL = 'refused by the test server\n';
// How long close-of waits for the connection it asks about to end.
const CLOSE_OF_WAIT_MS = 10_000;

const port = Number(process.argv[2] || 0);
const lifetimeMs = Number(process.argv[3] || 600) * 1000;

// TOKEN -> { code, reason } of the close received on that connection.
const closes = new Map();

function splitTarget(target) {
  const url = new URL(target, 'http://127.0.0.1');
  return { path: url.pathname, token: url.searchParams.get('id') };
}

function greet(ws) {
  const awaited = new Set(['hello-ping', 'mid']);
  ws.on('pong', (data) => {
    if (awaited.delete(data.toString()) && awaited.size === 0) {
      ws.send('pongs: hello-ping mid');
    }
  });
  ws.ping(Buffer.from('hello-ping'));
  ws.send(Buffer.from('frag'), { binary: false, fin: false });
  // Between the frames of a message: control frames may interleave.
  ws.ping(Buffer.from('mid'));
  ws.send(Buffer.from('mented gr\xc3', 'latin1'), { binary: false, fin: false });
  ws.send(Buffer.from('\xa9eting', 'latin1'), { binary: false, fin: true });
  const first = Buffer.alloc(1024, 0).map((_, i) => i % 256);
  const third = Buffer.alloc(70000, 0).map((_, i) => (i * 7) % 251);
  ws.send(first, { binary: true, fin: false });
  ws.send(Buffer.alloc(0), { binary: true, fin: false });
  ws.send(third, { binary: true, fin: true });
}

function closeOf(ws, token) {
  // Bounded wait: the connection being asked about may still be ending.
  const until = Date.now() + CLOSE_OF_WAIT_MS;
  const attempt = () => {
    const c = closes.get(token);
    if (c) {
      ws.send(`${c.code} ${c.reason}`);
    } else if (Date.now() >= until) {
      ws.send('unknown');
    } else {
      setTimeout(attempt, 10);
    }
  };
  attempt();
}

/** Answer a command message; false if it is not one (echo it). */
function command(ws, req, msg) {
  const space = msg.indexOf(' ');
  const verb = space < 0 ? msg : msg.slice(0, space);
  const rest = space < 0 ? '' : msg.slice(space + 1);
  if (verb === 'close' && rest) {
    const at = rest.indexOf(' ');
    const code = at < 0 ? rest : rest.slice(0, at);
    const reason = at < 0 ? '' : rest.slice(at + 1);
    if (code === 'none') ws.close();
    else ws.close(Number(code), reason);
  } else if (verb === 'close-of' && rest) {
    closeOf(ws, rest);
  } else if (verb === 'big' && /^[0-9]+$/.test(rest) && Number(rest) <= MAX_MESSAGE) {
    ws.send(Buffer.alloc(Number(rest)));
  } else if (msg === 'bad-utf8') {
    ws.send(Buffer.from('valid '), { binary: false, fin: false });
    ws.send(Buffer.from([0xce]), { binary: false, fin: false });
    ws.send(Buffer.from([0xba, 0xff]), { binary: false, fin: true });
  } else if (msg === 'slow') {
    ws.send('slow ', { fin: false });
    setTimeout(() => ws.send('message', { fin: true }), 300);
  } else if (msg === 'drop') {
    ws.terminate();
  } else if (verb === 'header' && rest) {
    const v = req.headers[rest.toLowerCase()];
    ws.send(v === undefined ? '' : String(v));
  } else if (msg === 'subprotocol') {
    ws.send(ws.protocol);
  } else if (msg === 'path') {
    ws.send(req.url);
  } else {
    return false;
  }
  return true;
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: MAX_MESSAGE,
  perMessageDeflate: true,
  clientTracking: true,
  verifyClient: (info, done) => {
    if (splitTarget(info.req.url).path === '/refuse') done(false, 403, REFUSAL);
    else done(true);
  },
  // Without a subprotocol offered the connection goes on with none.
  handleProtocols: (offered) => (offered.has('chat') ? 'chat' : false),
});

wss.on('connection', (ws, req) => {
  const { path, token } = splitTarget(req.url);
  ws.on('message', (data, isBinary) => {
    if (!isBinary && command(ws, req, data.toString())) return;
    ws.send(data, { binary: isBinary });
  });
  ws.on('close', (code, reason) => {
    if (token !== null) closes.set(token, { code, reason: reason.toString() });
  });
  ws.on('error', (e) => console.error(`connection error: ${e.message}`));
  if (path === '/close-now') ws.close(4003, 'at once');
  if (path === '/greet') greet(ws);
});

wss.on('listening', () => {
  console.log(`listening on ws://127.0.0.1:${wss.address().port}/`);
});

function stop() {
  clearTimeout(lifetime);
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
}

const lifetime = setTimeout(() => {
  console.log(`lifetime of ${lifetimeMs / 1000} s over: exiting`);
  stop();
}, lifetimeMs);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
