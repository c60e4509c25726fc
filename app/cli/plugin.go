package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/plugin"
	"github.com/spf13/cobra"
)

// pluginGroup is the help heading plugin commands are listed under.
const pluginGroup = "plugins"

// completionCmds are the commands cobra adds itself, which plugins may
// not shadow either.
var completionCmds = []string{"help", "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd}

// Builtins are the names and aliases of berth's own top-level commands:
// a plugin of one of these names is never run.
func Builtins() map[string]bool {
	root := NewRoot(IO{})
	out := map[string]bool{}
	for _, c := range root.Commands() {
		out[c.Name()] = true
		for _, a := range c.Aliases {
			out[a] = true
		}
	}
	for _, n := range completionCmds {
		out[n] = true
	}
	return out
}

// PluginConfig is the discovery configuration the CLI and the daemon it
// starts use for home: the process environment, with berth's built-in
// commands winning over plugins.
func PluginConfig(homeDir string) plugin.Config {
	b := Builtins()
	return plugin.ConfigFromEnv(homeDir, func(n string) bool { return b[n] })
}

// commandPosition finds the first argument that is not one of the root's
// flags (--home DIR, --home=DIR, -h, --help) and the --home value seen
// before it; pos is -1 when there is none.
func commandPosition(args []string) (pos int, homeFlag string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--home" && i+1 < len(args):
			homeFlag = args[i+1]
			i++
		case strings.HasPrefix(a, "--home="):
			homeFlag = strings.TrimPrefix(a, "--home=")
		case a == "--":
			if i+1 < len(args) {
				return i + 1, homeFlag
			}
			return -1, homeFlag
		case strings.HasPrefix(a, "-"):
		default:
			return i, homeFlag
		}
	}
	return -1, homeFlag
}

// addPlugins adds the discovered CLI plugins to root as commands under
// their own help heading, when args may run one, ask for help or
// complete: for any built-in command nothing is discovered.
func addPlugins(ctx context.Context, root *cobra.Command, e *env, args []string) {
	pos, homeFlag := commandPosition(args)
	builtin := map[string]bool{}
	for _, c := range root.Commands() {
		builtin[c.Name()] = true
		for _, a := range c.Aliases {
			builtin[a] = true
		}
	}
	for _, n := range completionCmds {
		builtin[n] = true
	}
	// Help and completion list plugins; berth's other commands need none.
	if pos >= 0 && builtin[args[pos]] && args[pos] != "help" && !strings.HasPrefix(args[pos], "__complete") {
		return
	}
	h, err := home.Resolve(homeFlag)
	if err != nil {
		return // the command itself reports the bad home
	}
	cfg := plugin.ConfigFromEnv(h.Dir, func(n string) bool { return builtin[n] })
	var plugins []plugin.Plugin
	if pos >= 0 && !builtin[args[pos]] {
		// Running a plugin: look for that one only.
		if p, _, ok := plugin.Find(ctx, cfg, args[pos]); ok {
			plugins = append(plugins, p)
		} else {
			// Unknown: every plugin's name may be the suggestion.
			plugins = plugin.Discover(ctx, cfg).Plugins
		}
	} else {
		plugins = plugin.Discover(ctx, cfg).Plugins
	}
	var cmds []*cobra.Command
	for _, p := range plugins {
		if p.Kind != plugin.KindCLI {
			continue
		}
		cmds = append(cmds, newPluginRunCmd(e, p, h, args, pos))
	}
	if len(cmds) == 0 {
		return
	}
	// With a group, cobra lists ungrouped commands as "Additional
	// Commands"; berth's own stay under "Available Commands".
	root.AddGroup(&cobra.Group{ID: "builtin", Title: "Available Commands:"}, &cobra.Group{ID: pluginGroup, Title: "Plugin commands:"})
	for _, c := range root.Commands() {
		c.GroupID = "builtin"
	}
	root.SetHelpCommandGroupID("builtin")
	root.SetCompletionCommandGroupID("builtin")
	root.AddCommand(cmds...)
}

// newPluginRunCmd is `berth <name> args…` for plugin p. It takes its
// arguments from args (everything after the plugin's name at pos), not
// from cobra, so that the plugin sees its flags as typed.
func newPluginRunCmd(e *env, p plugin.Plugin, h home.Home, args []string, pos int) *cobra.Command {
	short := p.Description
	if short == "" {
		short = "Plugin " + p.Path
	}
	return &cobra.Command{
		Use:                p.Name,
		Short:              short,
		GroupID:            pluginGroup,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var pargs []string
			if pos >= 0 && pos < len(args) && args[pos] == p.Name {
				pargs = args[pos+1:]
			}
			return runPlugin(cmd.Context(), e, p, h, pargs)
		},
	}
}

