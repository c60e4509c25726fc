package menu

import (
	"context"

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
// service plugin is not run from the menu).
func EntriesOf(plugins []plugin.Plugin) []PluginEntry {
	var out []PluginEntry
	for _, p := range plugins {
		if p.Kind != plugin.KindCLI {
			continue
		}
		for _, m := range p.Menu {
			out = append(out, PluginEntry{Plugin: p.Name, Title: m.Title, Args: m.Args})
		}
	}
	return out
}
