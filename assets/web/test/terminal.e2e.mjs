// terminal.e2e.mjs checks Berth's terminal page end to end in a real
// browser (Debian's chromium, driven by playwright-core) against a live
// session of the engine (docs/terminal.md).
//
// Usage: node test/terminal.e2e.mjs SESSION_URL OUT_DIR
//   or   BERTH_TERMINAL_URL=… BERTH_TERMINAL_OUT=… node test/terminal.e2e.mjs
// SESSION_URL is http://127.0.0.1:PORT/terminal/#token=TOKEN, a fresh
// (unused) session on a container whose shell has seq, stty and sh's
// arithmetic. BERTH_CHROMIUM overrides /usr/bin/chromium.
//
// Checks, in order (each failure exits 1 with a message that names it):
//  1. the page opens the session: hello titles the window "NAME — STATE";
//  2. typing `echo $((6*7))` and Enter prints 42 in the terminal's buffer;
//     selecting it copies it to the clipboard, and Ctrl-Shift-V pastes a
//     command that runs once;
//     the keystroke-to-echo round trip is timed over 100 keys;
//  3. resizing the viewport changes the pty's size (`stty size` in the
//     shell equals the terminal's rows and columns, and differs from before);
//  4. screenshots of the live shell in light and in dark appearance, the
//     page switching live when the system's appearance changes;
//  5. `seq 1 200000` arrives complete and in order (read from xterm's
//     buffer, the page opened with scrollback=250000), every byte received
//     is acknowledged, and the page answers an evaluate round trip in under
//     a second throughout the flood;
//  6. when the page renders with WebGL, losing the WebGL context switches
//     it to the DOM renderer, which shows the shell's next output;
//  7. `exit 3` shows the ended banner with code 3 and a Reconnect button;
//     Reconnect opens a new shell that runs a command;
//  8. a link with a wrong token shows the page's banner (the link was used
//     or has expired) and chromium reports the handshake's 403.
// On success it prints a JSON summary (timings, screenshot paths).
//
// BERTH_E2E_CONTROL=1 lets a test drive phases: during the flood (5) the
// script pauses the page's JavaScript (so it acknowledges nothing), prints
// a line `BERTH-PHASE paused {}` and waits for a line `go` on stdin
// before resuming; the Go test checks the engine's flow control then.
//
// BERTH_E2E_MODE=bench runs only the measurements: open, the keystroke-
// to-echo round trip over 100 keys and, when BERTH_E2E_CAT names a file in
// the container, the time to `cat` it to the (visible) terminal.

import { chromium } from "playwright-core";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

const url = process.argv[2] || process.env.BERTH_TERMINAL_URL;
const out = resolve(process.argv[3] || process.env.BERTH_TERMINAL_OUT || "test-results");
const chromiumPath = process.env.BERTH_CHROMIUM || "/usr/bin/chromium";
if (!url || !url.includes("#token=")) {
  console.error("usage: node test/terminal.e2e.mjs http://127.0.0.1:PORT/terminal/#token=TOKEN OUT_DIR");
  process.exit(2);
}

const seqCount = Number(process.env.BERTH_E2E_SEQ || 200000);
const mode = process.env.BERTH_E2E_MODE || "full";
const catFile = process.env.BERTH_E2E_CAT || "";
const stdinReader = process.env.BERTH_E2E_CONTROL === "1" ? createInterface({ input: process.stdin }) : null;
const stdinLines = stdinReader?.[Symbol.asyncIterator]() ?? null;

/**
 * phase tells a driving test (BERTH_E2E_CONTROL=1) that the script reached
 * a phase and waits for its `go`; without one it returns at once.
 */
async function phase(name, data = {}) {
  if (!stdinLines) return;
  console.log(`BERTH-PHASE ${name} ${JSON.stringify(data)}`);
  const r = await stdinLines.next();
  if (r.done || r.value.trim() !== "go") {
    throw new Error(`phase ${name}: the driving test answered ${JSON.stringify(r.done ? "(end of input)" : r.value)}, want go`);
  }
}
// Responsiveness during the flood: the median evaluate round trip must
// stay under rttMedianLimitMs and none may pass rttMaxLimitMs. A frozen
// page (no flow control) stalls for far longer; a noisy 2-core machine
// stalls single round trips for a second or two, so the limit on any one
// is loose and the median carries the check.
const rttMedianLimitMs = 1000;
const rttMaxLimitMs = 5000;
const catchUpLimitMs = 5000;

