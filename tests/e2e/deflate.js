#!/usr/bin/env node
// permessage-deflate (RFC 7692) in a real browser: on the zerows page, in
// Debian's headless Chromium (playwright-core, no browser download), open
// WebSockets from the page's own origin and echo compressible and
// incompressible text and binary (ArrayBuffer) messages, byte-exact.
// Chromium always offers "permessage-deflate; client_max_window_bits".
//
// Usage: node tests/e2e/deflate.js URL --expect on|off|window-10|takeover
//   --expect on         the server was started with deflate on (its default):
//                       ws.extensions must name permessage-deflate
//   --expect off        started with --deflate off: ws.extensions must be ""
//   --expect window-10  started with --deflate-client-window-bits 10: Chromium's
//                       bare client_max_window_bits lets the server say, so
//                       the answer has client_max_window_bits=10 (RFC 7692 §7.1.2.2)
//   --expect takeover   started with --deflate-client-takeover: the answer lacks
//                       client_no_context_takeover, so Chromium keeps its context
// Environment:
//   CHROMIUM          browser binary (default /usr/bin/chromium)
//   E2E_TIMEOUT_MS    whole-test budget (default 90000)
// tests/e2e/run.sh starts the servers and runs this against them.
//
// Prints one line per check and "deflate: N passed, N failed"; exits 1 if any failed.
"use strict";

const { chromium } = require("playwright-core");

