// Package plugin finds Berth's plugins and runs its service plugins. One
// discovery implementation serves the CLI (which runs CLI plugins as
// `berth <name>`) and the engine (which starts service plugins with
// itself or with each container).
//
// A plugin is an executable named berth-<name> found, first match wins,
// in $BERTH_HOME/plugins, in the directories of $BERTH_PLUGIN_PATH, then
// on $PATH. Its metadata comes from berth-<name>.json beside it or, when
// there is none, from the plugin's own answer to
// `berth-<name> berth-plugin-metadata` (bounded in size and time).
// Candidates that are not executable, are writable by another user, sit
// in a directory writable by another user, are owned by another user,
// have bad metadata, or clash with a built-in command are skipped, with
// the reason kept for `berth plugin ls`.
package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Kind says how a plugin runs.
type Kind string

const (
	// KindCLI is a plugin run as `berth <name> args…`.
	KindCLI Kind = "cli"
	// KindService is a plugin the engine starts and supervises.
	KindService Kind = "service"
)

// Lifecycle says how long a service plugin lives.
type Lifecycle string

const (
	// LifecycleEngine runs one instance as long as the engine.
	LifecycleEngine Lifecycle = "engine"
	// LifecycleContainer runs one instance beside each running container.
	LifecycleContainer Lifecycle = "container"
)

// Prefix starts every plugin executable's name.
const Prefix = "berth-"

// MetadataArg is the argument a plugin answers with its metadata JSON.
const MetadataArg = "berth-plugin-metadata"

// MaxMetadataSize bounds a plugin's metadata, from a file or the plugin.
const MaxMetadataSize = 64 << 10

// DefaultMetadataTimeout bounds how long a plugin may take to answer
// berth-plugin-metadata.
const DefaultMetadataTimeout = 3 * time.Second

// Environment variables a plugin is given, and that configure discovery.
const (
	EnvPluginPath  = "BERTH_PLUGIN_PATH"
	EnvHome        = "BERTH_HOME"
	EnvSocket      = "BERTH_SOCKET"
	EnvDockerHost  = "DOCKER_HOST"
	EnvPluginName  = "BERTH_PLUGIN_NAME"
	EnvContainerID = "BERTH_CONTAINER_ID"
)

// MenuEntry is an item a plugin adds to the menu: choosing it runs the
// plugin with Args.
type MenuEntry struct {
	// Title is the item's text.
	Title string `json:"title"`
	// Args are the arguments the plugin is run with.
	Args []string `json:"args,omitempty"`
}

// MenuItem is one menu entry of a discovered plugin, as the menu bar and
// the Berth window offer it: choosing it runs `berth <Plugin> <Args…>`.
type MenuItem struct {
	// Plugin is the plugin's name.
	Plugin string `json:"plugin"`
	// Title is the item's text.
	Title string `json:"title"`
	// Args are the plugin's arguments.
	Args []string `json:"args"`
}

// MenuItems are the menu entries the CLI plugins among plugins declare,
// in their order (a service plugin is not run from a menu); never nil.
func MenuItems(plugins []Plugin) []MenuItem {
	out := []MenuItem{}
	for _, p := range plugins {
		if p.Kind != KindCLI {
			continue
		}
		for _, m := range p.Menu {
			args := m.Args
			if args == nil {
				args = []string{}
			}
			out = append(out, MenuItem{Plugin: p.Name, Title: m.Title, Args: args})
		}
	}
	return out
}

// Metadata describes a plugin.
type Metadata struct {
	// Description is a one-line summary, shown in help.
	Description string `json:"description"`
	// Version and Vendor are informational.
	Version string `json:"version,omitempty"`
	Vendor  string `json:"vendor,omitempty"`
	// Kind is cli (the default) or service.
	Kind Kind `json:"kind,omitempty"`
	// Lifecycle is, for a service, engine (the default) or container.
	Lifecycle Lifecycle `json:"lifecycle,omitempty"`
	// Menu are the plugin's menu entries.
	Menu []MenuEntry `json:"menu,omitempty"`
}

// Source says where a plugin was found.
type Source string

const (
	SourceHome Source = "home"
	SourcePath Source = "BERTH_PLUGIN_PATH"
	SourceEnv  Source = "PATH"
)

// Plugin is a discovered, usable plugin.
type Plugin struct {
	// Name is the command name: berth-<name> without the prefix.
	Name string `json:"name"`
	// Path is the executable's absolute path.
	Path string `json:"path"`
	// Source is where it was found.
	Source   Source `json:"source"`
	Metadata `json:"metadata"`
}

// Skipped is a candidate that discovery refused, with why.
type Skipped struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Result is what Discover found.
type Result struct {
	Plugins []Plugin  `json:"plugins"`
	Skipped []Skipped `json:"skipped"`
}

// Get returns the plugin named name.
func (r Result) Get(name string) (Plugin, bool) {
	for _, p := range r.Plugins {
		if p.Name == name {
			return p, true
		}
	}
	return Plugin{}, false
}

