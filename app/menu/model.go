package menu

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/berthvm/berth/app/internal/human"
	"github.com/berthvm/berth/app/settings"
)

// EngineState is whether the engine answers.
type EngineState int

const (
	// EngineStarting: the app is starting the engine, or the first
	// connection is under way.
	EngineStarting EngineState = iota
	// EngineRunning: the engine answers and the Snapshot is current.
	EngineRunning
	// EngineNotRunning: the engine does not answer (Engine.Reason says
	// why); State keeps trying to reconnect.
	EngineNotRunning
)

// Engine is the engine's status as the menu shows it.
type Engine struct {
	State EngineState
	// Reason says why the engine is not running.
	Reason string
	// LogPath is the engine's log file, offered as "Open Log" when it is
	// not running; empty when there is none to open.
	LogPath string
	// Backend names the VM backend ("qemu (kvm)", "vz").
	Backend string
}

// Kernel is the guest kernel's status.
type Kernel struct {
	// Version of the kernel the engine boots.
	Version string
	// Error says why there is no usable kernel, and what to do; empty
	// when there is one.
	Error string
}

// Container is one container as the menu shows it.
type Container struct {
	ID, Name, Image string
	// State is Docker's: created, running, paused, restarting, removing,
	// exited or dead.
	State string
	// IP is the container's address while it runs.
	IP                             string
	Created, StartedAt, FinishedAt time.Time
	ExitCode                       int
	// Error is why the container failed to start or died, as the engine
	// says it.
	Error string
	// Shares are the host folders shared into the container.
	Shares []Share
}

// Running reports whether the container's VM is up (running, paused or
// restarting).
func (c Container) Running() bool {
	return c.State == "running" || c.State == "paused" || c.State == "restarting"
}

// Share is a host folder shared into a container.
type Share struct {
	HostPath, ContainerPath string
	ReadOnly                bool
	// AtCreate marks a share made when the container was created (-v,
	// --mount, an image's VOLUME): it lasts as long as the container and
	// cannot be stopped from the menu.
	AtCreate bool
	// Volume is the named volume behind an AtCreate share ("" for a
	// host folder); HostPath is then the volume's data directory.
	Volume string
}

// Image is one image as the menu shows it.
type Image struct {
	ID string
	// Refs are its tags ("alpine:3"); none for an untagged image.
	Refs    []string
	Size    int64
	Created time.Time
}

// Ref is the reference the menu names the image by: its first tag, or
// its short ID when untagged.
func (im Image) Ref() string {
	if len(im.Refs) > 0 {
		return im.Refs[0]
	}
	return human.ShortID(im.ID)
}

// Progress is a long operation under way or just failed: a pull or a
// kernel download.
type Progress struct {
	// Subject is what it acts on (the reference pulled, the kernel URL).
	Subject string
	// Current and Total are bytes; Total 0: unknown.
	Current, Total int64
	// Layers and LayersDone count a pull's layers.
	Layers, LayersDone int
	// Err is why it failed; empty while it runs.
	Err string
}

// Percent is the progress in whole percent, or -1 when the total is not
// known.
func (p Progress) Percent() int {
	if p.Total <= 0 {
		return -1
	}
	return int(min(100, p.Current*100/p.Total))
}

// Snapshot is everything the menu shows, as State keeps it.
type Snapshot struct {
	Engine     Engine
	Kernel     Kernel
	Containers []Container
	Images     []Image
	// Pulls are the pulls in progress and the failed ones not dismissed,
	// oldest first.
	Pulls []Progress
	// KernelDownload is the kernel being fetched (or whose download
	// failed), if any, as the app hosting the engine reports it
	// (State.KernelSetup).
	KernelDownload *Progress
	// LaunchAtLogin is the Launch at Login setting as the app reports it
	// (State.SetLaunchAtLogin); nil where the app has none to offer.
	LaunchAtLogin *settings.LoginState
	// Plugins are the menu entries plugins declared, in a Plugins
	// section; none: no section.
	Plugins []PluginEntry
}

