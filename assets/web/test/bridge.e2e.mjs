// bridge.e2e.mjs is the browser half of app/termwindow's
// TestBridgeInChromium: the terminal page in a real browser (Debian's
// chromium, driven by playwright-core) speaking the macOS window's
// bridge (docs/terminal.md, "The macOS window") to the Go test, which
// plays the app.
//
// Usage (by the test): node test/bridge.e2e.mjs PAGE_URL
// BERTH_CHROMIUM overrides /usr/bin/chromium.
//
// The page gets window.webkit.messageHandlers.berth (what WKWebView gives
// it) before it loads; each postMessage({t, d}) is written to stdout as
// {"kind":"post","t":…,"d":…}. The test drives the browser with one JSON
// command a line on stdin, {"id":N,"op":…}, each answered on stdout with
// {"kind":"result","id":N,"result":…} or {"kind":"result","id":N,"error":…}:
//   goto {url}         load the page; result: the HTTP status
//   eval {script}      run a script in the page (window.berthReceive calls)
//   state              title, the page's test hook, its last lines, banner
//   type {text}        type into the terminal; press {key} presses a key
//   click {selector}   click an element
//   screenshot {path}  save a screenshot
//   close              close the browser and exit
// Page errors are reported as {"kind":"page-error","text":…}.

import { chromium } from "playwright-core";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const chromiumPath = process.env.BERTH_CHROMIUM || "/usr/bin/chromium";
const send = (m) => process.stdout.write(JSON.stringify(m) + "\n");

async function main() {
  const profile = await mkdtemp(join(tmpdir(), "berth-bridge-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 820, height: 520 },
    deviceScaleFactor: 1,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => {
    if (m.type() === "error") send({ kind: "page-error", text: m.text() });
  });
  page.on("pageerror", (e) => send({ kind: "page-error", text: String(e) }));
  // The bridge as WKWebView offers it: a handler object with postMessage.
  await page.exposeBinding("berthTestPost", (_source, m) => send({ kind: "post", t: m.t, d: m.d }));
  await page.addInitScript(() => {
    window.webkit = { messageHandlers: { berth: { postMessage: (m) => window.berthTestPost({ t: m.t, d: m.d }) } } };
  });

  const ops = {
    goto: async ({ url }) => (await page.goto(url))?.status(),
    eval: async ({ script }) => {
      await page.evaluate(script);
      return null;
    },
    state: () =>
      page.evaluate(() => {
        const t = window.berthTerminal;
        const banner = document.getElementById("banner");
        return {
          title: document.title,
          state: t?.state,
          transport: t?.transport,
          received: t?.received,
          acked: t?.acked,
          cols: t?.cols,
          rows: t?.rows,
          text: t?.text(40) ?? "",
          banner: banner ? !banner.hidden : false,
          bannerText: document.getElementById("banner-text")?.textContent ?? "",
          reconnect: document.getElementById("reconnect")?.hidden === false,
        };
      }),
    type: async ({ text }) => page.keyboard.type(text),
    press: async ({ key }) => page.keyboard.press(key),
    click: async ({ selector }) => page.click(selector),
    screenshot: async ({ path }) => page.screenshot({ path }),
  };

  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    const cmd = JSON.parse(line);
    if (cmd.op === "close") break;
    const op = ops[cmd.op];
    // Commands run concurrently (an eval must not wait behind a click);
    // the test orders those that need it.
    Promise.resolve()
      .then(() => (op ? op(cmd) : Promise.reject(new Error(`unknown op ${cmd.op}`))))
      .then(
        (result) => send({ kind: "result", id: cmd.id, result: result ?? null }),
        (err) => send({ kind: "result", id: cmd.id, error: String(err?.message ?? err) }),
      );
  }
  await context.close();
  await rm(profile, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(`bridge e2e: ${err?.stack ?? err}`);
  process.exit(1);
});
