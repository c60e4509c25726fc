// The look of the terminal: macOS Terminal.app's "Basic" profile (its ANSI
// palette, SF Mono) in a light and a dark variant that follow the system's
// appearance live.

import type { ITheme } from "@xterm/xterm";

/**
 * The font stack: SF Mono (ui-monospace is how WebKit names it), then the
 * older macOS monospace fonts, then Linux's.
 */
export const fontFamily = 'ui-monospace, "SF Mono", Menlo, Monaco, "DejaVu Sans Mono", monospace';

// Terminal.app's ANSI colours.
const ansi = {
  black: "#000000",
  red: "#c23621",
  green: "#25bc24",
  yellow: "#adad27",
  blue: "#492ee1",
  magenta: "#d338d3",
  cyan: "#33bbc8",
  white: "#cbcccd",
  brightBlack: "#818383",
  brightRed: "#fc391f",
  brightGreen: "#31e722",
  brightYellow: "#eaec23",
  brightBlue: "#5833ff",
  brightMagenta: "#f935f8",
  brightCyan: "#14f0f0",
  brightWhite: "#e9ebeb",
};

/** Light: black on white, like Terminal.app in light mode. */
export const light: ITheme = {
  ...ansi,
  background: "#ffffff",
  foreground: "#1d1d1f",
  cursor: "#7f7f7f",
  cursorAccent: "#ffffff",
  selectionBackground: "#b4d7ff",
  selectionInactiveBackground: "#dcdcdc",
  scrollbarSliderBackground: "rgba(0, 0, 0, 0.22)",
  scrollbarSliderHoverBackground: "rgba(0, 0, 0, 0.38)",
  scrollbarSliderActiveBackground: "rgba(0, 0, 0, 0.5)",
};

/** Dark: light grey on the dark window background of macOS. */
export const dark: ITheme = {
  ...ansi,
  // Terminal.app's blues are unreadable on a dark background (ls's
  // directories): lighter ones of the same hue.
  blue: "#6f73ff",
  brightBlue: "#8f93ff",
  background: "#1e1e1e",
  foreground: "#e6e6e6",
  cursor: "#a6a6a6",
  cursorAccent: "#1e1e1e",
  selectionBackground: "#3f638b",
  selectionInactiveBackground: "#464646",
  scrollbarSliderBackground: "rgba(255, 255, 255, 0.22)",
  scrollbarSliderHoverBackground: "rgba(255, 255, 255, 0.38)",
  scrollbarSliderActiveBackground: "rgba(255, 255, 255, 0.5)",
};

/**
 * followColorScheme calls apply with the theme for the system's current
 * appearance, and again each time it changes.
 */
export function followColorScheme(apply: (theme: ITheme, isDark: boolean) => void): void {
  const mq = window.matchMedia("(prefers-color-scheme: dark)");
  const update = () => apply(mq.matches ? dark : light, mq.matches);
  mq.addEventListener("change", update);
  update();
}