// Limits of the menu: more containers or images than these are left to
// the Berth window ("N more…").
const (
	MaxContainers = 10
	MaxImages     = 10
)

// CheckState is an item's mark.
type CheckState int

const (
	// Off: no mark.
	Off CheckState = iota
	// On: a check mark (a running container).
	On
	// Mixed: a dash (a container in between: paused, restarting).
	Mixed
)

// Modifier is a keyboard shortcut's modifier key set.
type Modifier int

// Modifier keys.
const (
	Command Modifier = 1 << iota
	Shift
	Option
)

// Shortcut is a menu item's key equivalent: Key ("q", ",") with
// Modifiers. The zero value is none.
type Shortcut struct {
	Key       string
	Modifiers Modifier
}

// String is the shortcut as macOS shows it ("⌘Q").
func (s Shortcut) String() string {
	if s.Key == "" {
		return ""
	}
	var b strings.Builder
	if s.Modifiers&Option != 0 {
		b.WriteString("⌥")
	}
	if s.Modifiers&Shift != 0 {
		b.WriteString("⇧")
	}
	if s.Modifiers&Command != 0 {
		b.WriteString("⌘")
	}
	b.WriteString(strings.ToUpper(s.Key))
	return b.String()
}

// Item is one menu item: an NSMenuItem's worth.
type Item struct {
	Title string
	// Enabled items can be chosen; a disabled one shows Tooltip as the
	// reason.
	Enabled bool
	State   CheckState
	// Separator items have nothing else.
	Separator bool
	// Header items are section titles ("Containers").
	Header   bool
	Shortcut Shortcut
	Tooltip  string
	// Confirm, when set, is a question the glue asks before doing the
	// action ("Remove web? …").
	Confirm string
	Submenu []Item
	Action  Action
}

// Menu is the whole menu, top to bottom.
type Menu struct {
	Items []Item
}

func separator() Item { return Item{Separator: true} }

func header(title string) Item { return Item{Title: title, Header: true} }

func info(title string) Item { return Item{Title: title} }

func action(title string, a Action) Item { return Item{Title: title, Enabled: true, Action: a} }

// disabled returns it disabled with why as its tooltip.
func disabled(it Item, why string) Item {
	it.Enabled = false
	it.Tooltip = why
	return it
}

// Build returns the menu for s at now (uptimes are measured to now):
// the status lines (engine, kernel, pulls), the Containers and Images
// sections when the engine runs, then the app's own items (Pull Image…,
// Run Image…, Open Berth Window, Settings…, Quit Berth).
func Build(s Snapshot, now time.Time) Menu {
	var items []Item
	items = append(items, statusItems(s)...)
	if s.Engine.State == EngineRunning {
		items = append(items, separator())
		items = append(items, containerItems(s, now)...)
		items = append(items, separator())
		items = append(items, imageItems(s)...)
	}
	if len(s.Plugins) > 0 {
		items = append(items, separator(), header("Plugins"))
		for _, p := range s.Plugins {
			it := action(p.Title, Action{Kind: RunPlugin, Plugin: p.Plugin, PluginArgs: slices.Clone(p.Args)})
			it.Tooltip = "berth " + strings.Join(append([]string{p.Plugin}, p.Args...), " ")
			items = append(items, it)
		}
	}
	items = append(items, separator())
	pull := Item{Title: "Pull Image…", Enabled: true, Shortcut: Shortcut{"p", Command}, Action: Action{Kind: PullImage}}
	run := Item{Title: "Run Image…", Enabled: true, Shortcut: Shortcut{"r", Command}, Action: Action{Kind: RunImage}}
	if why := engineUnusable(s); why != "" {
		pull, run = disabled(pull, why), disabled(run, why)
	} else if why := kernelUnusable(s); why != "" {
		run = disabled(run, why)
	}
	items = append(items, pull, run, separator(),
		Item{Title: "Open Berth Window", Enabled: true, Shortcut: Shortcut{"o", Command}, Action: Action{Kind: OpenWindow}},
		Item{Title: "Settings…", Enabled: true, Shortcut: Shortcut{",", Command}, Action: Action{Kind: OpenSettings}})
	if l := s.LaunchAtLogin; l != nil {
		items = append(items, launchAtLoginItem(*l))
	}
	items = append(items, separator(), quitItem(s))
	return Menu{Items: items}
}