/** check throws a failure named by what when ok is false. */
function check(ok, what) {
  if (!ok) throw new Error(what);
}

const since = (t0) => Math.round(performance.now() - t0);

async function main() {
  await mkdir(out, { recursive: true });
  await rm(join(out, "terminal-failure.png"), { force: true });
  const profile = await mkdtemp(join(tmpdir(), "berth-e2e-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 820, height: 520 },
    // 1: SwiftShader's WebGL in headless chromium draws nothing at an
    // emulated scale of 2 (the DOM renderer does).
    deviceScaleFactor: 1,
    colorScheme: "light",
    permissions: ["clipboard-read", "clipboard-write"],
  });
  const summary = { timings: {}, screenshots: {} };
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors = [];
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  try {
    if (mode === "bench") await bench(page, summary);
    else {
      await run(page, summary);
      await badToken(context, summary);
    }
    check(consoleErrors.length === 0, `the page logged errors: ${consoleErrors.join(" | ")}`);
  } catch (err) {
    const shot = join(out, "terminal-failure.png");
    await page.screenshot({ path: shot }).catch(() => undefined);
    const tail = await page.evaluate(() => {
      const t = window.berthTerminal;
      if (!t) return "(no terminal)";
      const { state, received, acked, cols, rows, renderer } = t;
      return `${t.text(t.rows)}\n--- state ${JSON.stringify({ state, received, acked, cols, rows, renderer })}`;
    }).catch(() => "(page gone)");
    console.error(`terminal e2e: FAIL: ${err.message}\n--- last lines of the terminal ---\n${tail}\n--- screenshot: ${shot}`);
    if (consoleErrors.length) console.error(`--- page errors ---\n${consoleErrors.join("\n")}`);
    process.exitCode = 1;
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
    // Let node exit while a driving test still holds stdin open.
    stdinReader?.close();
    process.stdin.destroy();
  }
  if (process.exitCode !== 1) console.log(JSON.stringify(summary, null, 2));
}

/**
 * keyEcho times, over 100 keys, a key press until the shell's echo of it
 * has reached the page (then ^U clears them); the times are in ms.
 */
async function keyEcho(page) {
  await settle(page);
  const keyMs = [];
  for (let i = 0; i < 100; i++) {
    const r = (await hook(page)).received;
    const s = performance.now();
    await page.keyboard.press("x");
    await page.waitForFunction((r) => window.berthTerminal.received > r, r, { polling: 1, timeout: 5000 })
      .catch(() => { throw new Error(`no echo of key ${i + 1} within 5 s`); });
    keyMs.push(performance.now() - s);
  }
  await page.keyboard.press("Control+U");
  keyMs.sort((a, b) => a - b);
  return {
    n: keyMs.length,
    median: Number(((keyMs[49] + keyMs[50]) / 2).toFixed(2)),
    p90: Number(keyMs[90].toFixed(1)),
    max: Number(keyMs[99].toFixed(1)),
  };
}

/** hook reads window.berthTerminal. */
const hook = (page) => page.evaluate(() => {
  const t = window.berthTerminal;
  return { state: t.state, received: t.received, acked: t.acked, cols: t.cols, rows: t.rows, renderer: t.renderer, transport: t.transport };
});

/** lines returns the terminal's last n lines of text. */
const lines = (page, n) => page.evaluate((n) => window.berthTerminal.text(n ?? undefined).split("\n"), n ?? null);

/**
 * waitLine waits until some line of the last n passes test; returns the
 * lines. what names the wait in a failure.
 */
async function waitLine(page, test, what, { n = 200, timeout = 15000 } = {}) {
  const t0 = performance.now();
  for (;;) {
    const ls = await lines(page, n);
    if (ls.some(test)) return ls;
    if (performance.now() - t0 > timeout) throw new Error(`${what}: not in the terminal after ${timeout} ms`);
    await page.waitForTimeout(25);
  }
}

/**
 * settle waits until no output has arrived for 150 ms. Busybox's sh asks
 * the terminal for the cursor position (ESC [6n) at each prompt and drops
 * keys that reach it in the same read as the page's answer, so a test
 * types only once the shell has had time to read that answer.
 */
