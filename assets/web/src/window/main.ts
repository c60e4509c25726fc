// The Berth window (docs/berth-window.md): the engine's containers and
// images, live over /events, with actions, logs and shells. It signs in
// once with the token in its URL's fragment, then calls /ui/api/…, an
// allowlisted part of the engine's own API, with its session cookie.

import { ago, bytes, cpuPercent, demux, sparkPoints, words, type StatsSample } from "./format";

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
  // Mounts are the binds and volumes made at create time (-v, --mount).
  Mounts?: { Type: string; Name?: string; Source: string; Destination: string; RW: boolean }[] | null;
}
// RunShare is a run-time share (GET /berth/containers/{id}/shares).
interface RunShare { source: string; target: string; readOnly?: boolean }
interface Image { Id: string; RepoTags: string[] | null; RepoDigests?: string[] | null; Size: number; Created: number }
type View = "containers" | "images" | "settings";
const views: View[] = ["containers", "images", "settings"];

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const state = {
  view: "containers" as View,
  containers: [] as Container[],
  images: [] as Image[],
  selected: { containers: "", images: "", settings: "" } as Record<View, string>,
  // shares are the run-time shares of the selected container, by ID.
  shares: new Map<string, RunShare[]>(),
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
  $("banner-text").textContent = msg;
  $("banner").hidden = msg === "";
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
const users = (i: Image) => state.containers.filter((c) => c.ImageID === i.Id).length;
const inUse = (i: Image) => {
  const n = users(i);
  return n === 0 ? "" : n === 1 ? "1 container" : `${n} containers`;
};

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

// selectNext is a container to select once the list has it (one the
// page just created).
let selectNext = "";

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
  $("title").textContent = v === "containers" ? "Containers" : v === "images" ? "Images" : "Settings";
  $("count-containers").textContent = String(state.containers.length);
  $("count-images").textContent = String(state.images.length);
  for (const b of document.querySelectorAll<HTMLButtonElement>(".nav")) {
    if (b.dataset.view === v) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  $("list").hidden = v === "settings";
  $("actions").hidden = v === "settings";
  $("settings").hidden = v !== "settings";
  if (v === "settings") {
    $<HTMLTableElement>("table").tBodies[0].replaceChildren();
    syncLogs();
    syncStats();
    renderShares();
    return;
  }
  const heads = v === "containers" ? ["Name", "State", "Image", "IP", "Ports", "CPU", "Memory", "Created"] : ["Image", "ID", "Size", "Created", "In use"];
  thead.replaceChildren();
  const hr = thead.insertRow();
  for (const h of heads) {
    const th = document.createElement("th");
    th.textContent = h;
    hr.append(th);
  }
  tbody.replaceChildren();
  const ids = v === "containers" ? state.containers.map((c) => c.Id) : state.images.map((i) => i.Id);
  if (v === "containers" && ids.includes(selectNext)) {
    state.selected.containers = selectNext;
    selectNext = "";
  }
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
      cell(tr, "", "sub cpu");
      cell(tr, "", "sub mem");
      cell(tr, ago(c.Created), "sub created");
      renderStats(tr);
    }
  } else {
    for (const i of state.images) {
      const tr = tbody.insertRow();
      tr.dataset.id = i.Id;
      tr.dataset.name = imageName(i);
      cell(tr, imageName(i));
      cell(tr, shortID(i.Id), "sub");
      cell(tr, bytes(i.Size), "sub");
      cell(tr, ago(i.Created), "sub created");
      cell(tr, inUse(i), "sub");
    }
  }
  for (const tr of tbody.rows) {
    tr.setAttribute("aria-selected", String(tr.dataset.id === state.selected[v]));
    tr.addEventListener("click", () => select(tr.dataset.id!));
    tr.addEventListener("dblclick", () => v === "containers" && act("shell"));
  }
  const empty = $("empty");
  empty.hidden = ids.length > 0;
  empty.textContent = v === "containers" ? "No containers. Run one: Ctrl-K, run IMAGE" : "No images. Pull one: Ctrl-K, pull IMAGE";
  updateActions();
  syncLogs();
  syncStats();
  void syncShares();
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
      b.hidden = a !== "remove" && a !== "pull";
      b.disabled = a === "remove" && !state.selected.images;
      continue;
    }
    b.hidden = a === "pull";
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
  syncStats();
  void syncShares();
}

