// The Berth window (docs/berth-window.md): the engine's containers and
// images, live over /events, with actions, logs and shells. It signs in
// once with the token in its URL's fragment, then calls /ui/api/…, an
// allowlisted part of the engine's own API, with its session cookie.

import { ago, bytes, demux } from "./format";

interface Port { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }
interface Container {
  Id: string;
  Names: string[];
  Image: string;
  ImageID: string;
  State: string;
  Status: string;
  Created: number;
  Ports: Port[] | null;
  NetworkSettings?: { Networks?: Record<string, { IPAddress?: string }> };
}
interface Image { Id: string; RepoTags: string[] | null; RepoDigests?: string[] | null; Size: number; Created: number }
type View = "containers" | "images";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const state = {
  view: "containers" as View,
  containers: [] as Container[],
  images: [] as Image[],
  selected: { containers: "", images: "" } as Record<View, string>,
};

/** api calls /ui/api PATH; a non-2xx answer throws its text. */
async function api(path: string, init: RequestInit = {}): Promise<Response> {
  const r = await fetch("/ui/api" + path, { credentials: "same-origin", ...init });
  if (r.status === 401) {
    throw new Error("Not signed in: run berth ui again and open the URL it prints.");
  }
  if (!r.ok) {
    const text = (await r.text()).trim();
    let msg = text;
    try {
      msg = (JSON.parse(text) as { message?: string }).message ?? text;
    } catch {
      // plain text
    }
    throw new Error(msg || `${r.status} ${r.statusText}`);
  }
  return r;
}

function banner(msg: string) {
  const b = $("banner");
  b.textContent = msg;
  b.hidden = msg === "";
}

async function signIn() {
  const m = /[#&]token=([0-9a-f]+)/.exec(location.hash);
  if (!m) return;
  history.replaceState(null, "", location.pathname);
  const r = await fetch("/ui/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: m[1] }),
  });
  if (!r.ok) throw new Error((await r.text()).trim());
}

const name = (c: Container) => (c.Names[0] ?? c.Id.slice(0, 12)).replace(/^\//, "");
const shortID = (id: string) => id.replace(/^sha256:/, "").slice(0, 12);
const ip = (c: Container) =>
  Object.values(c.NetworkSettings?.Networks ?? {})
    .map((n) => n.IPAddress)
    .filter(Boolean)
    .join(", ");
const ports = (c: Container) =>
  (c.Ports ?? [])
    .map((p) => (p.PublicPort ? `${p.PublicPort}→${p.PrivatePort}/${p.Type}` : `${p.PrivatePort}/${p.Type}`))
    .join(", ");
const imageName = (i: Image) => i.RepoTags?.filter((t) => t !== "<none>:<none>")[0] ?? shortID(i.Id);
const inUse = (i: Image) => state.containers.some((c) => c.ImageID === i.Id);

async function refresh() {
  try {
    const [cs, is] = await Promise.all([
      api("/containers/json?all=1").then((r) => r.json() as Promise<Container[]>),
      api("/images/json").then((r) => r.json() as Promise<Image[]>),
    ]);
    state.containers = cs.sort((a, b) => b.Created - a.Created || name(a).localeCompare(name(b)));
    state.images = is.sort((a, b) => imageName(a).localeCompare(imageName(b)));
    render();
  } catch (e) {
    banner(String((e as Error).message));
  }
}

let refreshTimer = 0;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = window.setTimeout(refresh, 80);
}

/** watchEvents refreshes on every engine event, reconnecting on loss. */
async function watchEvents() {
  for (;;) {
    try {
      const r = await api("/events");
      const reader = r.body!.getReader();
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
        refreshSoon();
      }
    } catch {
      // the engine went away or restarted: try again
    }
    await new Promise((res) => setTimeout(res, 1000));
    refreshSoon();
  }
}

function cell(tr: HTMLTableRowElement, text: string, cls = "") {
  const td = tr.insertCell();
  td.textContent = text;
  td.title = text;
  if (cls) td.className = cls;
  return td;
}