async function settle(page) {
  let r = (await hook(page)).received;
  for (let i = 0; i < 100; i++) {
    await page.waitForTimeout(150);
    const now = (await hook(page)).received;
    if (now === r) return;
    r = now;
  }
  throw new Error("the output never settled (15 s)");
}

/** typeLine types line and Enter once the shell has settled. */
async function typeLine(page, line) {
  await settle(page);
  await page.keyboard.type(line);
  await page.keyboard.press("Enter");
}

let markers = 0;
/**
 * command types cmd and Enter, followed by an echo of a marker the shell
 * computes, and returns the output lines between cmd's line and the
 * marker's, looking at the terminal's last `lines` lines.
 */
async function command(page, cmd, { lines: want = 200, timeout = 15000, done = () => undefined } = {}) {
  const n = ++markers * 1000 + 7;
  const expr = `M-$((${n}+1))`;
  const mark = `M-${n + 1}`;
  await settle(page);
  await page.keyboard.type(`${cmd}; echo ${expr}`);
  await page.keyboard.press("Enter");
  // Wait on the screen's last lines (cheap), then read the output once.
  await waitLine(page, (l) => l === mark, `the output of \`${cmd}\``, { n: 100, timeout });
  await done();
  if (want === 0) return [];
  const ls = await lines(page, want);
  const end = ls.lastIndexOf(mark);
  const start = ls.lastIndexOf(ls.slice(0, end).findLast((l) => l.includes(expr)));
  check(start >= 0, `the command line of \`${cmd}\` is not in the terminal`);
  return ls.slice(start + 1, end);
}

