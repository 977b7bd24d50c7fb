#!/usr/bin/env node
// Browser end-to-end test of the zerows echo page, in Debian's headless
// Chromium driven by playwright-core (no browser download).
//
// Usage: node tests/e2e/browser.js URL      (or ZEROWS_URL=http://127.0.0.1:PORT/)
// Environment:
//   CHROMIUM          browser binary (default /usr/bin/chromium)
//   SCREENSHOT        PNG written at the end (default target/e2e/browser.png)
//   E2E_TIMEOUT_MS    whole-test budget (default 90000)
// tests/e2e/run.sh starts a server and runs this against it.
//
// Prints one line per check and closes with "browser: N passed, N failed";
// exits 1 on the first failed check (the rest depend on it).
"use strict";

const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const base = process.argv[2] || process.env.ZEROWS_URL;
if (!base) {
  console.error("usage: node browser.js http://127.0.0.1:PORT/");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const screenshot = path.resolve(process.env.SCREENSHOT || "target/e2e/browser.png");
const budget = Number(process.env.E2E_TIMEOUT_MS || 90000);
const STEP_MS = 15000;

let passed = 0;
let failed = 0;
let browser = null;

function summary() {
  console.log(`browser: ${passed} passed, ${failed} failed`);
}

async function finish(code) {
  if (browser) {
    const b = browser;
    browser = null;
    // Bounded: a wedged browser must not keep the test alive.
    await Promise.race([b.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  }
  summary();
  process.exit(code);
}

// The whole run is bounded, whatever hangs.
const watchdog = setTimeout(() => {
  console.error(`browser: FAIL: whole test exceeded ${budget} ms`);
  failed += 1;
  finish(1);
}, budget);
watchdog.unref();

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    failed += 1;
    console.log(`not ok - ${name} (${Date.now() - t0} ms)\n  ${String(e && e.stack ? e.stack : e).split("\n").join("\n  ")}`);
    if (e && typeof e === "object") e.counted = true;
    throw e;
  }
  passed += 1;
  console.log(`ok - ${name} (${Date.now() - t0} ms)`);
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// Text with 2-, 3- and 4-byte UTF-8 sequences (and a character that would be
// markup if the page used innerHTML).
const NON_ASCII = "héllo wörld — Grüße, ¿qué tal? 你好，世界 😀🌍 <b>&amp;</b>";
const BINARY_TEXT = "binary ✓ ünïcödé 🚀";
const LARGE = Array.from({ length: 4000 }, (_, i) => `${i}:ab©—界😀`).join(" "); // ~80 KB, > 16 KiB chunk

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
  console.log(`# chromium ${browser.version()} (${executablePath}), page ${base}`);
  const context = await browser.newContext({ viewport: { width: 900, height: 760 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);

  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  // The frames as the browser's network stack sees them, independent of what
  // the page chooses to display.
  const frames = { sent: [], received: [] };
  let socket = null;
  page.on("websocket", (ws) => {
    socket = ws;
    ws.on("framesent", (f) => frames.sent.push(f.payload));
    ws.on("framereceived", (f) => frames.received.push(f.payload));
  });

  const state = page.locator("#state");
  const echoes = page.locator("#log .echo");

  async function waitState(want) {
    await page.waitForFunction(
      (w) => document.getElementById("state").dataset.state === w,
      want,
      { timeout: STEP_MS },
    ).catch(async (e) => {
      const got = await state.getAttribute("data-state").catch(() => "?");
      const text = await state.textContent().catch(() => "?");
      throw new Error(`state never became ${want}: data-state=${got}, text=${JSON.stringify(text)} (${e.message})`);
    });
  }

  // Frame events come over CDP, not necessarily before the page's onmessage.
  async function waitFrame(pred, what) {
    const until = Date.now() + STEP_MS;
    while (!frames.received.some(pred)) {
      assert(Date.now() < until, `the browser's network stack saw no ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async function sendAndSeeEcho(text, binary, wire = true) {
    const before = await echoes.count();
    await page.fill("#message", text);
    await page.click("#send");
    await page.waitForFunction((n) => document.querySelectorAll("#log .echo").length > n, before, {
      timeout: STEP_MS,
    });
    const got = await echoes.nth(before).textContent();
    assert(got === text, `echo differs: sent ${text.length} chars, got ${got.length}: ${JSON.stringify(got.slice(0, 80))}`);
    // The page's own record of the frame kind, next to the echo.
    const row = await echoes.nth(before).locator("xpath=..").textContent();
    assert(/binary/.test(row) === binary, `echo row ${binary ? "lacks" : "has"} the binary mark: ${JSON.stringify(row.slice(-60))}`);
    // And the wire: a received frame with the same payload, of the right kind.
    if (!wire) return;
    if (binary) {
      await waitFrame((f) => Buffer.isBuffer(f) && f.toString("utf8") === text, "binary frame with the message's UTF-8 bytes");
    } else {
      await waitFrame((f) => typeof f === "string" && f === text, "text frame with the message");
    }
  }

  await check("page loads with the echo UI", async () => {
    const resp = await page.goto(base, { waitUntil: "load", timeout: STEP_MS });
    assert(resp && resp.status() === 200, `GET ${base}: status ${resp && resp.status()}`);
    assert(/text\/html/.test(resp.headers()["content-type"] || ""), `content-type ${resp.headers()["content-type"]}`);
    for (const id of ["#url", "#connect", "#disconnect", "#message", "#send", "#state", "#log"]) {
      assert((await page.locator(id).count()) === 1, `missing element ${id}`);
    }
    assert((await state.getAttribute("data-state")) === "closed", "initial state is not closed");
  });

  await check("#url defaults to this server's ws:// URL", async () => {
    const v = await page.inputValue("#url");
    assert(v === wsUrl.href, `#url is ${JSON.stringify(v)}, expected ${JSON.stringify(wsUrl.href)}`);
  });

  await check("connect: state goes to open", async () => {
    await page.click("#connect");
    await waitState("open");
    assert(socket !== null, "the browser opened no WebSocket");
    assert(socket.url() === wsUrl.href, `socket URL ${socket.url()}`);
    assert(await page.isEnabled("#send"), "#send still disabled when open");
  });

  await check(`large text message (${Buffer.byteLength(LARGE)} bytes, echoed in several frames) is echoed`, async () => {
    await sendAndSeeEcho(LARGE, false, false);
  });

  await check("text message with non-ASCII characters is echoed", async () => {
    await sendAndSeeEcho(NON_ASCII, false);
    assert(frames.sent.includes(NON_ASCII), "the sent frame is not the message");
  });

  const hasBinary = (await page.locator("#binary").count()) === 1;
  if (hasBinary) {
    await check('"send binary" message is echoed as a binary frame', async () => {
      await page.check("#binary");
      await sendAndSeeEcho(BINARY_TEXT, true);
      await page.uncheck("#binary");
    });
  } else {
    console.log("# no #binary checkbox on the page: binary send not tested");
  }

  await check("several messages in a row are echoed in order", async () => {
    for (const m of ["one", "two ✌", "three 🎉"]) await sendAndSeeEcho(m, false);
  });

  await check("disconnect: state closed with code 1000, clean", async () => {
    await page.click("#disconnect");
    await waitState("closed");
    const text = await state.textContent();
    assert(/\b1000\b/.test(text), `state text lacks code 1000: ${JSON.stringify(text)}`);
    assert(!/not clean/.test(text), `close was not clean: ${JSON.stringify(text)}`);
    assert(await page.isEnabled("#connect"), "#connect not enabled again after close");
  });

  await check("server counted the session (/metrics via the browser)", async () => {
    const r = await page.request.get(new URL("/metrics", base).href, { timeout: STEP_MS });
    assert(r.status() === 200, `/metrics status ${r.status()}`);
    const body = await r.text();
    const value = (re) => {
      const m = body.match(re);
      return m ? Number(m[1]) : NaN;
    };
    const accepted = value(/^zerows_handshakes_total\{result="accepted"\} (\d+)$/m);
    const msgs = value(/^zerows_messages_total\{direction="in"\} (\d+)$/m);
    const want = hasBinary ? 6 : 5;
    assert(accepted >= 1, `zerows_handshakes_total{result="accepted"} = ${accepted}`);
    assert(msgs >= want, `zerows_messages_total{direction="in"} = ${msgs}, expected >= ${want}`);
  });

  await check("no page errors or console errors", async () => {
    assert(problems.length === 0, problems.join("; "));
  });

  await check(`screenshot written to ${path.relative(process.cwd(), screenshot)}`, async () => {
    fs.mkdirSync(path.dirname(screenshot), { recursive: true });
    // The log's end: the non-ASCII and binary echoes and the close.
    await page.evaluate(() => { const l = document.getElementById("log"); l.scrollTop = l.scrollHeight; });
    await page.screenshot({ path: screenshot, fullPage: true, timeout: STEP_MS });
    const size = fs.statSync(screenshot).size;
    assert(size > 5000, `screenshot is only ${size} bytes`);
  });
}

main().then(
  () => finish(failed === 0 ? 0 : 1),
  (e) => {
    if (!(e && e.counted)) {
      // A failure outside a check (e.g. the browser did not start).
      failed += 1;
      console.error(`browser: FAIL: ${e && e.stack ? e.stack : e}`);
    }
    finish(1);
  },
);