function move(delta: number) {
  const rows = [...$<HTMLTableElement>("table").tBodies[0].rows];
  const i = rows.findIndex((r) => r.dataset.id === state.selected[state.view]);
  const next = rows[Math.max(0, Math.min(rows.length - 1, i + delta))];
  if (next) select(next.dataset.id!);
}

function show(v: View) {
  const entering = v === "settings" && state.view !== "settings";
  state.view = v;
  render();
  if (v === "settings") {
    if (entering) void loadSettings();
    return;
  }
  $("list").focus();
}

// Settings: the engine's, read-only, from /berth/status; Launch at Login,
// which only the macOS app can change (through its script message
// handler, answered by window.berthSettings).
interface Status {
  version: string;
  commit?: string;
  backend: string;
  home: string;
  kernel: { version?: string; arch?: string; source?: string; path?: string; error?: string };
}
interface AppSettings {
  launchAtLogin: { available: boolean; on: boolean; pending: boolean; reason?: string };
  error?: string;
}

async function loadSettings() {
  const bridge = appBridge();
  const login = $<HTMLInputElement>("set-login");
  const reason = $("set-login-reason");
  login.disabled = true;
  reason.classList.remove("error");
  if (bridge) {
    // Enabled once the app answers (berthSettings).
    reason.textContent = "";
    bridge.postMessage({ t: "settings", d: "" });
  } else {
    login.checked = false;
    reason.textContent = "Only in the Mac app";
  }
  try {
    const st = (await (await api("/berth/status")).json()) as Status;
    $("set-version").textContent = st.version + (st.commit ? ` (${st.commit})` : "");
    $("set-backend").textContent = st.backend;
    $("set-home").textContent = st.home;
    const k = st.kernel ?? {};
    $("set-kernel").textContent = k.error ? k.error : [k.version, k.arch].filter(Boolean).join(" ") || "—";
    $("set-kernel-source").textContent = k.source ?? "—";
    $("set-kernel-source").title = k.path ?? "";
    $("settings").dataset.ready = "1";
  } catch (e) {
    banner(`Engine status: ${(e as Error).message}`);
  }
}

/** berthSettings is the macOS app's answer to {t: "settings"} and {t: "set-login"}. */
function berthSettings(s: AppSettings) {
  const l = s.launchAtLogin;
  const login = $<HTMLInputElement>("set-login");
  const reason = $("set-login-reason");
  login.disabled = !l.available;
  login.checked = l.on || l.pending;
  reason.textContent = s.error ?? l.reason ?? "";
  reason.classList.toggle("error", !!s.error);
}

function setLogin() {
  const bridge = appBridge();
  const login = $<HTMLInputElement>("set-login");
  if (!bridge) {
    login.checked = false;
    return;
  }
  // Disabled until the app answers with the state after.
  login.disabled = true;
  bridge.postMessage({ t: "set-login", d: login.checked ? "on" : "off" });
}

/** berthShow turns the page to a view (the app's Settings… menu item). */
function berthShow(v: string) {
  if ((views as string[]).includes(v)) show(v as View);
}

type Action = "start" | "stop" | "restart" | "remove" | "shell" | "pull";