const args = process.argv.slice(2);
const ei = args.indexOf("--expect");
const expect = ei >= 0 ? args.splice(ei, 2)[1] : "on";
const base = args[0] || process.env.ZEROWS_URL;
const EXPECTS = ["on", "off", "window-10", "takeover"];
if (!base || !EXPECTS.includes(expect)) {
  console.error(`usage: node deflate.js http://127.0.0.1:PORT/ --expect ${EXPECTS.join("|")}`);
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const budget = Number(process.env.E2E_TIMEOUT_MS || 90000);
const STEP_MS = 20000;

let passed = 0;
let failed = 0;
let browser = null;

async function finish(code) {
  if (browser) {
    const b = browser;
    browser = null;
    await Promise.race([b.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  }
  console.log(`deflate: ${passed} passed, ${failed} failed`);
  process.exit(code);
}

const watchdog = setTimeout(() => {
  console.error(`deflate: FAIL: whole test exceeded ${budget} ms`);
  failed += 1;
  finish(1);
}, budget);
watchdog.unref();

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed += 1;
    console.log(`ok - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed += 1;
    console.log(`not ok - ${name} (${Date.now() - t0} ms)\n  ${String(e && e.stack ? e.stack : e).split("\n").join("\n  ")}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// Runs in the page: one WebSocket, the named messages sent one at a time (or
// all at once for a burst), each echo compared byte for byte. Returns
// { extensions, protocol, results: [{ name, bytes, ok, why }], close }.
async function inPage({ url, names, burst, stepMs }) {
  // Deterministic generators (no Math.random: a failure must reproduce).
  let seed = 12345;
  const rnd = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 4294967296;
  };
  const jsonLike = (n) => {
    const items = [];
    let size = 0;
    while (size < n) {
      const s = JSON.stringify({ id: items.length, user: `name-${Math.floor(rnd() * 1000)}`, ok: rnd() < 0.5, tags: ["alpha", "béta", "γ", "😀"] });
      items.push(s);
      size += s.length + 1;
    }
    return `[${items.join(",")}]`;
  };
  // Code points from every UTF-8 length, drawn at random: barely compressible.
  const randomText = (n) => {
    const ranges = [[0x20, 0x7e], [0xa0, 0x7ff], [0x800, 0xd7ff], [0xe000, 0xfffd], [0x10000, 0x10ffff]];
    let s = "";
    while (s.length < n) {
      const [lo, hi] = ranges[Math.floor(rnd() * ranges.length)];
      s += String.fromCodePoint(lo + Math.floor(rnd() * (hi - lo + 1)));
    }
    return s;
  };
  const randomBytes = (n) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
    return b.buffer;
  };
  const patternBytes = (n) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 10)) & 0xff;
    return b.buffer;
  };
  let again = null; // the same message each time: context takeover refers back to it
  const makers = {
    "compressible text 1 KiB": () => jsonLike(1024),
    "compressible text ~1 MiB (JSON-like)": () => jsonLike(1 << 20),
    "incompressible text 64 Ki code points": () => randomText(65536),
    "multi-byte UTF-8": () => "héllo wörld — Grüße 你好，世界 😀🌍 𝄞 ".repeat(50),
    "empty text": () => "",
    "compressible binary 256 KiB": () => patternBytes(256 * 1024),
    "incompressible binary 64 KiB": () => randomBytes(64 * 1024),
    "incompressible binary 1 MiB": () => randomBytes(1 << 20),
    "empty binary": () => new ArrayBuffer(0),
    "small text": () => "hi",
    "compressible text 8 KiB, again": () => (again = again || jsonLike(8192)),
  };
  const msgs = burst
    ? Array.from({ length: 100 }, (_, i) => [`burst #${i}`, i % 4 === 3 ? randomBytes(i) : i % 4 === 2 ? jsonLike(200 + i * 30) : `small #${i} ✓ ${"x".repeat(i % 23)}`])
    : names.map((n) => [n, makers[n]()]);

  const same = (a, b) => {
    if (typeof a === "string") return typeof b === "string" && a === b;
    if (!(b instanceof ArrayBuffer) || a.byteLength !== b.byteLength) return false;
    const x = new Uint8Array(a);
    const y = new Uint8Array(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  };
  const size = (m) => (typeof m === "string" ? new TextEncoder().encode(m).length : m.byteLength);

  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const inbox = [];
  let wake = null;
  let closed = null;
  ws.onmessage = (e) => {
    inbox.push(e.data);
    if (wake) wake();
  };
  ws.onclose = (e) => {
    closed = { code: e.code, reason: e.reason, clean: e.wasClean };
    if (wake) wake();
  };
  const next = () =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("timed out waiting for an echo")), stepMs);
      const attempt = () => {
        if (inbox.length) {
          clearTimeout(timer);
          wake = null;
          resolve(inbox.shift());
        } else if (closed) {
          clearTimeout(timer);
          reject(new Error(`closed (${closed.code} ${closed.reason}) while waiting for an echo`));
        } else {
          wake = attempt;
        }
      };
      attempt();
    });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("WebSocket did not open")), stepMs);
    ws.onopen = () => {
      clearTimeout(timer);
      resolve();
    };
    ws.onerror = () => {
      clearTimeout(timer);
      reject(new Error("WebSocket error before open"));
    };
  });
  const out = { extensions: ws.extensions, protocol: ws.protocol, results: [] };
  try {
    if (burst) msgs.forEach(([, m]) => ws.send(m));
    for (const [name, m] of msgs) {
      if (!burst) ws.send(m);
      const got = await next();
      const ok = same(m, got);
      out.results.push({
        name,
        bytes: size(m),
        ok,
        why: ok ? "" : `got ${typeof got === "string" ? `text of ${size(got)} bytes` : `binary of ${got.byteLength} bytes`}`,
      });
    }
  } catch (e) {
    out.error = String(e && e.message ? e.message : e);
  }
  ws.close(1000, "done");
  await new Promise((r) => {
    const t = setTimeout(r, stepMs);
    const done = () => {
      clearTimeout(t);
      r();
    };
    if (closed) done();
    else ws.addEventListener("close", done);
  });
  out.close = closed;
  return out;
}