// Config says where and how to look.
type Config struct {
	// HomeDir is the Berth home; its plugins directory is searched first.
	HomeDir string
	// PluginPath is $BERTH_PLUGIN_PATH (list separated like PATH).
	PluginPath string
	// Path is $PATH.
	Path string
	// Builtin reports a built-in command name; such plugins are skipped.
	Builtin func(name string) bool
	// MetadataTimeout bounds each metadata query; zero: DefaultMetadataTimeout.
	MetadataTimeout time.Duration
}

// ConfigFromEnv is the Config for homeDir from the process environment.
func ConfigFromEnv(homeDir string, builtin func(string) bool) Config {
	return Config{HomeDir: homeDir, PluginPath: os.Getenv(EnvPluginPath), Path: os.Getenv("PATH"), Builtin: builtin}
}

// Dir is the home's own plugin directory.
func Dir(homeDir string) string { return filepath.Join(homeDir, "plugins") }

type searchDir struct {
	dir    string
	source Source
}

func (c Config) dirs() []searchDir {
	var out []searchDir
	if c.HomeDir != "" {
		out = append(out, searchDir{Dir(c.HomeDir), SourceHome})
	}
	for _, d := range filepath.SplitList(c.PluginPath) {
		if d != "" {
			out = append(out, searchDir{d, SourcePath})
		}
	}
	for _, d := range filepath.SplitList(c.Path) {
		if d != "" {
			out = append(out, searchDir{d, SourceEnv})
		}
	}
	return out
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidName reports whether name can be a plugin's name.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// Discover finds every plugin (see the package comment for the rules).
func Discover(ctx context.Context, cfg Config) Result {
	return discover(ctx, cfg, "")
}

// Find looks for the plugin named name only. ok is false when no usable
// plugin of that name exists; skipped then says why candidates were
// refused, if any were.
func Find(ctx context.Context, cfg Config, name string) (p Plugin, skipped []Skipped, ok bool) {
	if !ValidName(name) {
		return Plugin{}, nil, false
	}
	r := discover(ctx, cfg, name)
	p, ok = r.Get(name)
	return p, r.Skipped, ok
}

func discover(ctx context.Context, cfg Config, only string) Result {
	var r Result
	seen := map[string]bool{}
	for _, sd := range cfg.dirs() {
		entries, err := os.ReadDir(sd.dir)
		if err != nil {
			continue // an absent or unreadable directory holds no plugins
		}
		abs, err := filepath.Abs(sd.dir)
		if err != nil {
			continue
		}
		for _, de := range entries {
			fn := de.Name()
			if !strings.HasPrefix(fn, Prefix) || strings.HasSuffix(fn, ".json") {
				continue
			}
			name := strings.TrimPrefix(fn, Prefix)
			if !ValidName(name) || (only != "" && name != only) || seen[name] {
				continue
			}
			path := filepath.Join(abs, fn)
			skip := func(reason string) { r.Skipped = append(r.Skipped, Skipped{Name: name, Path: path, Reason: reason}) }
			if cfg.Builtin != nil && cfg.Builtin(name) {
				skip(fmt.Sprintf("%q is a built-in berth command, which always wins: rename the plugin", name))
				continue
			}
			if reason := checkFile(abs, path); reason != "" {
				skip(reason)
				continue
			}
			md, err := readMetadata(ctx, cfg, name, path)
			if err != nil {
				skip(err.Error())
				continue
			}
			seen[name] = true
			r.Plugins = append(r.Plugins, Plugin{Name: name, Path: path, Source: sd.source, Metadata: md})
		}
	}
	return r
}

// checkFile says why path (in dir) may not be run, or "" when it may.
func checkFile(dir, path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Sprintf("cannot stat: %v", err)
	}
	if !fi.Mode().IsRegular() {
		return "not a regular file"
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Sprintf("not executable (mode %04o): chmod +x %s", fi.Mode().Perm(), path)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Sprintf("writable by other users (mode %04o), so anyone could replace it: chmod go-w %s", fi.Mode().Perm(), path)
	}
	if reason := checkOwner(fi, path); reason != "" {
		return reason
	}
	di, err := os.Stat(dir)
	if err != nil {
		return fmt.Sprintf("cannot stat its directory: %v", err)
	}
	if di.Mode().Perm()&0o022 != 0 && di.Mode()&os.ModeSticky == 0 {
		return fmt.Sprintf("its directory %s is writable by other users (mode %04o), so anyone could replace it: chmod go-w %s", dir, di.Mode().Perm(), dir)
	}
	if reason := checkOwner(di, dir); reason != "" {
		return "its directory: " + reason
	}
	return ""
}

