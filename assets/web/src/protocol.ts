// The terminal session protocol of docs/terminal.md, page side: the text
// messages' shapes and a checked parser for the engine's.

/** The container a session runs in, as the engine's hello describes it. */
export interface ContainerInfo {
  id: string;
  name: string;
  image: string;
  state: string;
}

/** The engine's first message. */
export interface Hello {
  type: "hello";
  session: string;
  container: ContainerInfo;
  command: string[];
}

/** The shell ended with code; the socket closes after it. */
export interface Exit {
  type: "exit";
  code: number;
  reconnect?: string;
}

/** Why a session cannot go on (docs/terminal.md, "Messages"). */
export type ErrorReason =
  | "container-not-running"
  | "container-removed"
  | "engine-stopping"
  | "no-shell"
  | "internal";

/** The session cannot go on; message is for the user. */
export interface ErrorMessage {
  type: "error";
  reason: ErrorReason | string;
  message: string;
  reconnect?: string;
}

/** A text message from the engine. */
export type EngineMessage = Hello | Exit | ErrorMessage;

/** A text message to the engine. */
export type PageMessage =
  | { type: "resize"; cols: number; rows: number }
  | { type: "ack"; bytes: number };

/**
 * parseEngineMessage decodes one text message from the engine. It returns
 * undefined for a message this page does not know (a newer engine may send
 * more types) and throws for one that is not a JSON object with a type.
 */
export function parseEngineMessage(text: string): EngineMessage | undefined {
  const m: unknown = JSON.parse(text);
  if (typeof m !== "object" || m === null || typeof (m as { type?: unknown }).type !== "string") {
    throw new Error(`terminal protocol: a text message without a type: ${text.slice(0, 200)}`);
  }
  const o = m as Record<string, unknown>;
  const reconnect = typeof o.reconnect === "string" && o.reconnect !== "" ? o.reconnect : undefined;
  switch (o.type) {
    case "hello": {
      const c = (typeof o.container === "object" && o.container !== null ? o.container : {}) as Record<string, unknown>;
      return {
        type: "hello",
        session: String(o.session ?? ""),
        container: {
          id: String(c.id ?? ""),
          name: String(c.name ?? "").replace(/^\//, ""),
          image: String(c.image ?? ""),
          state: String(c.state ?? ""),
        },
        command: Array.isArray(o.command) ? o.command.map(String) : [],
      };
    }
    case "exit":
      return { type: "exit", code: Number(o.code), reconnect };
    case "error":
      return { type: "error", reason: String(o.reason ?? "internal"), message: String(o.message ?? ""), reconnect };
    default:
      return undefined;
  }
}
