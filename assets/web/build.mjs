// build.mjs bundles the web pages into dist/ with esbuild's JS API: the
// terminal page's index.html, app.js (the TypeScript in src/ and xterm.js
// with its addons), app.css and xterm.css; the Berth window's
// window.html, window.js and window.css (src/window/). Nothing is loaded from elsewhere at run time.
// dist/README.txt is committed and kept; everything else there is output.
//
// Usage: node build.mjs   (after npm ci; `make web` does both)

import * as esbuild from "esbuild";
import { copyFile, mkdir, readdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, "dist");

await mkdir(dist, { recursive: true });
for (const name of await readdir(dist)) {
  if (name !== "README.txt") await rm(join(dist, name), { recursive: true, force: true });
}

const common = {
  bundle: true,
  minify: true,
  sourcemap: false,
  legalComments: "eof",
  logLevel: "warning",
  // WKWebView on macOS 13 and later; current Chromium and Firefox.
  target: ["safari16", "chrome110", "firefox110"],
};

// The page's script; its styles are the two CSS entry points below.
await esbuild.build({
  ...common,
  entryPoints: { app: join(root, "src/main.ts") },
  format: "iife",
  outdir: dist,
});
await esbuild.build({
  ...common,
  entryPoints: {
    app: join(root, "src/app.css"),
    xterm: join(root, "node_modules/@xterm/xterm/css/xterm.css"),
  },
  outdir: dist,
});
await copyFile(join(root, "src/index.html"), join(dist, "index.html"));

// The Berth window (docs/berth-window.md): window.html, window.js and
// window.css, served at / by the engine's loopback server.
await esbuild.build({
  ...common,
  entryPoints: { window: join(root, "src/window/main.ts") },
  format: "iife",
  outdir: dist,
});
await esbuild.build({
  ...common,
  entryPoints: { window: join(root, "src/window/window.css") },
  outdir: dist,
});
await copyFile(join(root, "src/window/window.html"), join(dist, "window.html"));

const files = (await readdir(dist)).filter((n) => n !== "README.txt").sort();
console.log(`web: built ${files.join(", ")} in ${dist}`);
