// Copy on select and the paste shortcuts of a terminal: Cmd-Shift-V /
// Ctrl-Shift-V (and Cmd-V on a Mac, which the browser turns into a paste
// event xterm handles itself), Cmd-C on a Mac / Ctrl-Shift-C to copy.

import type { Terminal } from "@xterm/xterm";

/** isMac says whether the page runs on macOS (the app's WKWebView included). */
export const isMac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);

/** writeClipboard puts text on the system clipboard. */
async function writeClipboard(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    return;
  } catch {
    // Not a secure context, or no permission: the old way.
  }
  const ta = document.createElement("textarea");
  ta.value = text;
  ta.style.position = "fixed";
  ta.style.opacity = "0";
  document.body.appendChild(ta);
  const active = document.activeElement as HTMLElement | null;
  ta.select();
  try {
    document.execCommand("copy");
  } finally {
    ta.remove();
    active?.focus();
  }
}

/**
 * installClipboard copies the selection whenever it changes and handles the
 * paste and copy shortcuts.
 */
export function installClipboard(term: Terminal): void {
  term.onSelectionChange(() => {
    if (term.hasSelection()) void writeClipboard(term.getSelection());
  });

  // A paste shortcut is first left to the browser, which fires a paste
  // event on xterm's textarea where it can (Chrome does for Ctrl-Shift-V);
  // when none comes, the page reads the clipboard itself.
  let pasted = false;
  term.textarea?.addEventListener("paste", () => {
    pasted = true;
  }, true);

  term.attachCustomKeyEventHandler((ev: KeyboardEvent): boolean => {
    if (ev.type !== "keydown") {
      return !isShortcut(ev);
    }
    const key = ev.key.toLowerCase();
    const shift = ev.shiftKey && !ev.altKey;
    const mod = (ev.ctrlKey && !ev.metaKey) || (isMac && ev.metaKey && !ev.ctrlKey);
    if (mod && shift && key === "v") {
      pasted = false;
      setTimeout(() => {
        if (pasted) return;
        navigator.clipboard?.readText?.().then((t) => term.paste(t), () => undefined);
      }, 50);
      return false;
    }
    if (mod && shift && key === "c") {
      if (term.hasSelection()) void writeClipboard(term.getSelection());
      ev.preventDefault();
      return false;
    }
    return true;
  });
}

function isShortcut(ev: KeyboardEvent): boolean {
  const key = ev.key.toLowerCase();
  const mod = (ev.ctrlKey && !ev.metaKey) || (isMac && ev.metaKey && !ev.ctrlKey);
  return mod && ev.shiftKey && !ev.altKey && (key === "v" || key === "c");
}