async function act(a: Action, target?: Container) {
  banner("");
  if (a === "pull") {
    openPalette("pull ");
    return;
  }
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

// Shared folders: the selected container's, as the menu's Shared Folders
// lists them: those made at create time (-v, --mount: the list's Mounts,
// which last as long as the container) and the run-time ones (GET
// /berth/containers/{id}/shares, each with Stop Sharing). Fetched again
// on each refresh, so share_add and share_rm events show.
let sharesSeq = 0;

async function syncShares() {
  const c = state.view === "containers" ? selectedContainer() : undefined;
  if (!c) {
    renderShares();
    return;
  }
  const seq = ++sharesSeq;
  renderShares(); // the create-time ones now; the run-time ones when they come
  try {
    const list = (await (await api(`/berth/containers/${encodeURIComponent(c.Id)}/shares`)).json()) as RunShare[];
    if (seq !== sharesSeq) return;
    state.shares = new Map([[c.Id, list]]);
  } catch (e) {
    if (seq !== sharesSeq) return;
    state.shares = new Map();
    // Removed meanwhile: the next refresh drops its row.
    if (!/no such container/i.test((e as Error).message)) banner(`Shared folders of ${name(c)}: ${(e as Error).message}`);
  }
  renderShares();
}

/** volumeName is a volume's name, an anonymous one's 64-digit ID cut to 12 as the menu does. */
const volumeName = (n: string) => (/^[0-9a-f]{64}$/.test(n) ? n.slice(0, 12) : n);

function renderShares() {
  const c = state.view === "containers" ? selectedContainer() : undefined;
  const box = $("shares");
  const ul = $("shares-list");
  type Row = { text: string; target: string; atCreate: boolean };
  const rows: Row[] = [];
  if (c) {
    for (const m of c.Mounts ?? []) {
      const from = m.Type === "volume" && m.Name ? `volume ${volumeName(m.Name)}` : m.Source;
      rows.push({ text: `${from} → ${m.Destination}${m.RW ? "" : " (read-only)"}`, target: m.Destination, atCreate: true });
    }
    for (const sh of state.shares.get(c.Id) ?? []) {
      rows.push({ text: `${sh.source} → ${sh.target}${sh.readOnly ? " (read-only)" : ""}`, target: sh.target, atCreate: false });
    }
  }
  box.hidden = rows.length === 0;
  if (!c) return;
  $("shares-title").textContent = `Shared Folders — ${name(c)}`;
  ul.replaceChildren(
    ...rows.map((r) => {
      const li = document.createElement("li");
      li.dataset.target = r.target;
      li.dataset.kind = r.atCreate ? "create" : "run";
      const text = document.createElement("span");
      text.className = "share-path";
      text.textContent = r.text;
      text.title = r.text;
      const stop = document.createElement("button");
      stop.textContent = "Stop Sharing";
      if (r.atCreate) {
        const tag = document.createElement("span");
        tag.className = "share-tag";
        tag.textContent = "at create";
        li.append(text, tag);
        stop.disabled = true;
        stop.title = `Shared when ${name(c)} was created (-v or --mount): it lasts as long as the container.`;
      } else {
        li.append(text);
        stop.title = `Stop sharing ${r.target} with ${name(c)}`;
        stop.addEventListener("click", () => void stopSharing(c, r.target));
      }
      li.append(stop);
      return li;
    }),
  );
}

/** stopSharing ends a run-time share, as the menu's Stop Sharing does. */
async function stopSharing(c: Container, target: string) {
  banner("");
  try {
    await api(`/berth/containers/${encodeURIComponent(c.Id)}/shares?target=${encodeURIComponent(target)}`, { method: "DELETE" });
  } catch (e) {
    banner(`Stop sharing ${target} with ${name(c)}: ${(e as Error).message}`);
  }
  refreshSoon();
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

// Stats: a CPU and a memory sparkline on the rows of running containers
// that are in view, each fed by the engine's stats stream (one sample a
// second). A browser opens at most 6 connections to a host over HTTP/1.1,
// and the events and logs streams hold two, so at most maxStats streams
// run: the selected container's first, then from the top.
interface StatsState {
  ctl: AbortController;
  cpu: number[];
  mem: number[];
  memLimit: number;
}
const stats = new Map<string, StatsState>();
const maxStats = 3;
const statsSlots = 30;

function rowInView(tr: HTMLTableRowElement, box: DOMRect): boolean {
  const r = tr.getBoundingClientRect();
  return r.bottom > box.top && r.top < box.bottom;
}

function syncStats() {
  const want: string[] = [];
  if (state.view === "containers" && document.visibilityState === "visible") {
    const box = $("list").getBoundingClientRect();
    const running = new Set(state.containers.filter((c) => c.State === "running").map((c) => c.Id));
    const rows = [...$<HTMLTableElement>("table").tBodies[0].rows].filter((tr) => running.has(tr.dataset.id!) && rowInView(tr, box));
    rows.sort((a, b) => Number(b.dataset.id === state.selected.containers) - Number(a.dataset.id === state.selected.containers));
    want.push(...rows.slice(0, maxStats).map((tr) => tr.dataset.id!));
  }
  for (const [id, st] of stats) {
    if (!want.includes(id)) {
      st.ctl.abort();
      stats.delete(id);
    }
  }
  for (const id of want) if (!stats.has(id)) void streamStats(id);
  document.body.dataset.statsStreams = String(stats.size);
}

async function streamStats(id: string) {
  const st: StatsState = { ctl: new AbortController(), cpu: [], mem: [], memLimit: 0 };
  stats.set(id, st);
  try {
    const r = await api(`/containers/${encodeURIComponent(id)}/stats?stream=true`, { signal: st.ctl.signal });
    const reader = r.body!.getReader();
    const text = new TextDecoder();
    let buf = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += text.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const s = JSON.parse(line) as StatsSample;
        const cpu = cpuPercent(s);
        if (cpu !== null) st.cpu = [...st.cpu, cpu].slice(-statsSlots);
        if (s.memory_stats?.usage) st.mem = [...st.mem, s.memory_stats.usage].slice(-statsSlots);
        st.memLimit = s.memory_stats?.limit ?? 0;
        const tr = $<HTMLTableElement>("table").querySelector<HTMLTableRowElement>(`tbody tr[data-id="${id}"]`);
        if (tr) renderStats(tr);
      }
    }
  } catch {
    // aborted (out of view, stopped) or the engine went away: the
    // sparkline keeps its last samples until the row is drawn again
  }
  if (stats.get(id) === st && !st.ctl.signal.aborted) {
    // The engine ended the stream (the container stopped): a new one
    // starts on the next render if it runs again.
    stats.delete(id);
    document.body.dataset.statsStreams = String(stats.size);
  }
}

