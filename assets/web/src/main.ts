// Berth's terminal window: one xterm.js terminal bridged to a shell in a
// container through the session protocol of docs/terminal.md.
//
// The page
//  1. reads its session token from the URL fragment (#token=…) and removes
//     the fragment from the address bar and history (the token is one-use);
//  2. picks its transport: the macOS app's script-message bridge when the
//     page runs in the app's WKWebView, else a WebSocket to the host that
//     served it;
//  3. renders with WebGL, or with the DOM renderer when WebGL cannot load or
//     loses its context;
//  4. titles the window "NAME — STATE" from the engine's hello, sends the
//     terminal's size after hello and on every change of the window's size,
//     and acknowledges output once xterm has parsed it (flow control);
//  5. when the session ends, shows a banner with the exit code or the
//     engine's message and, when the engine sent a reconnect token, a
//     Reconnect button that opens a new session with it.
//
// Fragment options besides token: scrollback=N (lines kept, default 10000).
//
// For tests, window.berthTerminal is a frozen, read-only view of the page
// (see BerthTerminalHook); it changes nothing.

import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { WebLinksAddon } from "@xterm/addon-web-links";
import { WebglAddon } from "@xterm/addon-webgl";
import { parseEngineMessage, type EngineMessage, type PageMessage } from "./protocol";
import { BridgeTransport, WebSocketTransport, bridgeHandler, type Connection, type Transport } from "./transport";
import { followColorScheme, fontFamily } from "./theme";
import { installClipboard, isMac } from "./clipboard";

/** What the page is doing. */
type State = "connecting" | "open" | "ended";

/** The read-only view of the page that tests read (window.berthTerminal). */
export interface BerthTerminalHook {
  /**
   * The buffer (scrollback and screen) as text, one line per line of
   * output (wrapped rows joined); only the last `last` lines when given.
   */
  text(last?: number): string;
  /** "connecting", "open" (after hello) or "ended". */
  readonly state: State;
  /** Output bytes received from the engine and acknowledged to it. */
  readonly received: number;
  readonly acked: number;
  /** The terminal's size in cells. */
  readonly cols: number;
  readonly rows: number;
  /** "webgl" or "dom". */
  readonly renderer: string;
  /** "websocket" or "bridge". */
  readonly transport: string;
}

declare global {
  interface Window {
    berthTerminal?: BerthTerminalHook;
  }
}

const defaultScrollback = 10000;
const maxScrollback = 1_000_000;