// forwardedSignals are passed on to a running plugin.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGWINCH}

// runPlugin runs p with args, berth's streams and the environment that
// tells it how to reach Berth; signals berth receives are forwarded and
// the plugin's exit status is berth's.
func runPlugin(ctx context.Context, e *env, p plugin.Plugin, h home.Home, args []string) error {
	cmd := exec.Command(p.Path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = e.io.In, e.io.Out, e.io.Err
	cmd.Env = plugin.Env(os.Environ(), p.Name, h.Dir, h.Socket())
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run plugin %s (%s): %w", p.Name, p.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case err := <-done:
			var xe *exec.ExitError
			if errors.As(err, &xe) {
				if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return &ExitError{Code: 128 + int(ws.Signal())}
				}
				return &ExitError{Code: xe.ExitCode()}
			}
			if err != nil {
				return fmt.Errorf("run plugin %s (%s): %w", p.Name, p.Path, err)
			}
			return nil
		}
	}
}

// newPluginCmd is `berth plugin`: what plugins were found.
func newPluginCmd(e *env) *cobra.Command {
	cmd := newGroupCmd("plugin", "Manage CLI and service plugins", "plugins")
	var format string
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List plugins found, from where, and why any candidate was skipped",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := e.home()
			if err != nil {
				return err
			}
			r := plugin.Discover(cmd.Context(), PluginConfig(h.Dir))
			if r.Plugins == nil {
				r.Plugins = []plugin.Plugin{}
			}
			if r.Skipped == nil {
				r.Skipped = []plugin.Skipped{}
			}
			if !isDefaultFormat(format) {
				// Docker's --format: stdout has the rows alone; the
				// skipped candidates go to stderr.
				rows := make([]map[string]string, 0, len(r.Plugins))
				for _, p := range r.Plugins {
					rows = append(rows, pluginRow(p))
				}
				if err := printFormat(e.io.Out, format, rows, pluginHeaders); err != nil {
					return err
				}
				for _, s := range r.Skipped {
					fmt.Fprintf(e.io.Err, "skipped %s (%s): %s\n", s.Name, s.Path, s.Reason)
				}
				return nil
			}
			w := tabwriter.NewWriter(e.io.Out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(w, "NAME\tKIND\tVERSION\tSOURCE\tPATH\tDESCRIPTION")
			for _, p := range r.Plugins {
				kind := string(p.Kind)
				if p.Kind == plugin.KindService {
					kind += "/" + string(p.Lifecycle)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, kind, dash(p.Version), p.Source, p.Path, p.Description)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if len(r.Skipped) > 0 {
				fmt.Fprintln(e.io.Out, "\nSkipped:")
				for _, s := range r.Skipped {
					fmt.Fprintf(e.io.Out, "  %s (%s): %s\n", s.Name, s.Path, s.Reason)
				}
			}
			return nil
		},
	}
	ls.Flags().StringVar(&format, "format", "", "docker's format: table, table TEMPLATE, json or a Go TEMPLATE of .Name .Kind .Lifecycle .Version .Vendor .Source .Path .Description .Menu")
	cmd.AddCommand(ls)
	return cmd
}

// pluginHeaders are plugin ls's column headers for a "table TEMPLATE"
// --format.
var pluginHeaders = map[string]string{
	"Name": "NAME", "Kind": "KIND", "Lifecycle": "LIFECYCLE", "Version": "VERSION", "Vendor": "VENDOR",
	"Source": "SOURCE", "Path": "PATH", "Description": "DESCRIPTION", "Menu": "MENU",
}

// pluginRow is one plugin as plugin ls's --format sees it: Kind is cli
// or service, Lifecycle a service's (engine or container; "" for a CLI
// plugin), Menu its menu entries' titles joined by ", ".
func pluginRow(p plugin.Plugin) map[string]string {
	var menu []string
	for _, m := range p.Menu {
		menu = append(menu, m.Title)
	}
	lifecycle := ""
	if p.Kind == plugin.KindService {
		lifecycle = string(p.Lifecycle)
	}
	return map[string]string{
		"Name": p.Name, "Kind": string(p.Kind), "Lifecycle": lifecycle, "Version": p.Version, "Vendor": p.Vendor,
		"Source": string(p.Source), "Path": p.Path, "Description": p.Description, "Menu": strings.Join(menu, ", "),
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