function render() {
  const thead = $<HTMLTableElement>("table").tHead!;
  const tbody = $<HTMLTableElement>("table").tBodies[0];
  const v = state.view;
  $("title").textContent = v === "containers" ? "Containers" : "Images";
  $("count-containers").textContent = String(state.containers.length);
  $("count-images").textContent = String(state.images.length);
  for (const b of document.querySelectorAll<HTMLButtonElement>(".nav")) {
    if (b.dataset.view === v) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  const heads = v === "containers" ? ["Name", "State", "Image", "IP", "Ports", "Created"] : ["Image", "ID", "Size", "Created", "In use"];
  thead.replaceChildren();
  const hr = thead.insertRow();
  for (const h of heads) {
    const th = document.createElement("th");
    th.textContent = h;
    hr.append(th);
  }
  tbody.replaceChildren();
  const ids = v === "containers" ? state.containers.map((c) => c.Id) : state.images.map((i) => i.Id);
  if (!ids.includes(state.selected[v])) state.selected[v] = ids[0] ?? "";
  if (v === "containers") {
    for (const c of state.containers) {
      const tr = tbody.insertRow();
      tr.dataset.id = c.Id;
      tr.dataset.name = name(c);
      cell(tr, name(c));
      // The state, not Docker's Status line ("Up 3 seconds"), which is
      // only as fresh as the last list; the line is the tooltip.
      cell(tr, c.State.charAt(0).toUpperCase() + c.State.slice(1), `state ${c.State}`).title = c.Status;
      cell(tr, c.Image, "sub");
      cell(tr, ip(c), "sub");
      cell(tr, ports(c), "sub");
      cell(tr, ago(c.Created), "sub");
    }
  } else {
    for (const i of state.images) {
      const tr = tbody.insertRow();
      tr.dataset.id = i.Id;
      tr.dataset.name = imageName(i);
      cell(tr, imageName(i));
      cell(tr, shortID(i.Id), "sub");
      cell(tr, bytes(i.Size), "sub");
      cell(tr, ago(i.Created), "sub");
      cell(tr, inUse(i) ? "In use" : "", "sub");
    }
  }
  for (const tr of tbody.rows) {
    tr.setAttribute("aria-selected", String(tr.dataset.id === state.selected[v]));
    tr.addEventListener("click", () => select(tr.dataset.id!));
    tr.addEventListener("dblclick", () => v === "containers" && act("shell"));
  }
  const empty = $("empty");
  empty.hidden = ids.length > 0;
  empty.textContent = v === "containers" ? "No containers. Run one: berth run -d IMAGE" : "No images. Pull one: berth pull IMAGE";
  updateActions();
  syncLogs();
}

function selectedContainer(): Container | undefined {
  return state.containers.find((c) => c.Id === state.selected.containers);
}

function updateActions() {
  const v = state.view;
  const c = selectedContainer();
  const running = c?.State === "running";
  for (const b of document.querySelectorAll<HTMLButtonElement>("#actions button")) {
    const a = b.dataset.action!;
    if (v === "images") {
      b.hidden = a !== "remove";
      b.disabled = !state.selected.images;
      continue;
    }
    b.hidden = false;
    b.disabled = !c || (a === "start" ? running : a === "stop" || a === "restart" || a === "shell" ? !running : false);
  }
}

function select(id: string) {
  state.selected[state.view] = id;
  for (const tr of $<HTMLTableElement>("table").tBodies[0].rows) {
    tr.setAttribute("aria-selected", String(tr.dataset.id === id));
    if (tr.dataset.id === id) tr.scrollIntoView({ block: "nearest" });
  }
  updateActions();
  syncLogs();
}

function move(delta: number) {
  const rows = [...$<HTMLTableElement>("table").tBodies[0].rows];
  const i = rows.findIndex((r) => r.dataset.id === state.selected[state.view]);
  const next = rows[Math.max(0, Math.min(rows.length - 1, i + delta))];
  if (next) select(next.dataset.id!);
}

function show(v: View) {
  state.view = v;
  render();
  $("list").focus();
}

type Action = "start" | "stop" | "restart" | "remove" | "shell";

async function act(a: Action, target?: Container) {
  banner("");
  try {
    if (state.view === "images" && !target) {
      const img = state.images.find((i) => i.Id === state.selected.images);
      if (!img || a !== "remove") return;
      if (!confirm(`Remove the image ${imageName(img)}?`)) return;
      await api(`/images/${encodeURIComponent(img.Id)}`, { method: "DELETE" });
      refreshSoon();
      return;
    }
    const c = target ?? selectedContainer();
    if (!c) return;
    const id = encodeURIComponent(c.Id);
    switch (a) {
      case "start":
      case "stop":
      case "restart":
        await api(`/containers/${id}/${a}`, { method: "POST" });
        break;
      case "remove":
        if (!confirm(`Remove the container ${name(c)}?`)) return;
        await api(`/containers/${id}`, { method: "DELETE" });
        break;
      case "shell": {
        // In the macOS app the app opens its own terminal window.
        const app = appBridge();
        if (app) {
          app.postMessage({ t: "shell", d: c.Id });
          break;
        }
        // Opened now, while the key or click still counts as the user's.
        const w = window.open("about:blank", "_blank");
        try {
          const r = await api(`/berth/containers/${id}/terminals`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
          const t = (await r.json()) as { url: string };
          if (w) {
            w.opener = null;
            w.location.href = t.url;
          } else {
            window.open(t.url, "_blank", "noopener");
          }
        } catch (e) {
          w?.close();
          throw e;
        }
        break;
      }
    }
    refreshSoon();
  } catch (e) {
    banner(String((e as Error).message));
  }
}

// Logs: the selected container's, followed while it runs.
let logsFor = "";
let logsAbort: AbortController | null = null;
let logsBuf = "";
const maxLogs = 1 << 20;

function syncLogs() {
  const c = state.view === "containers" ? selectedContainer() : undefined;
  $("logs").hidden = !c;
  const key = c ? `${c.Id}/${c.State}/${($("logs-follow") as HTMLInputElement).checked}` : "";
  if (key === logsFor) return;
  logsFor = key;
  logsAbort?.abort();
  logsAbort = null;
  logsBuf = "";
  renderLogs();
  if (c) streamLogs(c);
}

async function streamLogs(c: Container) {
  $("logs-title").textContent = `Logs — ${name(c)}`;
  const ctl = new AbortController();
  logsAbort = ctl;
  const follow = ($("logs-follow") as HTMLInputElement).checked && c.State === "running";
  try {
    const r = await api(`/containers/${encodeURIComponent(c.Id)}/logs?stdout=1&stderr=1&tail=1000${follow ? "&follow=1" : ""}`, { signal: ctl.signal });
    const muxed = (r.headers.get("Content-Type") ?? "").includes("multiplexed");
    const reader = r.body!.getReader();
    const text = new TextDecoder();
    let pending: Uint8Array<ArrayBufferLike> = new Uint8Array(0);
    for (;;) {
      const { done, value } = await reader.read();
      if (done || ctl.signal.aborted) break;
      let chunk: Uint8Array<ArrayBufferLike> = value;
      if (muxed) {
        const out = demux(pending, value);
        pending = out.rest;
        chunk = out.data;
      }
      logsBuf += text.decode(chunk, { stream: true });
      if (logsBuf.length > maxLogs) logsBuf = logsBuf.slice(logsBuf.length - maxLogs);
      renderLogs();
    }
  } catch (e) {
    if (!ctl.signal.aborted) banner(`Logs of ${name(c)}: ${(e as Error).message}`);
  }
}

function renderLogs() {
  const pre = $("logs-text");
  const q = ($("logs-search") as HTMLInputElement).value;
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  if (!q) {
    pre.textContent = logsBuf;
  } else {
    // Only the matching lines, the matches marked.
    const lines = logsBuf.split("\n").filter((l) => l.toLowerCase().includes(q.toLowerCase()));
    pre.replaceChildren();
    const lq = q.toLowerCase();
    for (const l of lines) {
      let i = 0;
      for (;;) {
        const j = l.toLowerCase().indexOf(lq, i);
        if (j < 0) break;
        pre.append(l.slice(i, j));
        const m = document.createElement("mark");
        m.textContent = l.slice(j, j + q.length);
        pre.append(m);
        i = j + q.length;
      }
      pre.append(l.slice(i) + "\n");
    }
  }
  if (atEnd && ($("logs-follow") as HTMLInputElement).checked) pre.scrollTop = pre.scrollHeight;
}

// The command palette (Ctrl-K or ⌘K): actions by typing.
interface Command { label: string; run: () => void }

function commands(): Command[] {
  const out: Command[] = [
    { label: "Show Containers", run: () => show("containers") },
    { label: "Show Images", run: () => show("images") },
  ];
  for (const c of state.containers) {
    const n = name(c);
    const running = c.State === "running";
    if (running) {
      out.push({ label: `Shell ${n}`, run: () => act("shell", c) });
      out.push({ label: `Stop ${n}`, run: () => act("stop", c) });
      out.push({ label: `Restart ${n}`, run: () => act("restart", c) });
    } else {
      out.push({ label: `Start ${n}`, run: () => act("start", c) });
    }
    out.push({ label: `Logs ${n}`, run: () => { state.view = "containers"; state.selected.containers = c.Id; render(); } });
    out.push({ label: `Remove ${n}`, run: () => act("remove", c) });
  }
  return out;
}

let paletteItems: Command[] = [];
let paletteIndex = 0;

function openPalette() {
  const d = $<HTMLDialogElement>("palette");
  const input = $<HTMLInputElement>("palette-input");
  input.value = "";
  filterPalette();
  if (!d.open) d.showModal();
  input.focus();
}

function filterPalette() {
  const words = $<HTMLInputElement>("palette-input").value.toLowerCase().split(/\s+/).filter(Boolean);
  paletteItems = commands().filter((c) => words.every((w) => c.label.toLowerCase().includes(w)));
  paletteIndex = 0;
  renderPalette();
}

function renderPalette() {
  const ul = $("palette-list");
  ul.replaceChildren(
    ...paletteItems.map((c, i) => {
      const li = document.createElement("li");
      li.textContent = c.label;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(i === paletteIndex));
      li.addEventListener("click", () => runPalette(i));
      return li;
    }),
  );
}

function runPalette(i: number) {
  const c = paletteItems[i];
  $<HTMLDialogElement>("palette").close();
  c?.run();
}

function keys() {
  document.addEventListener("keydown", (e) => {
    if ((e.metaKey || e.ctrlKey) && e.key.toLowerCase() === "k") {
      e.preventDefault();
      openPalette();
      return;
    }
    const target = e.target as HTMLElement;
    if ($<HTMLDialogElement>("palette").open || target.tagName === "INPUT") return;
    if (e.metaKey || e.ctrlKey || e.altKey) return;
    const k: Record<string, () => void> = {
      ArrowDown: () => move(1),
      ArrowUp: () => move(-1),
      j: () => move(1),
      k: () => move(-1),
      "1": () => show("containers"),
      "2": () => show("images"),
      Enter: () => state.view === "containers" && act("shell"),
      Delete: () => act("remove"),
      Backspace: () => act("remove"),
      s: () => act("start"),
      ".": () => act("stop"),
      r: () => act("restart"),
      "/": () => $("logs-search").focus(),
    };
    const f = k[e.key];
    if (f) {
      e.preventDefault();
      f();
    }
  });
  $("palette-input").addEventListener("input", filterPalette);
  $("palette-input").addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const n = paletteItems.length;
      if (n) paletteIndex = (paletteIndex + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
      renderPalette();
    } else if (e.key === "Enter") {
      e.preventDefault();
      runPalette(paletteIndex);
    }
  });
}