// launchAtLoginItem is "Launch at Login", checked when Berth opens at
// login, mixed while the user has yet to allow it in System Settings
// (the tooltip says where); choosing it turns it off when on or
// pending, else on. Where the system cannot do it, it is disabled with
// the reason.
func launchAtLoginItem(l settings.LoginState) Item {
	it := Item{Title: "Launch at Login", Enabled: l.Available, Tooltip: l.Reason,
		Action: Action{Kind: SetLaunchAtLogin, Enable: !l.On && !l.Pending}}
	switch {
	case l.On:
		it.State = On
	case l.Pending:
		it.State = Mixed
	}
	return it
}

// engineUnusable says why nothing can be asked of the engine, or "".
func engineUnusable(s Snapshot) string {
	switch s.Engine.State {
	case EngineStarting:
		return "Berth is starting."
	case EngineNotRunning:
		return "Berth is not running."
	}
	return ""
}

// kernelUnusable says why no container can start, or "".
func kernelUnusable(s Snapshot) string {
	if s.Kernel.Error != "" {
		return "No Linux kernel: set up a kernel first."
	}
	return ""
}

// statusItems are the lines at the top: the engine, the kernel, pulls
// and a kernel download.
func statusItems(s Snapshot) []Item {
	var items []Item
	switch s.Engine.State {
	case EngineStarting:
		items = append(items, info("Berth is starting…"))
	case EngineNotRunning:
		title := "Berth is not running"
		if s.Engine.Reason != "" {
			title += ": " + s.Engine.Reason
		}
		items = append(items, info(title))
		if s.Engine.LogPath != "" {
			items = append(items, action("Open Log", Action{Kind: OpenLog}))
		}
		return items
	case EngineRunning:
		running := 0
		for _, c := range s.Containers {
			if c.Running() {
				running++
			}
		}
		title := "Berth is running"
		switch {
		case running == 1:
			title += " · 1 container running"
		case running > 1:
			title += fmt.Sprintf(" · %d containers running", running)
		}
		items = append(items, info(title))
	}
	if s.Kernel.Error != "" {
		items = append(items, Item{Title: "No Linux kernel: " + s.Kernel.Error, Tooltip: s.Kernel.Error})
		if s.KernelDownload == nil {
			items = append(items, action("Set up kernel…", Action{Kind: SetUpKernel}))
		}
	}
	if k := s.KernelDownload; k != nil {
		if k.Err != "" {
			items = append(items, Item{Title: "Kernel download failed: " + k.Err, Tooltip: k.Err})
			items = append(items, action("Set up kernel…", Action{Kind: SetUpKernel}))
		} else {
			items = append(items, info("Downloading kernel…"+progressText(*k)))
		}
	}
	for _, p := range s.Pulls {
		if p.Err != "" {
			items = append(items, Item{Title: "Pull of " + p.Subject + " failed: " + p.Err, Enabled: true, Tooltip: p.Err,
				Submenu: []Item{action("Dismiss", Action{Kind: DismissPull, Ref: p.Subject})}})
			continue
		}
		items = append(items, Item{Title: "Pulling " + p.Subject + "…" + progressText(p), Enabled: true,
			Submenu: []Item{action("Cancel Pull", Action{Kind: CancelPull, Ref: p.Subject})}})
	}
	return items
}

