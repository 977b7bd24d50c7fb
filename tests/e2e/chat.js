#!/usr/bin/env node
// End-to-end test of the chat example (examples/chat.rs): two pages in Debian's
// headless Chromium (driven by playwright-core) and a Python `websockets`
// client (tests/e2e/chat_client.py, run as a child process) in one room, and a
// second Python connection in another room that must hear nothing.
//
// Usage: node tests/e2e/chat.js http://127.0.0.1:PORT/
// Environment:
//   CHROMIUM          browser binary (default /usr/bin/chromium)
//   PYTHON            Python interpreter (default python3)
//   SCREENSHOT        PNG of page 1 written at the end (default target/e2e/chat.png)
//   E2E_TIMEOUT_MS    whole-test budget (default 90000)
// tests/e2e/chat.sh starts the chat server and runs this against it.
//
// Prints one line per check and closes with "chat: N passed, N failed";
// exits 1 on the first failed check (the rest depend on it).
"use strict";

const fs = require("fs");
const path = require("path");
const readline = require("readline");
const { spawn } = require("child_process");
const { chromium } = require("playwright-core");

const base = process.argv[2];
if (!base) {
  console.error("usage: node chat.js http://127.0.0.1:PORT/");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const python = process.env.PYTHON || "python3";
const screenshot = path.resolve(process.env.SCREENSHOT || "target/e2e/chat.png");
const budget = Number(process.env.E2E_TIMEOUT_MS || 90000);
const STEP_MS = 15000;
// After every member has all it should, how long to keep listening for
// duplicates, strays, and anything reaching the other room.
const SETTLE_MS = 1000;
const ROOM = "e2e";
const OTHER = "other";

let passed = 0;
let failed = 0;
let browser = null;
let client = null;

async function finish(code) {
  if (client) {
    client.kill();
    client = null;
  }
  if (browser) {
    const b = browser;
    browser = null;
    // Bounded: a wedged browser must not keep the test alive.
    await Promise.race([b.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  }
  console.log(`chat: ${passed} passed, ${failed} failed`);
  process.exit(code);
}

// The whole run is bounded, whatever hangs.
const watchdog = setTimeout(() => {
  console.error(`chat: FAIL: whole test exceeded ${budget} ms`);
  failed += 1;
  finish(1);
}, budget);
watchdog.unref();

async function check(name, fn) {
  const t0 = Date.now();
  let detail;
  try {
    detail = await fn();
  } catch (e) {
    failed += 1;
    console.log(`not ok - ${name} (${Date.now() - t0} ms)\n  ${String(e && e.stack ? e.stack : e).split("\n").join("\n  ")}`);
    if (e && typeof e === "object") e.counted = true;
    throw e;
  }
  passed += 1;
  console.log(`ok - ${name} (${Date.now() - t0} ms)${detail ? `: ${detail}` : ""}`);
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const show = (v) => JSON.stringify(v);

// The Python client: one JSON event per line on its stdout, one reply per
// command written to its stdin.
function startClient() {
  const script = path.join(__dirname, "chat_client.py");
  const child = spawn(python, [script, "--url", base, "--room", ROOM, "--other-room", OTHER], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const events = [];
  const waiters = [];
  let exited = null;
  const deliver = () => {
    while (waiters.length && (events.length || exited !== null)) {
      const w = waiters.shift();
      if (events.length) w.resolve(events.shift());
      else w.reject(new Error(`python client exited (${exited}) without answering`));
    }
  };
  readline.createInterface({ input: child.stdout }).on("line", (line) => {
    let ev;
    try {
      ev = JSON.parse(line);
    } catch {
      console.log(`# python: ${line}`);
      return;
    }
    events.push(ev);
    deliver();
  });
  child.on("exit", (code, signal) => {
    exited = signal || code;
    deliver();
  });
  child.on("error", (e) => {
    exited = e.message;
    deliver();
  });
  // The next event, which must be `want` (an "error" event fails).
  async function next(want, timeout = STEP_MS) {
    let timer;
    const ev = await Promise.race([
      new Promise((resolve, reject) => {
        waiters.push({ resolve, reject });
        deliver();
      }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`python client: no "${want}" event within ${timeout} ms`)), timeout);
      }),
    ]).finally(() => clearTimeout(timer));
    assert(ev.event === want, `python client: expected "${want}", got ${show(ev)}`);
    return ev;
  }
  async function request(cmd, want) {
    child.stdin.write(JSON.stringify(cmd) + "\n");
    return next(want);
  }
  return { child, next, request, kill: () => child.kill("SIGKILL") };
}

// What one participant must have received: every text in `sent` (a map from
// sender to the texts it sent, in order) exactly once, nothing else, and each
// sender's texts in the order it sent them.
function judge(who, got, sent) {
  const problems = [];
  const want = new Map();
  for (const texts of Object.values(sent)) for (const t of texts) want.set(t, 0);
  const unexpected = [];
  for (const t of got) {
    if (want.has(t)) want.set(t, want.get(t) + 1);
    else unexpected.push(t);
  }
  const missing = [...want].filter(([, n]) => n === 0).map(([t]) => t);
  const dup = [...want].filter(([, n]) => n > 1).map(([t, n]) => `${show(t)} x${n}`);
  if (missing.length) problems.push(`missing ${show(missing)}`);
  if (dup.length) problems.push(`duplicated ${dup.join(", ")}`);
  if (unexpected.length) problems.push(`unexpected ${show(unexpected)}`);
  for (const [sender, texts] of Object.entries(sent)) {
    const order = texts.map((t) => got.indexOf(t)).filter((i) => i >= 0);
    if (order.some((i, k) => k > 0 && i < order[k - 1])) {
      problems.push(`${sender}'s messages out of order: ${show(order.map((i) => got[i]))}`);
    }
  }
  if (problems.length) throw new Error(`${who} received ${show(got)}: ${problems.join("; ")}`);
}

async function main() {
  client = startClient();

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
  console.log(`# chromium ${browser.version()} (${executablePath}), chat at ${base}`);

  const problems = [];
  const pages = [];
  for (const n of [1, 2]) {
    // A context each: two independent visitors.
    const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    page.on("pageerror", (e) => problems.push(`page ${n}: page error: ${e.message}`));
    // The page names no icon, so the browser asks for /favicon.ico and the
    // server answers 404: that one is expected, nothing else is.
    const favicon = (u) => new URL(u, base).pathname === "/favicon.ico";
    page.on("console", (m) => {
      if (m.type() === "error" && !favicon(m.location().url || base)) {
        problems.push(`page ${n}: console error: ${m.text()} (${m.location().url})`);
      }
    });
    page.on("response", (r) => {
      if (r.status() >= 400 && !favicon(r.url())) problems.push(`page ${n}: ${r.status()} for ${r.url()}`);
    });
    pages.push({ name: `page ${n}`, page });
  }
  const [p1, p2] = pages;
  const pageUrl = new URL(`?room=${ROOM}`, base).href;

  await check(`two pages open ${pageUrl}, show room ${ROOM} and connect (#status open)`, async () => {
    await Promise.all(
      pages.map(async ({ name, page }) => {
        const resp = await page.goto(pageUrl, { waitUntil: "load", timeout: STEP_MS });
        assert(resp && resp.status() === 200, `${name}: GET ${pageUrl}: status ${resp && resp.status()}`);
        assert(/text\/html/.test(resp.headers()["content-type"] || ""), `${name}: content-type ${resp.headers()["content-type"]}`);
        const room = await page.textContent("#room");
        assert(room === ROOM, `${name}: #room is ${show(room)}`);
        await page
          .waitForFunction(() => document.getElementById("status").textContent === "open", null, { timeout: STEP_MS })
          .catch(async (e) => {
            const got = await page.textContent("#status").catch(() => "?");
            throw new Error(`${name}: #status never became open: ${show(got)} (${e.message})`);
          });
      }),
    );
  });

  let upgrades;
  await check(`python client connected to rooms ${ROOM} and ${OTHER}`, async () => {
    ({ upgrades } = await client.next("ready"));
  });

  await check("room names that are not allowed are refused with 404; a 64-character name is accepted", async () => {
    const want = (q) => (q === `room=${"y".repeat(64)}` ? 101 : 404);
    const wrong = upgrades.filter((u) => u.status !== want(u.query));
    assert(upgrades.length >= 4, `only ${upgrades.length} upgrades tried`);
    assert(!wrong.length, `wrong answers: ${wrong.map((u) => `?${u.query} -> ${u.status}, expected ${want(u.query)}`).join("; ")}`);
    return upgrades.map((u) => `?${u.query.length > 20 ? u.query.slice(0, 12) + `…(${u.query.length - 5})` : u.query} ${u.status}`).join(", ");
  });

  // Everything each sender has sent so far, in order.
  const sent = { "page 1": [], "page 2": [], python: [] };

  async function pageSend(p, text) {
    await p.page.fill("#msg", text);
    await p.page.click("#send");
    // The page clears the input once the message is handed to the socket.
    await p.page.waitForFunction(() => document.getElementById("msg").value === "", null, { timeout: STEP_MS });
    sent[p.name].push(text);
  }
  async function pythonSend(texts) {
    const ev = await client.request({ cmd: "send", texts }, "sent");
    assert(ev.n === texts.length, `python client sent ${ev.n} of ${texts.length}`);
    sent.python.push(...texts);
  }

  const logOf = (p) => p.page.$$eval("#log p", (ps) => ps.map((e) => e.textContent));
  async function snapshot() {
    const [l1, l2, py] = await Promise.all([logOf(p1), logOf(p2), client.request({ cmd: "received" }, "received")]);
    assert(Object.keys(py.closed).length === 0, `python client's connections ended: ${show(py.closed)}`);
    return { got: { "page 1": l1, "page 2": l2, python: py.room }, other: py.other };
  }
  // Until each room member has at least all that was sent, then SETTLE_MS
  // more; then each must have every message exactly once, and the other
  // room nothing.
  async function everyoneHasAll() {
    const total = Object.values(sent).reduce((n, t) => n + t.length, 0);
    const until = Date.now() + STEP_MS;
    for (;;) {
      const s = await snapshot();
      if (Object.values(s.got).every((g) => g.length >= total)) break;
      if (Date.now() > until) {
        const counts = Object.entries(s.got).map(([k, g]) => `${k} ${g.length}: ${show(g)}`);
        throw new Error(`after ${STEP_MS} ms not everyone has the ${total} messages: ${counts.join("; ")}`);
      }
      await sleep(50);
    }
    await sleep(SETTLE_MS);
    const s = await snapshot();
    for (const [who, got] of Object.entries(s.got)) judge(who, got, sent);
    assert(s.other.length === 0, `the client in room ${OTHER} received ${show(s.other)}`);
    return `${total} messages each, room ${OTHER} silent for ${SETTLE_MS} ms`;
  }

  await check("one message each from page 1, page 2 and python (non-ASCII): all three members get all three exactly once", async () => {
    await pageSend(p1, "héllo 很厉害 🎉 — from page 1");
    await pageSend(p2, "page 2: <b>not bold</b> &amp; ¿qué tal? 😀");
    await pythonSend(["python: Grüße aus 🐍, ünïcödé ✓"]);
    return everyoneHasAll();
  });

  await check("bursts: 3 messages each from the three senders at once; all arrive once, each sender's in order", async () => {
    const burst = (who) => [1, 2, 3].map((i) => `${who} burst #${i} ✉`);
    await Promise.all([
      (async () => { for (const t of burst("page 1")) await pageSend(p1, t); })(),
      (async () => { for (const t of burst("page 2")) await pageSend(p2, t); })(),
      pythonSend(burst("python")),
    ]);
    return everyoneHasAll();
  });

  await check("pages still open; no page errors or console errors", async () => {
    for (const { name, page } of pages) {
      const st = await page.textContent("#status");
      assert(st === "open", `${name}: #status is ${show(st)}`);
    }
    assert(problems.length === 0, problems.join("; "));
  });

  await check(`screenshot of page 1 written to ${path.relative(process.cwd(), screenshot)}`, async () => {
    fs.mkdirSync(path.dirname(screenshot), { recursive: true });
    await p1.page.screenshot({ path: screenshot, fullPage: true, timeout: STEP_MS });
    const size = fs.statSync(screenshot).size;
    assert(size > 5000, `screenshot is only ${size} bytes`);
  });

  await check("python client closes both connections cleanly (1000)", async () => {
    const ev = await client.request({ cmd: "close" }, "closed");
    assert(ev.codes.room === 1000 && ev.codes.other === 1000, `close codes ${show(ev.codes)}`);
  });
}

main().then(
  () => finish(failed === 0 ? 0 : 1),
  (e) => {
    if (!(e && e.counted)) {
      // A failure outside a check (e.g. the browser did not start).
      failed += 1;
      console.error(`chat: FAIL: ${e && e.stack ? e.stack : e}`);
    }
    finish(1);
  },
);
