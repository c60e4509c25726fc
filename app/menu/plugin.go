package menu

import (
	"context"
	"slices"

	"github.com/berthvm/berth/engine/plugin"
)

// PluginEntry is one menu entry a plugin declared in its metadata:
// choosing it runs `berth <Plugin> <Args…>`.
type PluginEntry struct {
	// Plugin is the plugin's name.
	Plugin string
	// Title is the item's text.
	Title string
	// Args are the plugin's arguments.
	Args []string
}

// PluginEntries returns a WithPlugins function that discovers plugins
// with cfg (the CLI's: cli.PluginConfig) and returns the menu entries
// the CLI plugins declare, in discovery order.
func PluginEntries(cfg plugin.Config) func(context.Context) []PluginEntry {
	return func(ctx context.Context) []PluginEntry {
		return EntriesOf(plugin.Discover(ctx, cfg).Plugins)
	}
}

// EntriesOf are the menu entries of plugins: those of CLI plugins (a
// service plugin is not run from the menu), as plugin.MenuItems has them.
func EntriesOf(plugins []plugin.Plugin) []PluginEntry {
	var out []PluginEntry
	for _, m := range plugin.MenuItems(plugins) {
		var args []string
		if len(m.Args) > 0 {
			args = m.Args
		}
		out = append(out, PluginEntry{Plugin: m.Plugin, Title: m.Title, Args: args})
	}
	return out
}

// FindEntry is the entry among entries that runs plugin with args, if
// one does: the Berth window's request to run a plugin entry is carried
// out only for an entry a plugin declared.
func FindEntry(entries []PluginEntry, plugin string, args []string) (PluginEntry, bool) {
	for _, e := range entries {
		if e.Plugin == plugin && slices.Equal(e.Args, args) {
			return e, true
		}
	}
	return PluginEntry{}, false
}