/** fragmentOptions reads the URL fragment's options and then removes it. */
function fragmentOptions(): { token?: string; scrollback: number } {
  const params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  const token = params.get("token") || undefined;
  let scrollback = Number(params.get("scrollback") ?? defaultScrollback);
  if (!Number.isInteger(scrollback) || scrollback < 0) scrollback = defaultScrollback;
  scrollback = Math.min(scrollback, maxScrollback);
  if (window.location.hash) {
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  return { token, scrollback };
}

class TerminalPage {
  private readonly term: Terminal;
  private readonly fit = new FitAddon();
  private readonly encoder = new TextEncoder();
  private conn: Connection | undefined;
  private state: State = "connecting";
  private received = 0;
  private acked = 0;
  private renderer = "dom";
  private readonly banner = document.getElementById("banner") as HTMLElement;
  private readonly bannerText = document.getElementById("banner-text") as HTMLElement;
  private readonly reconnectButton = document.getElementById("reconnect") as HTMLButtonElement;
  private reconnectToken: string | undefined;

  constructor(private readonly transport: Transport, scrollback: number) {
    this.term = new Terminal({
      fontFamily,
      fontSize: 13,
      lineHeight: 1.15,
      scrollback,
      cursorBlink: true,
      cursorStyle: "block",
      cursorInactiveStyle: "outline",
      allowProposedApi: false,
      macOptionClickForcesSelection: true,
      rightClickSelectsWord: isMac,
    });
  }

  /** mount opens the terminal in el and keeps its size fitted to el. */
  mount(el: HTMLElement): void {
    const term = this.term;
    term.loadAddon(this.fit);
    term.loadAddon(new WebLinksAddon((ev, uri) => {
      // Like Terminal.app and VS Code: Cmd-click (Ctrl-click) opens a link.
      if (isMac ? ev.metaKey : ev.ctrlKey) window.open(uri, "_blank", "noopener");
    }));
    followColorScheme((theme, isDark) => {
      term.options.theme = theme;
      document.documentElement.style.setProperty("--terminal-bg", theme.background ?? "");
      document.documentElement.dataset.appearance = isDark ? "dark" : "light";
    });
    term.open(el);
    this.loadWebgl();
    installClipboard(term);

    term.onData((data) => this.conn?.sendBinary(this.encoder.encode(data)));
    term.onBinary((data) => {
      const b = new Uint8Array(data.length);
      for (let i = 0; i < data.length; i++) b[i] = data.charCodeAt(i) & 0xff;
      this.conn?.sendBinary(b);
    });
    term.onResize(({ cols, rows }) => {
      if (this.state === "open") this.send({ type: "resize", cols, rows });
    });

    let frame = 0;
    new ResizeObserver(() => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => this.fit.fit());
    }).observe(el);
    this.fit.fit();

    this.reconnectButton.addEventListener("click", () => this.reconnect());
    window.addEventListener("focus", () => term.focus());
    term.focus();
  }

  /** loadWebgl renders with WebGL where it can; the DOM renderer is the rest. */
  private loadWebgl(): void {
    try {
      const webgl = new WebglAddon();
      webgl.onContextLoss(() => {
        webgl.dispose();
        this.renderer = "dom";
      });
      this.term.loadAddon(webgl);
      this.renderer = "webgl";
    } catch (err) {
      console.info("terminal: WebGL unavailable, using the DOM renderer:", err);
      this.renderer = "dom";
    }
  }

  /** connect opens a session with token (undefined: the bridge's own). */
  connect(token: string | undefined): void {
    this.state = "connecting";
    this.term.options.disableStdin = false;
    const conn = this.transport.open(token, {
      text: (data) => this.onText(conn, data),
      binary: (data) => this.onOutput(conn, data),
      closed: (opened) => {
        if (this.conn !== conn || this.state === "ended") return;
        this.end(
          opened
            ? "The connection to Berth was lost."
            : "This terminal's link was already used or has expired. Open a new one with `berth shell CONTAINER --web`.",
          undefined,
        );
      },
    });
    this.conn = conn;
  }

  private send(m: PageMessage): void {
    this.conn?.sendText(JSON.stringify(m));
  }

  private onOutput(conn: Connection, data: Uint8Array): void {
    if (conn !== this.conn) return;
    const n = data.length;
    this.received += n;
    // The engine stops reading from the guest while too much output is
    // unacknowledged; acknowledge a chunk once xterm has parsed it.
    this.term.write(data, () => {
      this.acked += n;
      conn.sendText(JSON.stringify({ type: "ack", bytes: n } satisfies PageMessage));
    });
  }

  private onText(conn: Connection, data: string): void {
    if (conn !== this.conn) return;
    let m: EngineMessage | undefined;
    try {
      m = parseEngineMessage(data);
    } catch (err) {
      console.error(err);
      return;
    }
    if (!m) return;
    switch (m.type) {
      case "hello": {
        this.state = "open";
        const c = m.container;
        const name = c.name || c.id.slice(0, 12) || "container";
        document.title = c.state ? `${name} — ${c.state}` : name;
        this.send({ type: "resize", cols: this.term.cols, rows: this.term.rows });
        break;
      }
      case "exit":
        // Output still queued in xterm comes before the banner.
        this.term.write("", () => this.end(`Shell exited with code ${m.code}.`, m.reconnect));
        break;
      case "error":
        this.term.write("", () => this.end(m.message || `The session ended (${m.reason}).`, m.reconnect));
        break;
    }
  }

  /** end shows the banner; the shell is gone. */
  private end(message: string, reconnect: string | undefined): void {
    this.state = "ended";
    this.term.options.disableStdin = true;
    this.term.write("\x1b[?25l"); // no cursor: nothing reads input now
    this.conn?.close();
    this.reconnectToken = reconnect;
    showMessage(this.bannerText, message);
    this.reconnectButton.hidden = reconnect === undefined;
    this.banner.hidden = false;
    if (reconnect !== undefined) this.reconnectButton.focus();
  }

  /** showNoSession says the page was opened without a session's link. */
  showNoSession(): void {
    this.end("This page needs a terminal session's link. Open one with `berth shell CONTAINER --web`.", undefined);
  }

  private reconnect(): void {
    const token = this.reconnectToken;
    if (token === undefined) return;
    this.reconnectToken = undefined;
    this.banner.hidden = true;
    // Leave the old shell's output; undo any mode it left set (alternate
    // screen, hidden cursor, colours) and start on a fresh line. Leaving
    // the alternate screen restores the cursor it saved (the top left
    // when none was): only when the old shell left it active.
    if (this.term.buffer.active.type === "alternate") this.term.write("\x1b[?1049l");
    this.term.write("\x1b[!p\x1b[0m\r\n");
    this.connect(token);
    this.term.focus();
  }

  /** hook is the read-only view tests read. */
  hook(): BerthTerminalHook {
    const page = this;
    return Object.freeze({
      text(last?: number): string {
        const buf = page.term.buffer.active;
        const lines: string[] = [];
        let y = 0;
        if (last !== undefined) {
          // Start at the first row of a line, about `last` lines up.
          y = Math.max(0, buf.length - last);
          while (y > 0 && buf.getLine(y)?.isWrapped) y--;
        }
        for (; y < buf.length; y++) {
          const line = buf.getLine(y);
          if (!line) continue;
          const s = line.translateToString(true);
          if (line.isWrapped && lines.length > 0) lines[lines.length - 1] += s;
          else lines.push(s);
        }
        return (last !== undefined ? lines.slice(-last) : lines).join("\n");
      },
      get state() {
        return page.state;
      },
      get received() {
        return page.received;
      },
      get acked() {
        return page.acked;
      },
      get cols() {
        return page.term.cols;
      },
      get rows() {
        return page.term.rows;
      },
      get renderer() {
        return page.renderer;
      },
      get transport() {
        return page.transport.kind;
      },
    });
  }
}

/** showMessage puts message in el as text, `quoted` parts as code. */
function showMessage(el: HTMLElement, message: string): void {
  el.replaceChildren(
    ...message.split("`").map((part, i) => {
      if (i % 2 === 0) return document.createTextNode(part);
      const code = document.createElement("code");
      code.textContent = part;
      return code;
    }),
  );
}

function main(): void {
  const { token, scrollback } = fragmentOptions();
  const handler = bridgeHandler();
  const transport: Transport = handler ? new BridgeTransport(handler) : new WebSocketTransport();
  const page = new TerminalPage(transport, scrollback);
  page.mount(document.getElementById("terminal") as HTMLElement);
  Object.defineProperty(window, "berthTerminal", { value: page.hook(), writable: false });
  if (!handler && token === undefined) {
    page.showNoSession();
    return;
  }
  // In the app the window's own session needs no token.
  page.connect(handler ? undefined : token);
}

main();