const svgNS = "http://www.w3.org/2000/svg";

function spark(values: number[], floor: number): SVGSVGElement {
  const w = 72;
  const h = 18;
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", String(w));
  svg.setAttribute("height", String(h));
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.dataset.samples = String(values.length);
  const track = document.createElementNS(svgNS, "rect");
  track.setAttribute("class", "track");
  track.setAttribute("width", String(w));
  track.setAttribute("height", String(h));
  track.setAttribute("rx", "3");
  svg.append(track);
  if (values.length > 0) {
    // Stretched across the box until there are statsSlots samples, then
    // scrolling: a fresh stream draws a whole line, not a stub.
    const vs = values.length === 1 ? [values[0], values[0]] : values;
    const pts = sparkPoints(vs, w, h, Math.min(vs.length, statsSlots), floor);
    const first = pts.split(" ")[0].split(",")[0];
    const area = document.createElementNS(svgNS, "polygon");
    area.setAttribute("class", "area");
    area.setAttribute("points", `${first},${h} ${pts} ${w},${h}`);
    const line = document.createElementNS(svgNS, "polyline");
    line.setAttribute("points", pts);
    svg.append(area, line);
  }
  return svg;
}

/** renderStats draws a container row's CPU and memory cells. */
function renderStats(tr: HTMLTableRowElement) {
  const st = stats.get(tr.dataset.id!);
  const cpuCell = tr.querySelector("td.cpu");
  const memCell = tr.querySelector("td.mem");
  if (!cpuCell || !memCell) return;
  if (!st) {
    cpuCell.replaceChildren();
    memCell.replaceChildren();
    cpuCell.removeAttribute("title");
    memCell.removeAttribute("title");
    return;
  }
  const cpu = st.cpu.at(-1);
  const cpuText = document.createElement("span");
  cpuText.className = "figure";
  cpuText.textContent = cpu === undefined ? "…" : `${cpu < 10 ? cpu.toFixed(1) : Math.round(cpu)}%`;
  cpuCell.replaceChildren(spark(st.cpu, 5), cpuText);
  (cpuCell as HTMLElement).title = cpu === undefined ? "CPU: waiting for a second sample" : `CPU ${cpuText.textContent} of one CPU, over the last second`;
  const mem = st.mem.at(-1);
  const memText = document.createElement("span");
  memText.className = "figure";
  memText.textContent = mem === undefined ? "…" : bytes(mem);
  // Memory against the VM's whole memory: how full it is.
  memCell.replaceChildren(spark(st.mem, st.memLimit || 1), memText);
  (memCell as HTMLElement).title = mem === undefined ? "" : `${bytes(mem)} used of the VM's ${bytes(st.memLimit)}`;
}

