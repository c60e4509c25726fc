// window.e2e.mjs drives the Berth window in a real chromium for
// app/window_e2e_test.go: it opens the URL given as its argument, then
// reads one JSON command a line on stdin, ["name", args...], and answers
// each with one JSON line on stdout: {"ok":true,"result":…} or
// {"ok":false,"error":"…"}. Page errors are printed as {"pageerror":…}.
//
// Usage: node test/window.e2e.mjs URL   (chromium at /usr/bin/chromium)

import { chromium } from "playwright-core";
import readline from "node:readline";

const url = process.argv[2];
const timeout = 30_000;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const context = await browser.newContext({ viewport: { width: 1120, height: 700 }, deviceScaleFactor: 1, colorScheme: "light" });
const page = await context.newPage();
page.on("dialog", (d) => d.accept());
page.on("pageerror", (e) => out({ pageerror: String(e) }));

const row = (name) => page.locator(`#table tbody tr[data-name="${name}"]`);

const handlers = {
  // open loads the window and waits for its first list.
  async open() {
    await page.goto(url);
    await page.waitForSelector("body[data-ready='1']", { timeout });
    return { hash: new URL(page.url()).hash, cookie: await page.evaluate(() => document.cookie) };
  },
  // reuse opens the same URL in a fresh context (no cookie): the used
  // token must not sign in again; returns the banner.
  async reuse() {
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    await p.goto(url);
    await p.waitForSelector("#banner:not([hidden])", { timeout });
    const text = await p.textContent("#banner-text");
    await ctx.close();
    return text;
  },
  async view(v) {
    await page.click(`.nav[data-view="${v}"]`);
    return null;
  },
  // state waits for the row of name whose state cell matches re.
  async state(name, re) {
    const rx = new RegExp(re);
    const deadline = Date.now() + timeout;
    for (;;) {
      const n = await row(name).count();
      const text = n ? await row(name).locator("td.state").textContent() : "";
      if (n && rx.test(text)) return text;
      if (Date.now() > deadline) throw new Error(`row ${name}: state ${JSON.stringify(text)} (rows: ${n}), want /${re}/`);
      await page.waitForTimeout(100);
    }
  },
  async gone(name) {
    await row(name).waitFor({ state: "detached", timeout });
    return null;
  },
  async rowText(name) {
    return (await row(name).innerText()).split("\t");
  },
  // act selects name's row and clicks an action button.
  async act(name, action) {
    await row(name).click();
    await page.click(`#actions button[data-action="${action}"]`);
    return null;
  },
  // follow selects name and waits for a "tick N" line greater than any
  // shown when its logs first appeared: proof they follow.
  async follow(name) {
    await row(name).click();
    const max = async () => Math.max(-1, ...[...(await page.textContent("#logs-text")).matchAll(/tick (\d+)/g)].map((m) => +m[1]));
    const deadline = Date.now() + timeout;
    let first = -1;
    while ((first = await max()) < 0) {
      if (Date.now() > deadline) throw new Error("no logs shown");
      await page.waitForTimeout(100);
    }
    while ((await max()) <= first + 1) {
      if (Date.now() > deadline) throw new Error(`logs stopped at tick ${await max()}`);
      await page.waitForTimeout(100);
    }
    return { first, now: await max() };
  },
  // shell clicks Shell on name's row and waits for the terminal page it
  // opens in a new tab to title itself with the container's name.
  async shell(name) {
    await row(name).click();
    const [tab] = await Promise.all([context.waitForEvent("page", { timeout }), page.click('#actions button[data-action="shell"]')]);
    await tab.waitForFunction((n) => document.title.startsWith(n), name, { timeout });
    const got = { url: tab.url().replace(/#.*/, ""), title: await tab.title() };
    await tab.close();
    return got;
  },
  // appShell stands in for the macOS app's "berth" script message
  // handler (a mock: chromium has no WKWebView), double-clicks name's
  // row (Shell) and returns what the page posted to it, and how many
  // tabs it opened.
  async appShell(name) {
    await page.evaluate(() => {
      window.berthPosted = [];
      window.webkit = { messageHandlers: { berth: { postMessage: (m) => window.berthPosted.push(m) } } };
    });
    const pages = context.pages().length;
    await row(name).dblclick();
    await page.waitForFunction(() => window.berthPosted.length > 0, null, { timeout });
    await page.waitForTimeout(200);
    const posted = await page.evaluate(() => window.berthPosted);
    await page.evaluate(() => {
      delete window.webkit;
    });
    return { posted, tabs: context.pages().length - pages };
  },
  // goto loads the window's URL with fragment (e.g. "#settings") and
  // waits for it; returns the view's title.
  async goto(fragment) {
    await page.goto(url.replace(/#.*/, "") + fragment);
    await page.waitForSelector("body[data-ready='1']", { timeout });
    return await page.textContent("#title");
  },
  // settings shows the Settings view and waits for the engine's status;
  // returns what it shows.
  async settings() {
    await page.click('.nav[data-view="settings"]');
    await page.waitForSelector("#settings[data-ready='1']:not([hidden])", { timeout });
    return await this.settingsShown();
  },
  // settingsShown is what the Settings view shows now.
  async settingsShown() {
    return await page.evaluate(() => {
      const t = (id) => document.getElementById(id).textContent;
      const login = document.getElementById("set-login");
      return {
        title: t("title"),
        hidden: document.getElementById("settings").hidden,
        version: t("set-version"),
        backend: t("set-backend"),
        home: t("set-home"),
        kernel: t("set-kernel"),
        kernelSource: t("set-kernel-source"),
        loginDisabled: login.disabled,
        loginChecked: login.checked,
        loginReason: t("set-login-reason"),
        listHidden: document.getElementById("list").hidden,
      };
    });
  },
  // appSettings stands in for the macOS app's "berth" script message
  // handler (a mock: chromium has no WKWebView) that records what the
  // page posts, shows the Settings view afresh and returns the posts.
  // The mock stays until noApp.
  async appSettings() {
    await page.evaluate(() => {
      window.berthPosted = [];
      window.webkit = { messageHandlers: { berth: { postMessage: (m) => window.berthPosted.push(m) } } };
    });
    await page.click('.nav[data-view="containers"]');
    await page.click('.nav[data-view="settings"]');
    await page.waitForFunction(() => window.berthPosted.length > 0, null, { timeout });
    return await page.evaluate(() => window.berthPosted);
  },
  // toggleLogin clicks Launch at Login once it is enabled and returns
  // what the page posted to the mocked handler for it.
  async toggleLogin() {
    await page.waitForSelector("#set-login:not([disabled])", { timeout });
    const n = await page.evaluate(() => window.berthPosted.length);
    await page.click("#set-login");
    await page.waitForFunction((k) => window.berthPosted.length > k, n, { timeout });
    return { posted: await page.evaluate((k) => window.berthPosted.slice(k), n), disabled: await page.isDisabled("#set-login") };
  },
  // noApp removes the mocked handler.
  async noApp() {
    await page.evaluate(() => {
      delete window.webkit;
    });
    return null;
  },
  // rowCenter is the middle of name's row in CSS pixels from the
  // viewport's top left.
  async rowCenter(name) {
    const b = await row(name).boundingBox();
    if (!b) throw new Error(`row ${name} is not shown`);
    return { x: b.x + b.width / 2, y: b.y + b.height / 2 };
  },
  // eval evaluates a script (an expression) in the page.
  async eval(script) {
    return await page.evaluate(script);
  },
  async search(q) {
    await page.fill("#logs-search", q);
    const marks = await page.locator("#logs-text mark").allTextContents();
    const lines = (await page.textContent("#logs-text")).split("\n").filter(Boolean);
    return { marks: marks.length, lines };
  },
  async palette(text) {
    await page.keyboard.press("Control+K");
    await page.fill("#palette-input", text);
    const items = await page.locator("#palette-list li").allTextContents();
    await page.keyboard.press("Enter");
    return items;
  },
  // paletteItem opens the palette, types text and waits for an item
  // labelled label; returns it ({label, disabled, reason}) and the
  // labels listed, then presses Enter (a disabled item must leave the
  // palette open, so it is closed with Escape after) and says whether
  // the palette stayed open.
  async paletteItem(text, label) {
    await page.keyboard.press("Control+K");
    await page.fill("#palette-input", text);
    const deadline = Date.now() + timeout;
    for (;;) {
      const items = await page.evaluate(() =>
        [...document.querySelectorAll("#palette-list li")].map((li) => ({
          label: li.firstChild?.textContent ?? "",
          disabled: li.getAttribute("aria-disabled") === "true",
          reason: li.querySelector(".reason")?.textContent ?? "",
        })),
      );
      const it = items.find((i) => i.label === label);
      if (it) {
        const before = await page.evaluate(() => [...document.querySelectorAll("#palette-list li")].findIndex((li) => li.getAttribute("aria-selected") === "true"));
        // Select it with the arrow keys, then Enter, as a user would.
        const at = items.indexOf(it);
        for (let i = Math.max(0, before); i < at; i++) await page.keyboard.press("ArrowDown");
        await page.keyboard.press("Enter");
        await page.waitForTimeout(200);
        const open = await page.evaluate(() => document.getElementById("palette").open);
        if (open) await page.keyboard.press("Escape");
        return { ...it, labels: items.map((i) => i.label), stayedOpen: open };
      }
      if (Date.now() > deadline) throw new Error(`palette ${JSON.stringify(text)}: no item ${JSON.stringify(label)} in ${JSON.stringify(items)}`);
      await page.waitForTimeout(100);
    }
  },
  // appPlugin stands in for the macOS app's "berth" script message
  // handler (a mock: chromium has no WKWebView), runs the palette item
  // labelled label found by typing text, and returns what the page
  // posted to the handler.
  async appPlugin(text, label) {
    await page.evaluate(() => {
      window.berthPosted = [];
      window.webkit = { messageHandlers: { berth: { postMessage: (m) => window.berthPosted.push(m) } } };
    });
    const it = await this.paletteItem(text, label);
    const posted = await page.evaluate(() => window.berthPosted);
    await page.evaluate(() => {
      delete window.webkit;
    });
    return { ...it, posted };
  },
  // stats waits for name's row to show a CPU sparkline of at least min
  // (2) samples and a memory figure; returns them and the open stats streams.
  async stats(name, min = 2) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const got = await row(name).evaluate((tr) => ({
        cpuSamples: +(tr.querySelector("td.cpu svg")?.dataset.samples ?? 0),
        cpuPoints: (tr.querySelector("td.cpu polyline")?.getAttribute("points") ?? "").split(" ").filter(Boolean).length,
        cpu: tr.querySelector("td.cpu .figure")?.textContent ?? "",
        memSamples: +(tr.querySelector("td.mem svg")?.dataset.samples ?? 0),
        mem: tr.querySelector("td.mem .figure")?.textContent ?? "",
        memTitle: tr.querySelector("td.mem")?.title ?? "",
      }));
      if (got.cpuSamples >= min && /\d/.test(got.mem)) return { ...got, streams: await this.streams() };
      if (Date.now() > deadline) throw new Error(`row ${name}: stats ${JSON.stringify(got)}`);
      await page.waitForTimeout(200);
    }
  },
  // shares selects name's row and waits for its Shared Folders panel to
  // list exactly the container paths targets (any order); returns each
  // share's text, kind (create or run) and whether its Stop Sharing is
  // enabled, with the button's tooltip. click false: the row is already
  // selected (only an event can change the panel).
  async shares(name, targets, click = true) {
    if (click) await row(name).click();
    const want = [...targets].sort().join("\n");
    const deadline = Date.now() + timeout;
    for (;;) {
      const got = await page.evaluate(() => {
        const box = document.getElementById("shares");
        return {
          hidden: box.hidden,
          title: document.getElementById("shares-title").textContent,
          shares: [...box.querySelectorAll("li")].map((li) => ({
            target: li.dataset.target,
            kind: li.dataset.kind,
            text: li.querySelector(".share-path").textContent,
            stopEnabled: !li.querySelector("button").disabled,
            stopTitle: li.querySelector("button").title,
          })),
        };
      });
      const have = got.hidden ? "" : got.shares.map((s) => s.target).sort().join("\n");
      if (have === want) return got;
      if (Date.now() > deadline) throw new Error(`row ${name}: shared folders ${JSON.stringify(got)}, want ${JSON.stringify(targets)}`);
      await page.waitForTimeout(100);
    }
  },
  // stopSharing clicks Stop Sharing on the share at target of the
  // selected container.
  async stopSharing(target) {
    await page.click(`#shares-list li[data-target="${target}"] button`);
    return null;
  },
  // streams is how many stats streams the page holds open.
  async streams() {
    return +(await page.evaluate(() => document.body.dataset.statsStreams ?? "-1"));
  },
  // selected is the selected row's name.
  async selected() {
    return await page.getAttribute('#table tbody tr[aria-selected="true"]', "data-name");
  },
  // pull runs "pull REF" from the palette and waits for the pull to end;
  // returns its title, status and layers.
  async pull(ref) {
    const before = await page.evaluate((r) => [...document.querySelectorAll(".pull")].filter((b) => b.dataset.ref === r).length, ref);
    await page.keyboard.press("Control+K");
    await page.fill("#palette-input", `pull ${ref}`);
    await page.keyboard.press("Enter");
    await page.waitForFunction(
      ([r, n]) => {
        const mine = [...document.querySelectorAll(".pull")].filter((b) => b.dataset.ref === r);
        return mine.length > n && mine.at(-1).dataset.done !== undefined;
      },
      [ref, before],
      { timeout: 120_000 },
    );
    const box = page.locator(`.pull[data-ref="${ref}"]`).last();
    return await box.evaluate((b) => ({
      done: b.dataset.done,
      title: b.querySelector(".pull-title").textContent,
      status: b.querySelector(".pull-status").textContent,
      layers: [...b.querySelectorAll("li")].map((li) => ({
        id: li.dataset.layer,
        status: li.dataset.status,
        value: li.querySelector("progress").value,
        max: li.querySelector("progress").max,
        bytes: li.querySelector(".layer-bytes").textContent,
      })),
    }));
  },
  // dismissPulls closes the finished pulls but the last one for ref.
  async dismissPulls(keep) {
    const boxes = page.locator(".pull");
    for (let i = (await boxes.count()) - 1; i >= 0; i--) {
      const b = boxes.nth(i);
      if ((await b.getAttribute("data-ref")) === keep && (await b.getAttribute("data-done")) === "ok") continue;
      await b.locator(".pull-close").click();
    }
    return null;
  },
  // bannerMatch waits for the banner to match re and returns it.
  async bannerMatch(re) {
    const rx = new RegExp(re);
    const deadline = Date.now() + timeout;
    for (;;) {
      const text = (await page.isVisible("#banner")) ? await page.textContent("#banner-text") : "";
      if (rx.test(text)) return text;
      if (Date.now() > deadline) throw new Error(`banner ${JSON.stringify(text)}, want /${re}/`);
      await page.waitForTimeout(100);
    }
  },
  // dismissBanner closes the error banner with its × button.
  async dismissBanner() {
    if (await page.isVisible("#banner")) await page.click("#banner-close");
    return await page.isVisible("#banner");
  },
  async banner() {
    return (await page.isVisible("#banner")) ? await page.textContent("#banner-text") : "";
  },
  async screenshot(path, scheme) {
    await page.emulateMedia({ colorScheme: scheme ?? "light" });
    await page.waitForTimeout(200);
    await page.screenshot({ path });
    return null;
  },
};

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  const [cmd, ...args] = JSON.parse(line);
  try {
    if (!handlers[cmd]) throw new Error(`unknown command ${cmd}`);
    out({ ok: true, result: await handlers[cmd](...args) });
  } catch (e) {
    out({ ok: false, error: String(e?.message ?? e) });
  }
}
await browser.close();
