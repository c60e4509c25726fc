// menu-shot.mjs screenshots app/menu's HTML rendering of the menu
// (app/menu/testdata/menu.html, written by app/menu's TestRenderHTML) in
// chromium, light and dark, for make screenshots.
//
// Usage: node test/menu-shot.mjs MENU.html LIGHT.png DARK.png
//        (chromium at /usr/bin/chromium, or $CHROMIUM)

import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

const [html, light, dark] = process.argv.slice(2);
if (!html || !light || !dark) {
  console.error("usage: node test/menu-shot.mjs MENU.html LIGHT.png DARK.png");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  for (const [scheme, out] of [["light", light], ["dark", dark]]) {
    const page = await browser.newPage({ viewport: { width: 700, height: 400 }, deviceScaleFactor: 1, colorScheme: scheme });
    await page.goto(pathToFileURL(resolve(html)).href);
    const items = await page.locator(".item").count();
    if (items < 10) throw new Error(`${html}: ${items} menu items, want a whole menu`);
    await page.locator("#shot").screenshot({ path: out });
    await page.close();
    console.log(`${out}: ${items} items, ${scheme}`);
  }
} finally {
  await browser.close();
}