async function main() {
  const wsUrl = new URL(base);
  wsUrl.protocol = wsUrl.protocol === "https:" ? "wss:" : "ws:";
  browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: 30000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  console.log(`# chromium ${browser.version()} (${executablePath}), page ${base}, deflate expected ${expect}`);
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(STEP_MS);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  // The offer as Chromium's network stack sent it, and the answer.
  const handshakes = [];
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  cdp.on("Network.webSocketWillSendHandshakeRequest", (e) => handshakes.push({ request: e.request.headers }));
  cdp.on("Network.webSocketHandshakeResponseReceived", (e) => handshakes.push({ response: e.response.headers }));

  await check("page loads", async () => {
    const resp = await page.goto(base, { waitUntil: "load", timeout: STEP_MS });
    assert(resp && resp.status() === 200, `GET ${base}: status ${resp && resp.status()}`);
  });

  const header = (h, name) => {
    const k = Object.keys(h).find((x) => x.toLowerCase() === name);
    return k === undefined ? undefined : h[k];
  };
  const checkExtensions = (r) => {
    const e = JSON.stringify(r.extensions);
    if (expect === "off") {
      assert(r.extensions === "", `--deflate off, but ws.extensions is ${e}`);
      return;
    }
    assert(/^permessage-deflate(;|$)/.test(r.extensions), `ws.extensions is ${e}, not permessage-deflate`);
    const params = r.extensions.split(";").slice(1).map((x) => x.trim());
    if (expect === "window-10") {
      assert(params.includes("client_max_window_bits=10"), `--deflate-client-window-bits 10, but ws.extensions is ${e}`);
    }
    if (expect === "takeover") {
      assert(!params.includes("client_no_context_takeover"), `--deflate-client-takeover, but ws.extensions is ${e}`);
    }
  };
  const checkEchoes = (r) => {
    const bad = r.results.filter((x) => !x.ok).map((x) => `${x.name} (${x.bytes} bytes): ${x.why}`);
    assert(!r.error, `${r.error} after ${r.results.length} echoes`);
    assert(bad.length === 0, `echo differs: ${bad.join("; ")}`);
    assert(r.close && r.close.code === 1000 && r.close.clean, `close: ${JSON.stringify(r.close)}`);
  };

  const groups = [
    ["compressible and incompressible text", ["compressible text 1 KiB", "compressible text ~1 MiB (JSON-like)", "incompressible text 64 Ki code points", "multi-byte UTF-8", "empty text", "small text", "compressible text 8 KiB, again", "compressible text 8 KiB, again", "compressible text 8 KiB, again"]],
    ["compressible and incompressible binary (ArrayBuffer)", ["compressible binary 256 KiB", "incompressible binary 64 KiB", "incompressible binary 1 MiB", "empty binary"]],
  ];
  for (const [what, names] of groups) {
    await check(`${what}: echoed byte-exact, ws.extensions as expected (${expect})`, async () => {
      const r = await page.evaluate(inPage, { url: wsUrl.href, names, burst: false, stepMs: STEP_MS });
      console.log(`#   ws.extensions = ${JSON.stringify(r.extensions)}; ${r.results.map((x) => `${x.name} ${x.ok ? "ok" : "DIFFERS"}`).join(", ")}`);
      checkExtensions(r);
      checkEchoes(r);
    });
  }

  await check("a burst of 100 mixed messages, echoed in order", async () => {
    const r = await page.evaluate(inPage, { url: wsUrl.href, names: [], burst: true, stepMs: STEP_MS });
    checkExtensions(r);
    checkEchoes(r);
    assert(r.results.length === 100, `${r.results.length} echoes`);
  });

  await check("the handshake on the wire: Chromium offered permessage-deflate; the answer matches ws.extensions", async () => {
    const reqs = handshakes.filter((h) => h.request).map((h) => header(h.request, "sec-websocket-extensions"));
    const resps = handshakes.filter((h) => h.response).map((h) => header(h.response, "sec-websocket-extensions"));
    console.log(`#   offer ${JSON.stringify(reqs[0])}, answer ${JSON.stringify(resps[0])}`);
    assert(reqs.length >= 3 && reqs.every((v) => /permessage-deflate/.test(v || "")), `offers: ${JSON.stringify(reqs)}`);
    assert(resps.length >= 3, `${resps.length} handshake answers seen`);
    if (expect === "off") {
      assert(resps.every((v) => v === undefined), `answers: ${JSON.stringify(resps)}`);
    } else {
      assert(resps.every((v) => /^permessage-deflate(;|$)/.test(v || "")), `answers: ${JSON.stringify(resps)}`);
    }
  });

  await check("no page errors", async () => {
    assert(problems.length === 0, problems.join("; "));
  });
}

main().then(
  () => finish(failed === 0 ? 0 : 1),
  (e) => {
    failed += 1;
    console.error(`deflate: FAIL: ${e && e.stack ? e.stack : e}`);
    finish(1);
  },
);