// readMetadata reads berth-<name>.json beside path or, without one, asks
// the plugin.
func readMetadata(ctx context.Context, cfg Config, name, path string) (Metadata, error) {
	var raw []byte
	jsonPath := path + ".json"
	f, err := os.Open(jsonPath)
	switch {
	case err == nil:
		raw, err = io.ReadAll(io.LimitReader(f, MaxMetadataSize+1))
		f.Close()
		if err != nil {
			return Metadata{}, fmt.Errorf("bad metadata: read %s: %w", jsonPath, err)
		}
		if len(raw) > MaxMetadataSize {
			return Metadata{}, fmt.Errorf("bad metadata: %s is larger than %d bytes", jsonPath, MaxMetadataSize)
		}
	case errors.Is(err, os.ErrNotExist):
		if raw, err = queryMetadata(ctx, cfg, name, path); err != nil {
			return Metadata{}, err
		}
		jsonPath = fmt.Sprintf("the output of %s %s", path, MetadataArg)
	default:
		return Metadata{}, fmt.Errorf("bad metadata: open %s: %w", jsonPath, err)
	}
	md, err := ParseMetadata(raw)
	if err != nil {
		return Metadata{}, fmt.Errorf("bad metadata in %s: %w", jsonPath, err)
	}
	return md, nil
}

// queryMetadata runs `path berth-plugin-metadata` with a timeout.
func queryMetadata(ctx context.Context, cfg Config, name, path string) ([]byte, error) {
	timeout := cfg.MetadataTimeout
	if timeout <= 0 {
		timeout = DefaultMetadataTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, MetadataArg)
	cmd.Env = append(os.Environ(), EnvPluginName+"="+name)
	cmd.WaitDelay = time.Second
	ownGroup(cmd)
	out := &limitedBuffer{max: MaxMetadataSize}
	cmd.Stdout = out
	err := cmd.Run()
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, fmt.Errorf("bad metadata: %s %s did not answer within %s", path, MetadataArg, timeout)
	case out.over:
		return nil, fmt.Errorf("bad metadata: %s %s printed more than %d bytes", path, MetadataArg, MaxMetadataSize)
	case err != nil:
		return nil, fmt.Errorf("bad metadata: no %s.json and %s %s failed: %v", path, path, MetadataArg, err)
	}
	return out.Bytes(), nil
}

// limitedBuffer keeps up to max bytes and notes anything beyond.
// It does not embed bytes.Buffer, whose ReadFrom would bypass Write.
type limitedBuffer struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.buf.Len()+len(p) > b.max {
		b.over = true
		return 0, errors.New("metadata too large")
	}
	return b.buf.Write(p)
}

// Bytes is what was written.
func (b *limitedBuffer) Bytes() []byte { return b.buf.Bytes() }

// ParseMetadata decodes and validates metadata JSON, filling defaults.
func ParseMetadata(raw []byte) (Metadata, error) {
	if len(raw) > MaxMetadataSize {
		return Metadata{}, fmt.Errorf("larger than %d bytes", MaxMetadataSize)
	}
	var md Metadata
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&md); err != nil {
		return Metadata{}, fmt.Errorf("not valid metadata JSON: %w", err)
	}
	if dec.More() {
		return Metadata{}, errors.New("not valid metadata JSON: more than one value")
	}
	if md.Kind == "" {
		md.Kind = KindCLI
	}
	switch md.Kind {
	case KindCLI:
		if md.Lifecycle != "" {
			return Metadata{}, fmt.Errorf("lifecycle %q is only for kind %q", md.Lifecycle, KindService)
		}
	case KindService:
		if md.Lifecycle == "" {
			md.Lifecycle = LifecycleEngine
		}
		if md.Lifecycle != LifecycleEngine && md.Lifecycle != LifecycleContainer {
			return Metadata{}, fmt.Errorf("lifecycle %q is not %q or %q", md.Lifecycle, LifecycleEngine, LifecycleContainer)
		}
	default:
		return Metadata{}, fmt.Errorf("kind %q is not %q or %q", md.Kind, KindCLI, KindService)
	}
	if len(md.Description) > 200 || strings.ContainsAny(md.Description, "\n\r") {
		return Metadata{}, errors.New("description must be one line of at most 200 bytes")
	}
	if len(md.Menu) > 20 {
		return Metadata{}, errors.New("more than 20 menu entries")
	}
	for i, m := range md.Menu {
		if strings.TrimSpace(m.Title) == "" || len(m.Title) > 100 {
			return Metadata{}, fmt.Errorf("menu entry %d: title must be 1 to 100 bytes", i+1)
		}
	}
	return md, nil
}

// Env is the environment a plugin runs with: base plus how to reach
// Berth.
func Env(base []string, name, homeDir, socket string) []string {
	env := make([]string, 0, len(base)+4)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case EnvHome, EnvSocket, EnvDockerHost, EnvPluginName, EnvContainerID:
			continue
		}
		env = append(env, kv)
	}
	return append(env, EnvHome+"="+homeDir, EnvSocket+"="+socket, EnvDockerHost+"=unix://"+socket, EnvPluginName+"="+name)
}
