package menu

import (
	"html"
	"strings"
)

// RenderHTML draws m as a standalone HTML page shaped like a macOS menu,
// for people without a Mac (docs/menu.png is a screenshot of it, taken by
// make screenshots): a rounded panel of items, separators as hairlines,
// section headers in small grey type, a check mark (✓, or – for mixed)
// in the left column, key equivalents on the right, a › for a submenu,
// which is drawn expanded as an indented panel under its item. Disabled
// items are greyed; an item's tooltip (a disabled one's reason, a plugin
// entry's command) and its confirmation question are its title
// attribute. Light and dark follow prefers-color-scheme. title is the
// page's title.
func RenderHTML(m Menu, title string) string {
	var b strings.Builder
	b.WriteString("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"color-scheme\" content=\"light dark\">\n<title>")
	b.WriteString(html.EscapeString(title))
	b.WriteString("</title>\n<style>\n")
	b.WriteString(menuCSS)
	b.WriteString("</style>\n</head>\n<body>\n<div id=\"shot\">\n<div class=\"bar\" aria-hidden=\"true\"><span class=\"glyph\">⚓︎</span></div>\n")
	renderHTML(&b, m.Items, 0)
	b.WriteString("</div>\n</body>\n</html>\n")
	return b.String()
}

func renderHTML(b *strings.Builder, items []Item, depth int) {
	indent := strings.Repeat("  ", depth)
	cls := "menu"
	if depth > 0 {
		cls = "menu submenu"
	}
	b.WriteString(indent + "<div class=\"" + cls + "\" role=\"menu\">\n")
	for _, it := range items {
		b.WriteString(indent + "  ")
		switch {
		case it.Separator:
			b.WriteString("<div class=\"sep\" role=\"separator\"></div>\n")
			continue
		case it.Header:
			b.WriteString("<div class=\"header\" role=\"presentation\">" + html.EscapeString(it.Title) + "</div>\n")
			continue
		}
		c := "item"
		if !it.Enabled {
			c += " disabled"
		}
		b.WriteString("<div class=\"" + c + "\" role=\"menuitem\"")
		if !it.Enabled {
			b.WriteString(" aria-disabled=\"true\"")
		}
		if tip := tooltip(it); tip != "" {
			b.WriteString(" title=\"" + html.EscapeString(tip) + "\"")
		}
		b.WriteString("><span class=\"check\">")
		switch it.State {
		case On:
			b.WriteString("✓")
		case Mixed:
			b.WriteString("–")
		}
		b.WriteString("</span><span class=\"title\">" + html.EscapeString(it.Title) + "</span>")
		if s := it.Shortcut.String(); s != "" {
			b.WriteString("<span class=\"key\">" + html.EscapeString(s) + "</span>")
		}
		if len(it.Submenu) > 0 {
			b.WriteString("<span class=\"arrow\">›</span>")
		}
		b.WriteString("</div>\n")
		if len(it.Submenu) > 0 {
			renderHTML(b, it.Submenu, depth+2)
		}
	}
	b.WriteString(indent + "</div>\n")
}

// tooltip is what hovering it shows: its tooltip, then the question it
// asks before acting.
func tooltip(it Item) string {
	switch {
	case it.Tooltip != "" && it.Confirm != "":
		return it.Tooltip + " — asks: " + it.Confirm
	case it.Confirm != "":
		return "Asks: " + it.Confirm
	}
	return it.Tooltip
}

// menuCSS draws the page like macOS's menus (Sonoma/Sequoia): a
// translucent rounded panel with a hairline border and a soft shadow,
// 13px system type, 22px rows, 4px-radius highlight inset by 5px.
const menuCSS = `:root {
  color-scheme: light dark;
  --desk: linear-gradient(160deg, #c9d6ea 0%, #e8dfe9 55%, #f3e7d9 100%);
  --panel: rgba(246, 246, 246, 0.94);
  --edge: rgba(0, 0, 0, 0.14);
  --fg: #1d1d1f;
  --dim: rgba(0, 0, 0, 0.28);
  --head: rgba(0, 0, 0, 0.5);
  --sep: rgba(0, 0, 0, 0.1);
  --sub: rgba(0, 0, 0, 0.035);
  --bar: rgba(246, 246, 246, 0.8);
  font: 13px/1.2 -apple-system, BlinkMacSystemFont, "SF Pro Text", system-ui, "Segoe UI", Cantarell, Ubuntu, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --desk: linear-gradient(160deg, #1b2233 0%, #2a2233 55%, #33291f 100%);
    --panel: rgba(40, 40, 42, 0.94);
    --edge: rgba(255, 255, 255, 0.16);
    --fg: #f2f2f4;
    --dim: rgba(255, 255, 255, 0.3);
    --head: rgba(255, 255, 255, 0.5);
    --sep: rgba(255, 255, 255, 0.12);
    --sub: rgba(255, 255, 255, 0.04);
    --bar: rgba(30, 30, 32, 0.8);
  }
}
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); -webkit-font-smoothing: antialiased; }
#shot { display: inline-block; background: var(--desk); padding: 0 28px 32px 120px; min-width: 520px; }
.bar { height: 24px; margin: 0 -28px 5px -120px; background: var(--bar); display: flex; justify-content: flex-end; align-items: center; padding-right: 150px; }
.bar .glyph { font-size: 14px; padding: 1px 8px; border-radius: 4px; background: rgba(127, 127, 127, 0.25); }
.menu { width: 360px; padding: 5px 0; background: var(--panel); border: 0.5px solid var(--edge); border-radius: 8px; box-shadow: 0 10px 30px rgba(0, 0, 0, 0.22), 0 0 0 0.5px rgba(0, 0, 0, 0.05); }
.menu.submenu { width: auto; margin: 1px 10px 3px 28px; padding: 3px 0; background: var(--sub); box-shadow: none; border-radius: 6px; }
.item { display: flex; align-items: center; height: 22px; margin: 0 5px; padding: 0 9px 0 0; border-radius: 4px; white-space: nowrap; cursor: default; }
.item:not(.disabled):hover { background: #0a82ff; color: #fff; }
.item.disabled { color: var(--dim); }
.check { width: 20px; flex: none; text-align: center; font-size: 12px; }
.title { flex: 1; overflow: hidden; text-overflow: ellipsis; }
.key { color: var(--head); margin-left: 24px; letter-spacing: 0.04em; }
.item.disabled .key { color: var(--dim); }
.arrow { margin-left: 14px; color: var(--head); font-size: 15px; line-height: 1; }
.header { height: 20px; line-height: 20px; margin: 2px 5px 0; padding-left: 20px; font-size: 11px; font-weight: 600; color: var(--head); }
.sep { height: 1px; margin: 5px 14px; background: var(--sep); }
`