async function run(page, summary) {
  // 1. Open the session with a scrollback that holds all of seq's lines.
  let t0 = performance.now();
  await page.goto(`${url}&scrollback=${seqCount + 50000}`);
  await page.waitForFunction(() => window.berthTerminal?.state === "open", null, { timeout: 20000 })
    .catch(() => { throw new Error("the page did not open the session (no hello within 20 s)"); });
  summary.timings.open_ms = since(t0);
  check(!page.url().includes("token="), "the page left its token in the address bar");
  const title = await page.title();
  check(/^.+ — .+$/.test(title), `window title ${JSON.stringify(title)} is not "NAME — STATE"`);
  summary.title = title;
  const h0 = await hook(page);
  summary.renderer = h0.renderer;
  summary.transport = h0.transport;
  check(h0.transport === "websocket", `transport is ${h0.transport}, want websocket`);
  await page.click("#terminal");
  // The shell's first prompt.
  await waitLine(page, (l) => l.trim() !== "", "the shell's prompt");
  await settle(page);

  // 2. echo $((6*7)) ⏎ → 42.
  t0 = performance.now();
  await page.keyboard.type("echo $((6*7))");
  await page.keyboard.press("Enter");
  await waitLine(page, (l) => l === "42", "42, the output of `echo $((6*7))`");
  summary.timings.echo_ms = since(t0);

  // 2b. Copy on select (double-click 42), paste with Ctrl-Shift-V.
  await page.evaluate(() => navigator.clipboard.writeText("nothing yet"));
  const all = (await lines(page)).map((l) => l);
  const h = await hook(page);
  const row = all.lastIndexOf("42") - Math.max(0, all.length - h.rows);
  check(row >= 0 && row < h.rows, `42 is not on the screen (row ${row})`);
  const box = await page.locator(".xterm-screen").boundingBox();
  await page.mouse.dblclick(box.x + (box.width / h.cols) * 0.8, box.y + (box.height / h.rows) * (row + 0.5));
  await page.waitForFunction(async () => (await navigator.clipboard.readText()) === "42", null, { timeout: 3000 })
    .catch(async () => {
      throw new Error(`selecting 42 did not copy it (clipboard: ${JSON.stringify(await page.evaluate(() => navigator.clipboard.readText()))})`);
    });
  await page.evaluate(() => navigator.clipboard.writeText("echo pasted-$((6*7))"));
  await settle(page);
  await page.keyboard.press("Control+Shift+V");
  await page.keyboard.press("Enter");
  await waitLine(page, (l) => l === "pasted-42", "pasted-42, the output of the pasted command")
    .catch(async (err) => {
      throw new Error(`${err.message}; the last lines: ${JSON.stringify(await lines(page, 4))}`);
    });

  // 2c. Keystroke to echo over 100 keys.
  summary.key_echo_ms = await keyEcho(page);

  // 3. Resize the viewport: the pty follows.
  const before = (await command(page, "stty size")).join(" ").trim();
  check(before === `${h0.rows} ${h0.cols}`, `stty size says ${JSON.stringify(before)} before the resize; the terminal is ${h0.rows} ${h0.cols}`);
  t0 = performance.now();
  await page.setViewportSize({ width: 1000, height: 640 });
  await page.waitForFunction((c) => window.berthTerminal.cols !== c, h0.cols, { timeout: 5000 })
    .catch(() => { throw new Error("the terminal did not fit itself to the resized window"); });
  const h1 = await hook(page);
  const after = (await command(page, "stty size")).join(" ").trim();
  summary.timings.resize_ms = since(t0);
  check(after === `${h1.rows} ${h1.cols}`, `stty size says ${JSON.stringify(after)} after the resize; the terminal is ${h1.rows} ${h1.cols}`);
  check(after !== before, `stty size did not change with the window (${before})`);
  summary.sizes = { before, after };

  // 4. Screenshots with a live shell, light then dark (switched live): a
  // docker-like prompt on a cleared screen and a few everyday commands,
  // in a window sized to them (the pty follows it).
  await page.setViewportSize({ width: 900, height: 250 });
  await page.waitForFunction((c) => window.berthTerminal.cols !== c, h1.cols, { timeout: 5000 })
    .catch(() => { throw new Error("the terminal did not fit itself to the screenshot's window"); });
  await typeLine(page, "export PS1='\\u@\\h:\\w\\$ '; printf '\\033[H\\033[2J\\033[3J'");
  await waitLine(page, (l) => /^root@\S+:\/# ?$/.test(l), "the new prompt");
  await typeLine(page, "uname -a");
  await waitLine(page, (l) => l.startsWith("Linux "), "the output of `uname -a`");
  await typeLine(page, "ls --color /");
  await waitLine(page, (l) => /\bproc\b/.test(l), "the output of `ls /`");
  await typeLine(page, "free -m");
  await waitLine(page, (l) => l.startsWith("Mem:"), "the output of `free -m`");
  await settle(page);
  await page.waitForTimeout(200);
  summary.screenshots.light = join(out, "terminal-light.png");
  await page.screenshot({ path: summary.screenshots.light });
  const bgLight = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.emulateMedia({ colorScheme: "dark" });
  await page.waitForFunction(() => document.documentElement.dataset.appearance === "dark", null, { timeout: 2000 })
    .catch(() => { throw new Error("the page did not switch to dark when the system's appearance changed"); });
  await page.waitForTimeout(200);
  const bgDark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  check(bgLight !== bgDark, `the background stayed ${bgLight} in dark appearance`);
  summary.screenshots.dark = join(out, "terminal-dark.png");
  await page.screenshot({ path: summary.screenshots.dark });
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 1000, height: 640 });

  // 5. A flood: complete, in order, acknowledged, the page responsive.
  // With a driving test, the page's JavaScript is paused early in the
  // flood (the Debugger domain: nothing runs, so nothing is
  // acknowledged) until the test has seen the engine stop sending.
  const r0 = (await hook(page)).received;
  // Round trips that overlap the pause are not counted; those in the
  // first two seconds after it (the page catching up on the high-water
  // mark's worth of output it held) are counted apart, with a looser limit.
  const rtts = [];
  const catchUp = [];
  let flooding = true;
  let pausing = false;
  let pauseEpoch = 0;
  let resumedAt = -Infinity;
  const prober = (async () => {
    while (flooding) {
      const e = pauseEpoch;
      const s = performance.now();
      await page.evaluate(() => 1);
      if (!pausing && e === pauseEpoch) (s - resumedAt < 2000 ? catchUp : rtts).push(performance.now() - s);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  t0 = performance.now();
  let floodMs = 0;
  let pausedMs = 0;
  const pauser = (async () => {
    if (!stdinLines) return;
    await page.waitForFunction((r0) => window.berthTerminal.received - r0 >= 16384, r0, { polling: 5, timeout: 60000 })
      .catch(() => { throw new Error("the flood's first 16 KiB did not arrive within 60 s"); });
    pausing = true;
    pauseEpoch++;
    const cdp = await page.context().newCDPSession(page);
    try {
      await cdp.send("Debugger.enable");
      const paused = new Promise((r) => cdp.once("Debugger.paused", r));
      await cdp.send("Debugger.pause");
      await Promise.race([paused, new Promise((_, j) => setTimeout(() => j(new Error("the page's JavaScript did not pause within 10 s")), 10000))]);
      const p0 = performance.now();
      await phase("paused");
      pausedMs = performance.now() - p0;
      await cdp.send("Debugger.resume");
      resumedAt = performance.now();
      await cdp.send("Debugger.disable");
    } finally {
      await cdp.detach().catch(() => undefined);
      pauseEpoch++;
      pausing = false;
    }
  })();
  pauser.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
  const stopProbing = async () => {
    floodMs = performance.now() - t0 - pausedMs;
    flooding = false;
    await prober;
  };
  let seqLines;
  try {
    seqLines = await command(page, `seq 1 ${seqCount}`, { lines: seqCount + 100, timeout: 180000, done: stopProbing });
    await pauser;
  } finally {
    flooding = false;
    await prober;
    await pauser.catch(() => undefined);
  }
  summary.timings.flood_ms = Math.round(floodMs);
  if (stdinLines) summary.timings.flood_paused_ms = Math.round(pausedMs);
  check(seqLines.length === seqCount, `seq 1 ${seqCount}: ${seqLines.length} lines arrived`);
  for (let i = 0; i < seqCount; i++) {
    if (seqLines[i] !== String(i + 1)) {
      throw new Error(`seq 1 ${seqCount}: line ${i + 1} is ${JSON.stringify(seqLines[i])}, want "${i + 1}" (context: ${JSON.stringify(seqLines.slice(Math.max(0, i - 2), i + 3))})`);
    }
  }
  await page.waitForFunction(() => window.berthTerminal.acked === window.berthTerminal.received, null, { timeout: 5000 })
    .catch(async () => {
      const h = await hook(page);
      throw new Error(`the page acknowledged ${h.acked} of ${h.received} output bytes`);
    });
  const floodBytes = (await hook(page)).received - r0;
  rtts.sort((a, b) => a - b);
  summary.flood = {
    lines: seqCount,
    bytes: floodBytes,
    mb_per_s: Number((floodBytes / 1e6 / (floodMs / 1000)).toFixed(2)),
    evaluate_rtt_ms: {
      n: rtts.length,
      median: Math.round(rtts[Math.floor(rtts.length / 2)] ?? 0),
      p99: Math.round(rtts[Math.floor(rtts.length * 0.99)] ?? 0),
      max: Math.round(rtts[rtts.length - 1] ?? 0),
    },
  };
  if (stdinLines) {
    catchUp.sort((a, b) => a - b);
    summary.flood.catch_up_rtt_max_ms = Math.round(catchUp[catchUp.length - 1] ?? 0);
    check(summary.flood.catch_up_rtt_max_ms < catchUpLimitMs, `the page was unresponsive after its pause: an evaluate took ${summary.flood.catch_up_rtt_max_ms} ms (limit ${catchUpLimitMs})`);
  }
  check(rtts.length >= 3, `only ${rtts.length} evaluate round trips during the flood`);
  check(summary.flood.evaluate_rtt_ms.median < rttMedianLimitMs, `the page was slow during the flood: median evaluate round trip ${summary.flood.evaluate_rtt_ms.median} ms (limit ${rttMedianLimitMs})`);
  check(rtts[rtts.length - 1] < rttMaxLimitMs, `the page was unresponsive during the flood: an evaluate took ${Math.round(rtts[rtts.length - 1])} ms (limit ${rttMaxLimitMs})`);

  // 6. WebGL's context lost: the page carries on with the DOM renderer.
  if (summary.renderer === "webgl") {
    await page.evaluate(() => {
      for (const c of document.querySelectorAll(".xterm canvas")) {
        c.getContext("webgl2")?.getExtension("WEBGL_lose_context")?.loseContext();
      }
    });
    await page.waitForFunction(() => window.berthTerminal.renderer === "dom", null, { timeout: 10000 })
      .catch(() => { throw new Error("the page kept the WebGL renderer after losing its WebGL context"); });
    const dom = await command(page, "echo dom-$((6*7))");
    check(dom.includes("dom-42"), `after the fall back to the DOM renderer the shell printed ${JSON.stringify(dom)}, want dom-42`);
    const rows = await page.textContent(".xterm-rows");
    check(rows?.includes("dom-42"), "the DOM renderer does not show dom-42");
    summary.fallback = "webgl context lost → dom";
  }

  // 7. exit 3 → the banner with 3 and Reconnect; Reconnect → a new shell.
  // Clear the screen (any sh has printf; not every image has clear).
  await settle(page);
  await page.keyboard.type("printf '\\033[H\\033[2J'");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => {
    const t = window.berthTerminal;
    return t.text(t.rows).split("\n").filter((l) => l.trim() !== "").length <= 1;
  }, null, { timeout: 5000 }).catch(() => { throw new Error("the screen did not clear"); });
  await settle(page);
  t0 = performance.now();
  await page.keyboard.type("exit 3");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#banner:not([hidden])", { timeout: 10000 })
    .catch(() => { throw new Error("no banner after `exit 3`"); });
  summary.timings.exit_banner_ms = since(t0);
  const banner = await page.textContent("#banner-text");
  check(/\b3\b/.test(banner ?? ""), `the banner says ${JSON.stringify(banner)}, without the exit code 3`);
  check(await page.isVisible("#reconnect"), "the banner has no Reconnect button");
  check((await hook(page)).state === "ended", "the page's state is not ended after exit");
  summary.banner = banner;
  summary.screenshots.ended = join(out, "terminal-ended.png");
  await page.screenshot({ path: summary.screenshots.ended });

  t0 = performance.now();
  await page.click("#reconnect");
  await page.waitForFunction(() => window.berthTerminal.state === "open", null, { timeout: 20000 })
    .catch(() => { throw new Error("Reconnect did not open a new session"); });
  check(await page.isHidden("#banner"), "the banner stayed after Reconnect");
  const again = await command(page, "echo again-$((6*7))");
  check(again.includes("again-42"), `the reconnected shell printed ${JSON.stringify(again)}, want again-42`);
  summary.timings.reconnect_ms = since(t0);
}

/**
 * badToken opens the page with a wrong token: the page shows its banner
 * (the link was used or expired) and no shell; chromium's console names
 * the handshake's status.
 */
async function badToken(context, summary) {
  const page = await context.newPage();
  const logged = [];
  page.on("console", (m) => logged.push(m.text()));
  try {
    const bad = url.replace(/#token=[^&]*/, `#token=${"0f".repeat(32)}`);
    await page.goto(bad);
    await page.waitForSelector("#banner:not([hidden])", { timeout: 10000 })
      .catch(() => { throw new Error("a wrong token shows no banner"); });
    const banner = (await page.textContent("#banner-text")) ?? "";
    check(/already used or has expired/.test(banner), `a wrong token's banner says ${JSON.stringify(banner)}`);
    check(await page.isHidden("#reconnect"), "a wrong token's banner offers Reconnect");
    check((await page.evaluate(() => window.berthTerminal.state)) === "ended", "a wrong token's page is not ended");
    const status = logged.map((l) => /Unexpected response code: (\d+)/.exec(l)?.[1]).find(Boolean);
    summary.bad_token = { banner, status: status ? Number(status) : null };
    check(summary.bad_token.status === 403, `chromium reported the wrong token's handshake as ${status ?? "nothing"} (console: ${JSON.stringify(logged)}), want 403`);
  } finally {
    await page.close();
  }
}

/**
 * bench measures: the keystroke-to-echo round trip over 100 keys and,
 * with BERTH_E2E_CAT, the time to cat that file to the terminal (from
 * Enter until the marker after it is on the screen).
 */
async function bench(page, summary) {
  await page.goto(url);
  await page.waitForFunction(() => window.berthTerminal?.state === "open", null, { timeout: 20000 })
    .catch(() => { throw new Error("the page did not open the session (no hello within 20 s)"); });
  summary.renderer = (await hook(page)).renderer;
  await page.click("#terminal");
  await waitLine(page, (l) => l.trim() !== "", "the shell's prompt");
  await settle(page);
  summary.key_echo_ms = await keyEcho(page);
  if (catFile) {
    await command(page, "true"); // a settled prompt
    const r0 = (await hook(page)).received;
    const t0 = performance.now();
    await command(page, `cat ${catFile}`, { lines: 0, timeout: 600000 });
    const ms = performance.now() - t0;
    const bytes = (await hook(page)).received - r0;
    summary.cat = { file: catFile, bytes, ms: Math.round(ms), mb_per_s: Number((bytes / 1e6 / (ms / 1000)).toFixed(2)) };
  }
}

await main();