// Run and pull, from the palette ("run IMAGE [COMMAND]", "pull IMAGE")
// and the Images toolbar's Pull button.

/** runImage creates and starts a container: [--name NAME] IMAGE [COMMAND...]. */
async function runImage(args: string[]) {
  let nm = "";
  if (args[0] === "--name") {
    nm = args[1] ?? "";
    args = args.slice(2);
  } else if (args[0]?.startsWith("--name=")) {
    nm = args[0].slice("--name=".length);
    args = args.slice(1);
  }
  const [image, ...cmd] = args;
  banner("");
  if (!image) {
    banner("Run: name an image, as in run busybox sleep 60");
    return;
  }
  try {
    const r = await api(`/containers/create${nm ? "?name=" + encodeURIComponent(nm) : ""}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ Image: image, Cmd: cmd.length ? cmd : undefined }),
    });
    const { Id } = (await r.json()) as { Id: string };
    selectNext = Id;
    if (state.view !== "containers") show("containers");
    await api(`/containers/${encodeURIComponent(Id)}/start`, { method: "POST" });
  } catch (e) {
    let msg = (e as Error).message;
    if (/no such image/i.test(msg)) msg += `. Pull it first: Ctrl-K, pull ${image}`;
    banner(`Run ${image}: ${msg}`);
  }
  refreshSoon();
}

interface PullMessage {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
}

/** pullImage pulls ref, drawing Docker's progress messages per layer. */
async function pullImage(ref: string) {
  banner("");
  if (!ref) {
    banner("Pull: name an image, as in pull busybox:latest");
    return;
  }
  const box = document.createElement("div");
  box.className = "pull";
  box.dataset.ref = ref;
  const head = document.createElement("header");
  const title = document.createElement("span");
  title.className = "pull-title";
  title.textContent = `Pulling ${ref}`;
  const status = document.createElement("span");
  status.className = "pull-status";
  const close = document.createElement("button");
  close.className = "pull-close";
  close.textContent = "×";
  close.title = "Dismiss";
  close.setAttribute("aria-label", `Dismiss the pull of ${ref}`);
  head.append(title, status, close);
  const layers = document.createElement("ul");
  layers.className = "layers";
  box.append(head, layers);
  const ctl = new AbortController();
  close.addEventListener("click", () => {
    ctl.abort();
    box.remove();
    $("pulls").hidden = $("pulls").childElementCount === 0;
  });
  $("pulls").append(box);
  $("pulls").hidden = false;
  if (state.view !== "images") show("images");

  const layer = (id: string) => {
    let li = layers.querySelector<HTMLLIElement>(`li[data-layer="${CSS.escape(id)}"]`);
    if (!li) {
      li = document.createElement("li");
      li.dataset.layer = id;
      const idEl = document.createElement("span");
      idEl.className = "layer-id";
      idEl.textContent = id;
      const st = document.createElement("span");
      st.className = "layer-status";
      const bar = document.createElement("progress");
      bar.max = 1;
      bar.value = 0;
      const n = document.createElement("span");
      n.className = "layer-bytes";
      li.append(idEl, st, bar, n);
      layers.append(li);
    }
    return li;
  };
  const onMessage = (m: PullMessage) => {
    if (m.error) throw new Error(m.error);
    if (m.id && m.status && !m.status.startsWith("Pulling from")) {
      const li = layer(m.id);
      li.querySelector(".layer-status")!.textContent = m.status;
      li.dataset.status = m.status;
      const bar = li.querySelector("progress")!;
      const total = m.progressDetail?.total ?? 0;
      if (total > 0) {
        bar.max = total;
        bar.value = m.progressDetail?.current ?? 0;
        li.querySelector(".layer-bytes")!.textContent = `${bytes(bar.value)} / ${bytes(total)}`;
      }
      if (/complete|Already exists/.test(m.status)) {
        bar.value = bar.max;
        if (bar.max > 1) li.querySelector(".layer-bytes")!.textContent = bytes(bar.max);
      }
    } else if (m.status) {
      status.textContent = m.status.replace(/^Status: /, "");
    }
  };
  try {
    const r = await api(`/images/create?fromImage=${encodeURIComponent(ref)}`, { method: "POST", signal: ctl.signal });
    const reader = r.body!.getReader();
    const text = new TextDecoder();
    let buf = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (value) buf += text.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) onMessage(JSON.parse(line) as PullMessage);
      }
      if (done) break;
    }
    if (buf.trim()) onMessage(JSON.parse(buf) as PullMessage);
    title.textContent = `Pulled ${ref}`;
    box.dataset.done = "ok";
  } catch (e) {
    if (ctl.signal.aborted) return;
    const msg = (e as Error).message;
    title.textContent = `Could not pull ${ref}`;
    status.textContent = msg;
    box.dataset.done = "error";
    banner(`Pull ${ref}: ${msg}`);
  }
  refreshSoon();
}

// Plugins' menu entries (GET /berth/plugins/menu: the CLI plugins the
// engine finds, as the menu bar's Plugins section has them), offered in
// the palette. Running one runs `berth PLUGIN ARGS…` in Terminal, which
// only the macOS app can open: the page asks it through its message
// handler; in a browser the entries are shown disabled, with why.
interface PluginMenuItem { plugin: string; title: string; args: string[] }
let pluginMenu: PluginMenuItem[] = [];

async function loadPluginMenu() {
  try {
    pluginMenu = (await (await api("/berth/plugins/menu")).json()) as PluginMenuItem[];
  } catch {
    // an older engine, or it went away: no plugin entries
    pluginMenu = [];
  }
  if ($<HTMLDialogElement>("palette").open) filterPalette(false);
}

function pluginCommand(p: PluginMenuItem): Command {
  const line = ["berth", p.plugin, ...p.args].join(" ");
  const app = appBridge();
  if (!app) {
    return { label: `Plugin: ${p.title}`, disabled: `Runs ${line} in Terminal: only in the Mac app`, run: () => {} };
  }
  return { label: `Plugin: ${p.title}`, run: () => app.postMessage({ t: "plugin", d: JSON.stringify({ plugin: p.plugin, args: p.args }) }) };
}

// The command palette (Ctrl-K or ⌘K): actions by typing.
interface Command {
  label: string;
  run: () => void;
  // disabled, when set, is why the command cannot run here.
  disabled?: string;
}

function commands(input: string): Command[] {
  const out: Command[] = [];
  // "run IMAGE [COMMAND]" and "pull IMAGE" take what follows as arguments.
  const m = /^\s*(run|pull)\s+(\S.*)$/i.exec(input);
  if (m) {
    const args = words(m[2]);
    if (m[1].toLowerCase() === "run") out.push({ label: `Run ${m[2].trim()}`, run: () => void runImage(args) });
    else out.push({ label: `Pull ${args[0] ?? ""}`, run: () => void pullImage(args[0] ?? "") });
    return out;
  }
  out.push(
    { label: "Show Containers", run: () => show("containers") },
    { label: "Show Images", run: () => show("images") },
    { label: "Show Settings", run: () => show("settings") },
    { label: "Run an image… (run IMAGE [COMMAND])", run: () => openPalette("run ") },
    { label: "Pull an image… (pull IMAGE)", run: () => openPalette("pull ") },
  );
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
  out.push(...pluginMenu.map(pluginCommand));
  return out;
}

let paletteItems: Command[] = [];
let paletteIndex = 0;

function openPalette(prefix = "") {
  const d = $<HTMLDialogElement>("palette");
  const input = $<HTMLInputElement>("palette-input");
  input.value = prefix;
  filterPalette();
  if (!d.open) d.showModal();
  input.focus();
  void loadPluginMenu();
}

/** filterPalette lists the commands matching the input, the first selected (reset false: the one selected stays). */
function filterPalette(reset = true) {
  const input = $<HTMLInputElement>("palette-input").value;
  const ws = input.toLowerCase().split(/\s+/).filter(Boolean);
  const all = commands(input);
  const was = paletteItems[paletteIndex]?.label;
  paletteItems = /^\s*(run|pull)\s+\S/i.test(input) ? all : all.filter((c) => ws.every((w) => c.label.toLowerCase().includes(w)));
  paletteIndex = reset ? 0 : Math.max(0, paletteItems.findIndex((c) => c.label === was));
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
      if (c.disabled) {
        li.setAttribute("aria-disabled", "true");
        li.title = c.disabled;
        const why = document.createElement("span");
        why.className = "reason";
        why.textContent = c.disabled;
        li.append(why);
      }
      li.addEventListener("click", () => runPalette(i));
      return li;
    }),
  );
}

function runPalette(i: number) {
  const c = paletteItems[i];
  if (c?.disabled) return;
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
    if ((e.metaKey || e.ctrlKey) && e.key === ",") {
      e.preventDefault();
      show("settings");
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
      "3": () => show("settings"),
      Enter: () => state.view === "containers" && act("shell"),
      Delete: () => act("remove"),
      Backspace: () => act("remove"),
      s: () => act("start"),
      ".": () => act("stop"),
      r: () => act("restart"),
      "/": () => $("logs-search").focus(),
      p: () => act("pull"),
    };
    // The Settings view has no rows to act on: only the view keys.
    if (state.view === "settings" && !["1", "2", "3"].includes(e.key)) return;
    const f = k[e.key];
    if (f) {
      e.preventDefault();
      f();
    }
  });
  $("palette-input").addEventListener("input", () => filterPalette());
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
  $("banner-close").addEventListener("click", () => banner(""));
  $("set-login").addEventListener("change", setLogin);
  // #settings (berth://window/#settings, /#token=…&settings) opens the
  // Settings view; so does a later change of the fragment to it.
  const startView = views.find((v) => new RegExp(`(^#|&)${v}(&|$)`).test(location.hash));
  window.addEventListener("hashchange", () => {
    const v = location.hash.slice(1);
    if ((views as string[]).includes(v)) show(v as View);
  });
  $("logs-search").addEventListener("input", renderLogs);
  $("logs-follow").addEventListener("change", syncLogs);
  let scrollTimer = 0;
  $("list").addEventListener("scroll", () => {
    clearTimeout(scrollTimer);
    scrollTimer = window.setTimeout(syncStats, 150);
  });
  window.addEventListener("resize", syncStats);
  document.addEventListener("visibilitychange", syncStats);
  keys();
  try {
    await signIn();
  } catch (e) {
    banner(`Could not sign in: ${(e as Error).message}`);
    return;
  }
  await refresh();
  void loadPluginMenu();
  if (startView) show(startView);
  document.body.dataset.ready = "1";
  if (state.view !== "settings") $("list").focus();
  void watchEvents();
  // Created times ("3 minutes ago") age.
  setInterval(() => {
    for (const tr of $<HTMLTableElement>("table").tBodies[0].rows) {
      const item = state.view === "containers" ? state.containers.find((c) => c.Id === tr.dataset.id) : state.images.find((i) => i.Id === tr.dataset.id);
      const cell = tr.querySelector("td.created");
      if (item && cell) cell.textContent = ago(item.Created);
    }
  }, 30_000);
}

// The macOS app's web view (app/appwindow): the page posts {t, d} to its
// "berth" script message handler, and the app asks berthRowAt which
// container row a Finder drop landed on.
interface AppBridge {
  postMessage(m: { t: "shell" | "settings" | "set-login" | "plugin"; d: string }): void;
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
(window as unknown as { berthSettings: typeof berthSettings }).berthSettings = berthSettings;
(window as unknown as { berthShow: typeof berthShow }).berthShow = berthShow;

void main();