async function main() {
  for (const b of document.querySelectorAll<HTMLButtonElement>(".nav")) {
    b.addEventListener("click", () => show(b.dataset.view as View));
  }
  for (const b of document.querySelectorAll<HTMLButtonElement>("#actions button")) {
    b.addEventListener("click", () => act(b.dataset.action as Action));
  }
  $("logs-search").addEventListener("input", renderLogs);
  $("logs-follow").addEventListener("change", syncLogs);
  keys();
  try {
    await signIn();
  } catch (e) {
    banner(`Could not sign in: ${(e as Error).message}`);
    return;
  }
  await refresh();
  document.body.dataset.ready = "1";
  $("list").focus();
  void watchEvents();
  // Created times ("3 minutes ago") age.
  setInterval(() => {
    for (const tr of $<HTMLTableElement>("table").tBodies[0].rows) {
      const item = state.view === "containers" ? state.containers.find((c) => c.Id === tr.dataset.id) : state.images.find((i) => i.Id === tr.dataset.id);
      const cell = tr.cells[state.view === "containers" ? 5 : 3];
      if (item && cell) cell.textContent = ago(item.Created);
    }
  }, 30_000);
}

// The macOS app's web view (app/appwindow): the page posts {t, d} to its
// "berth" script message handler, and the app asks berthRowAt which
// container row a Finder drop landed on.
interface AppBridge {
  postMessage(m: { t: "shell"; d: string }): void;
}

function appBridge(): AppBridge | undefined {
  return (window as unknown as { webkit?: { messageHandlers?: { berth?: AppBridge } } }).webkit?.messageHandlers?.berth;
}

/** berthRowAt is the ID of the container whose row is at (x, y), in CSS pixels from the viewport's top left, or "". */
function berthRowAt(x: number, y: number): string {
  if (state.view !== "containers") return "";
  const tr = document.elementFromPoint(x, y)?.closest<HTMLTableRowElement>("#table tbody tr[data-id]");
  return tr?.dataset.id ?? "";
}
(window as unknown as { berthRowAt: typeof berthRowAt }).berthRowAt = berthRowAt;

void main();