// progressText is " 45% (1.2MB of 2.7MB)", " 1 of 3 layers" or "".
func progressText(p Progress) string {
	if pc := p.Percent(); pc >= 0 {
		return fmt.Sprintf(" %d%% (%s of %s)", pc, human.Bytes(p.Current), human.Bytes(p.Total))
	}
	if p.Layers > 0 {
		return fmt.Sprintf(" %d of %d layers", p.LayersDone, p.Layers)
	}
	return ""
}

// SortContainers orders containers as the menu lists them: running ones
// first, then the most recent (started, else created) first, then by
// name.
func SortContainers(cs []Container) {
	recent := func(c Container) time.Time {
		if c.StartedAt.After(c.Created) {
			return c.StartedAt
		}
		return c.Created
	}
	slices.SortStableFunc(cs, func(a, b Container) int {
		if a.Running() != b.Running() {
			if a.Running() {
				return -1
			}
			return 1
		}
		if c := recent(b).Compare(recent(a)); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
}

// containerItems is the Containers section.
func containerItems(s Snapshot, now time.Time) []Item {
	items := []Item{header("Containers")}
	if len(s.Containers) == 0 {
		return append(items, disabled(info("No containers"), "Run an image to start one."))
	}
	cs := slices.Clone(s.Containers)
	SortContainers(cs)
	shown := cs[:min(len(cs), MaxContainers)]
	for _, c := range shown {
		items = append(items, containerItem(c, s, now))
	}
	if more := len(cs) - len(shown); more > 0 {
		items = append(items, action(fmt.Sprintf("%d more… → Open Berth Window", more), Action{Kind: OpenWindow}))
	}
	return items
}

// containerItem is one container: "name — image" marked by its state,
// with a submenu of its details and actions.
func containerItem(c Container, s Snapshot, now time.Time) Item {
	it := Item{Title: c.Name + " — " + c.Image, Enabled: true, Tooltip: containerStatus(c, now)}
	switch c.State {
	case "running":
		it.State = On
	case "paused", "restarting":
		it.State = Mixed
	}
	ref := func(k Kind) Action { return Action{Kind: k, Container: c.ID, Name: c.Name} }
	sub := []Item{info(containerStatus(c, now)), info("Image: " + c.Image)}
	if c.IP != "" {
		sub = append(sub, info("IP: "+c.IP))
	}
	if c.Error != "" && !c.Running() {
		sub = append(sub, Item{Title: "Error: " + c.Error, Tooltip: c.Error})
	}
	sub = append(sub, separator())
	notRunning := "The container is not running."
	shell, term := action("Open Shell", ref(OpenShell)), action("Open in Terminal.app", ref(OpenInTerminal))
	if c.State != "running" {
		shell, term = disabled(shell, notRunning), disabled(term, notRunning)
	}
	share := action("Share Folder…", ref(ShareFolder))
	share.Tooltip = "Share a folder of this Mac with " + c.Name + " only, at /mnt/<folder name>."
	if !c.Running() {
		share.Tooltip = "The folder is recorded now and appears in " + c.Name + " when it starts."
	}
	sub = append(sub, shell, term, share)
	if len(c.Shares) > 0 {
		var shares []Item
		for _, sh := range c.Shares {
			title := sh.HostPath + " → " + sh.ContainerPath
			if sh.Volume != "" {
				title = "volume " + human.ShortID(sh.Volume) + " → " + sh.ContainerPath
			}
			if sh.ReadOnly {
				title += " (read-only)"
			}
			a := ref(StopSharing)
			a.Share = sh
			stop := action("Stop Sharing", a)
			if sh.AtCreate {
				stop = disabled(stop, "Shared when "+c.Name+" was created (-v or --mount): it lasts as long as the container.")
			}
			shares = append(shares, Item{Title: title, Enabled: true, Submenu: []Item{stop}})
		}
		sub = append(sub, Item{Title: "Shared Folders", Enabled: true, Submenu: shares})
	}
	copyIP := action("Copy IP", ref(CopyIP))
	if c.IP == "" {
		copyIP = disabled(copyIP, "The container has no IP address: it is not running.")
	}
	sub = append(sub, copyIP, action("Logs", ref(ShowLogs)), separator())
	if c.Running() {
		sub = append(sub, action("Stop", ref(StopContainer)), action("Restart", ref(RestartContainer)))
	} else {
		start := action("Start", ref(StartContainer))
		if why := kernelUnusable(s); why != "" {
			start = disabled(start, why)
		}
		sub = append(sub, start)
	}
	rm := action("Remove…", ref(RemoveContainer))
	rm.Confirm = "Remove " + c.Name + "? Its files are deleted."
	if c.Running() {
		rm.Action.Force = true
		rm.Confirm = "Remove " + c.Name + "? It is running: it is stopped, and its files are deleted."
	}
	it.Submenu = append(sub, rm)
	return it
}

// containerStatus is the container's state in words: "Running · up 5
// minutes", "Exited (1) 3 minutes ago".
func containerStatus(c Container, now time.Time) string {
	switch c.State {
	case "running":
		if c.StartedAt.IsZero() {
			return "Running"
		}
		return "Running · up " + human.Duration(now.Sub(c.StartedAt))
	case "exited":
		if c.FinishedAt.IsZero() {
			return fmt.Sprintf("Exited (%d)", c.ExitCode)
		}
		return fmt.Sprintf("Exited (%d) %s", c.ExitCode, human.Ago(c.FinishedAt, now))
	case "created":
		return "Created " + human.Ago(c.Created, now)
	case "":
		return "Unknown"
	}
	return strings.ToUpper(c.State[:1]) + c.State[1:]
}

// imageItems is the Images section, by reference.
func imageItems(s Snapshot) []Item {
	items := []Item{header("Images")}
	if len(s.Images) == 0 {
		return append(items, disabled(info("No images"), "Pull Image… fetches one."))
	}
	ims := slices.Clone(s.Images)
	slices.SortFunc(ims, func(a, b Image) int { return cmp.Compare(a.Ref(), b.Ref()) })
	shown := ims[:min(len(ims), MaxImages)]
	noKernel := kernelUnusable(s)
	for _, im := range shown {
		ref := im.Ref()
		run, shell := action("Run…", Action{Kind: RunImage, Image: ref}), action("Run Shell", Action{Kind: RunShell, Image: ref})
		if noKernel != "" {
			run, shell = disabled(run, noKernel), disabled(shell, noKernel)
		}
		rm := action("Remove…", Action{Kind: RemoveImage, Image: ref})
		rm.Confirm = "Remove the image " + ref + "?"
		items = append(items, Item{Title: ref + " — " + human.Bytes(im.Size), Enabled: true, Submenu: []Item{run, shell, separator(), rm}})
	}
	if more := len(ims) - len(shown); more > 0 {
		items = append(items, action(fmt.Sprintf("%d more… → Open Berth Window", more), Action{Kind: OpenWindow}))
	}
	return items
}

// quitItem is Quit Berth, carrying how many containers run.
func quitItem(s Snapshot) Item {
	running := 0
	if s.Engine.State == EngineRunning {
		for _, c := range s.Containers {
			if c.Running() {
				running++
			}
		}
	}
	it := Item{Title: "Quit Berth", Enabled: true, Shortcut: Shortcut{"q", Command}, Action: Action{Kind: Quit, Running: running}}
	// The engine's VMs end with it (there is no re-adoption at the next
	// start yet), so "leave them running" is not offered: the choice is
	// a graceful stop or quitting at once.
	switch running {
	case 0:
	case 1:
		it.Confirm = "1 container is running. Stop it gracefully before quitting, or quit now (its VM is killed and it shows as exited at the next start)?"
	default:
		it.Confirm = fmt.Sprintf("%d containers are running. Stop them gracefully before quitting, or quit now (their VMs are killed and they show as exited at the next start)?", running)
	}
	return it
}
