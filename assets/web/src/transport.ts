// Transports carry the session protocol's messages between the page and the
// engine (docs/terminal.md): a WebSocket on loopback in a browser, or the
// macOS app's WKWebView script-message bridge. Both deliver the same
// messages; the page above them does not know which it has.

/** What a transport reports to the page. */
export interface TransportEvents {
  /** A text (JSON) message from the engine. */
  text(data: string): void;
  /** Terminal output bytes from the engine. */
  binary(data: Uint8Array): void;
  /**
   * The transport ended; opened says whether it ever carried a message
   * (false: the engine refused it, e.g. a used or expired token).
   */
  closed(opened: boolean): void;
}

/** One connection to one terminal session. */
export interface Connection {
  sendText(data: string): void;
  sendBinary(data: Uint8Array<ArrayBuffer>): void;
  close(): void;
}

/** Opens connections to sessions by token. */
export interface Transport {
  /** Kind, for the test hook: "websocket" or "bridge". */
  readonly kind: string;
  /**
   * open connects to the session the token names; a token is good for one
   * connection. An undefined token opens the session the host prepared for
   * this page (the bridge; a WebSocket needs a token).
   */
  open(token: string | undefined, events: TransportEvents): Connection;
}

/**
 * WebSocketTransport opens /terminal/ws?token=TOKEN on the host that served
 * the page.
 */
export class WebSocketTransport implements Transport {
  readonly kind = "websocket";

  constructor(private readonly loc: Location = window.location) {}

  open(token: string | undefined, events: TransportEvents): Connection {
    const proto = this.loc.protocol === "https:" ? "wss:" : "ws:";
    const url = `${proto}//${this.loc.host}/terminal/ws?token=${encodeURIComponent(token ?? "")}`;
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    let opened = false;
    let ended = false;
    ws.onmessage = (ev: MessageEvent) => {
      opened = true;
      if (typeof ev.data === "string") events.text(ev.data);
      else events.binary(new Uint8Array(ev.data as ArrayBuffer));
    };
    ws.onopen = () => {
      opened = true;
    };
    const end = () => {
      if (ended) return;
      ended = true;
      events.closed(opened);
    };
    ws.onclose = end;
    ws.onerror = end;
    return {
      sendText: (data) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(data);
      },
      sendBinary: (data) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(data);
      },
      close: () => {
        ended = true;
        ws.close();
      },
    };
  }
}

/** A message crossing the WKWebView bridge: t is "text" or "binary". */
export interface BridgeMessage {
  t: "text" | "binary" | "open";
  d: string;
}

interface BerthHandler {
  postMessage(m: BridgeMessage): void;
}

declare global {
  interface Window {
    webkit?: { messageHandlers?: { berth?: BerthHandler } };
    /** Called by the macOS app with each message from the engine. */
    berthReceive?: (m: BridgeMessage) => void;
  }
}

/** bridgeHandler returns the macOS app's script message handler, if any. */
export function bridgeHandler(w: Window = window): BerthHandler | undefined {
  return w.webkit?.messageHandlers?.berth;
}

/**
 * BridgeTransport speaks to Go through the macOS app's WKScriptMessageHandler
 * "berth": page → Go with postMessage({t, d}), Go → page through
 * window.berthReceive({t, d}); binary data travels as base64.
 *
 * For the Reconnect button it posts {t: "open", d: TOKEN} (docs/terminal.md,
 * "The macOS window"), and nothing for the session the app prepared with
 * the window.
 */
export class BridgeTransport implements Transport {
  readonly kind = "bridge";
  private events: TransportEvents | undefined;
  private pending: BridgeMessage[] = [];

  constructor(private readonly handler: BerthHandler, w: Window = window) {
    // Installed at once so that nothing the app sends early is lost.
    w.berthReceive = (m: BridgeMessage) => {
      if (this.events) this.deliver(this.events, m);
      else this.pending.push(m);
    };
  }

  open(token: string | undefined, events: TransportEvents): Connection {
    this.events = events;
    if (token !== undefined) this.handler.postMessage({ t: "open", d: token });
    const pending = this.pending;
    this.pending = [];
    for (const m of pending) this.deliver(events, m);
    return {
      sendText: (data) => this.handler.postMessage({ t: "text", d: data }),
      sendBinary: (data) => this.handler.postMessage({ t: "binary", d: toBase64(data) }),
      close: () => {
        if (this.events === events) this.events = undefined;
      },
    };
  }

  private deliver(events: TransportEvents, m: BridgeMessage): void {
    if (m.t === "text") events.text(m.d);
    else if (m.t === "binary") events.binary(fromBase64(m.d));
  }
}

/** toBase64 encodes bytes as standard base64. */
export function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, Array.from(b.subarray(i, i + 0x8000)));
  }
  return btoa(s);
}

/** fromBase64 decodes standard base64 to bytes. */
export function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const b = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) b[i] = bin.charCodeAt(i);
  return b;
}
