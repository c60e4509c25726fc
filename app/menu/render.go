package menu

import "strings"

// Render draws m as indented text, one item a line, a submenu indented
// under its item, for people (and tests) without a Mac:
//
//	✓ web — alpine:3 ▸        a checked item with a submenu
//	  Quit Berth  ⌘Q          a shortcut
//	  Start  (disabled: why)  a disabled item that has an action
//	  Remove…  (asks: …)      an item that asks before acting
//	  [Containers]            a section header
//	  ────────────            a separator
//
// A disabled line without an action is information ("Image: alpine:3").
func Render(m Menu) string {
	var b strings.Builder
	render(&b, m.Items, 0)
	return b.String()
}

func render(b *strings.Builder, items []Item, depth int) {
	indent := strings.Repeat("    ", depth)
	for _, it := range items {
		b.WriteString(indent)
		if it.Separator {
			b.WriteString("  ────────────\n")
			continue
		}
		switch it.State {
		case On:
			b.WriteString("✓ ")
		case Mixed:
			b.WriteString("– ")
		default:
			b.WriteString("  ")
		}
		if it.Header {
			b.WriteString("[" + it.Title + "]\n")
			continue
		}
		b.WriteString(it.Title)
		if len(it.Submenu) > 0 {
			b.WriteString(" ▸")
		}
		if s := it.Shortcut.String(); s != "" {
			b.WriteString("  " + s)
		}
		if !it.Enabled && it.Action.Kind != None {
			b.WriteString("  (disabled: " + it.Tooltip + ")")
		}
		if it.Confirm != "" {
			b.WriteString("  (asks: " + it.Confirm + ")")
		}
		b.WriteString("\n")
		render(b, it.Submenu, depth+1)
	}
}
