package menu

import (
	"errors"
	"fmt"
	"strings"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/errdefs"
)

// Kind is what an Action does.
type Kind int

// The kinds of Action. Each says which Action fields it reads.
const (
	// None is an item that does nothing (a status line, a header).
	None Kind = iota
	// OpenShell opens a terminal session on Container; the Result's URL
	// is the terminal page to show in a window.
	OpenShell
	// OpenInTerminal gives the command line that opens a shell in
	// Container in Terminal.app (Result.TerminalCommand).
	OpenInTerminal
	// ShareFolder shares the host folder HostPath with Container, at
	// /mnt/<folder name> (a dialog: a folder chooser). A stopped
	// container gets it at its next start.
	ShareFolder
	// StopSharing ends Share of Container (by its ContainerPath).
	StopSharing
	// CopyIP puts Container's IP address on the pasteboard (Result.Copy).
	CopyIP
	// ShowLogs gives the command that follows Container's logs in
	// Terminal.app (Result.TerminalCommand).
	ShowLogs
	// StartContainer, StopContainer and RestartContainer act on
	// Container.
	StartContainer
	StopContainer
	RestartContainer
	// RemoveContainer removes Container; Force stops it first.
	RemoveContainer
	// RunImage creates and starts a container of Image with Run's name
	// and command (a dialog).
	RunImage
	// RunShell starts a container of Image that keeps a shell open (run
	// -d -t -i, entrypoint cleared) and opens a terminal session on it.
	RunShell
	// RemoveImage removes Image.
	RemoveImage
	// PullImage pulls Ref (a dialog), reporting progress into the State.
	PullImage
	// CancelPull cancels the pull of Ref in progress.
	CancelPull
	// DismissPull forgets the failed pull of Ref.
	DismissPull
	// SetUpKernel sets the guest kernel to Kernel (a dialog).
	SetUpKernel
	// OpenLog opens the engine's log file (Result.OpenPath).
	OpenLog
	// OpenWindow opens the Berth window.
	OpenWindow
	// OpenSettings opens the settings.
	OpenSettings
	// Quit quits Berth. Running says how many containers run: when it is
	// not zero the glue asks (Item.Confirm) whether to stop them
	// gracefully first (StopContainers) or quit at once, which kills
	// their VMs with the engine.
	Quit
	// SetLaunchAtLogin turns Launch at Login on (Enable) or off.
	SetLaunchAtLogin
	// RunPlugin runs the CLI plugin Plugin with PluginArgs through the
	// berth command (`berth <plugin> args…`) in Terminal.app
	// (Result.TerminalCommand): a menu entry a plugin declared.
	RunPlugin
)

var kindNames = [...]string{
	None: "none", OpenShell: "open-shell", OpenInTerminal: "open-in-terminal", ShareFolder: "share-folder",
	StopSharing: "stop-sharing", CopyIP: "copy-ip", ShowLogs: "logs", StartContainer: "start",
	StopContainer: "stop", RestartContainer: "restart", RemoveContainer: "remove", RunImage: "run",
	RunShell: "run-shell", RemoveImage: "remove-image", PullImage: "pull", CancelPull: "cancel-pull",
	DismissPull: "dismiss-pull", SetUpKernel: "set-up-kernel", OpenLog: "open-log", OpenWindow: "open-window",
	OpenSettings: "settings", Quit: "quit", SetLaunchAtLogin: "launch-at-login",
	RunPlugin: "run-plugin",
}

// String is the kind's name as Render writes it ("stop").
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Action is what a menu item does, as a plain value: the kind and the
// subject it acts on. Fields a kind does not read are empty.
type Action struct {
	Kind Kind
	// Container is a container's ID.
	Container string
	// Name is the container's name, for messages and commands.
	Name string
	// Image is an image reference (or ID, for an untagged image).
	Image string
	// Ref is the reference a pull names.
	Ref string
	// Force removes a running container (stopping it first).
	Force bool
	// Run is RunImage's input.
	Run RunOptions
	// Kernel is SetUpKernel's input.
	Kernel types.KernelChoice
	// HostPath is ShareFolder's input.
	HostPath string
	// Share is the share StopSharing ends.
	Share Share
	// Running is, for Quit, how many containers run.
	Running int
	// StopContainers is Quit's answer to "stop them gracefully first?".
	StopContainers bool
	// Enable is SetLaunchAtLogin's choice.
	Enable bool
	// Plugin and PluginArgs are RunPlugin's plugin name and arguments.
	Plugin     string
	PluginArgs []string
}

// RunOptions is the Run… dialog's input.
type RunOptions struct {
	// Name is the container's name; empty: the engine picks one.
	Name string
	// Cmd replaces the image's command when not empty.
	Cmd []string
}

// Field is one text field of a dialog.
type Field struct {
	// Key names the field in WithInput's values.
	Key string
	// Label is shown next to the field.
	Label string
	// Value is the field's initial text.
	Value string
	// Placeholder is shown while the field is empty.
	Placeholder string
}

// Dialog describes the input an action needs from the user before it
// can be done: a title, a message and text fields. The glue shows it
// (an NSAlert with text fields) and passes the fields' text to
// WithInput.
type Dialog struct {
	Title, Message string
	Fields         []Field
	// OK is the default button's title.
	OK string
	// ChooseFolder asks for a folder with the system's open panel
	// (folders only, one) instead of text fields; its path is the value
	// of the one field, "path".
	ChooseFolder bool
}

// Dialog returns the dialog a needs, or false when it needs none.
func (a Action) Dialog() (Dialog, bool) {
	switch a.Kind {
	case PullImage:
		if a.Ref != "" {
			return Dialog{}, false
		}
		return Dialog{Title: "Pull Image", Message: "Pull an image from a registry.", OK: "Pull",
			Fields: []Field{{Key: "ref", Label: "Image", Placeholder: "alpine:latest"}}}, true
	case RunImage:
		if a.Image == "" {
			return Dialog{Title: "Run Image", Message: "Run a container in the background. The image is pulled if it is not here.", OK: "Run",
				Fields: []Field{{Key: "image", Label: "Image", Placeholder: "alpine:latest"},
					{Key: "name", Label: "Name", Placeholder: "optional"},
					{Key: "cmd", Label: "Command", Placeholder: "the image's own"}}}, true
		}
		return Dialog{Title: "Run " + a.Image, Message: "Run a container of " + a.Image + " in the background.", OK: "Run",
			Fields: []Field{{Key: "name", Label: "Name", Placeholder: "optional"},
				{Key: "cmd", Label: "Command", Placeholder: "the image's own"}}}, true
	case SetUpKernel:
		return Dialog{Title: "Set up kernel", Message: "Berth boots each container in a small VM with a Linux kernel. Give a kernel file or unpacked kernel package, or a kernel .deb URL with its SHA-256.", OK: "Set Up",
			Fields: []Field{{Key: "path", Label: "Kernel file", Placeholder: "/path/to/vmlinuz"},
				{Key: "url", Label: "or .deb URL", Placeholder: "https://…/linux-image-….deb"},
				{Key: "sha256", Label: "SHA-256", Placeholder: "of the .deb"}}}, true
	case ShareFolder:
		if a.HostPath != "" {
			return Dialog{}, false
		}
		return Dialog{Title: "Share Folder with " + a.subject(), Message: "Choose a folder of this Mac to share with " + a.subject() + " only. It appears at /mnt/<folder name>.",
			OK: "Share", Fields: []Field{{Key: "path", Label: "Folder"}}, ChooseFolder: true}, true
	}
	return Dialog{}, false
}

// WithInput returns a with its dialog's fields (by Field.Key) filled in,
// or an error that says which field is wrong and how.
func (a Action) WithInput(values map[string]string) (Action, error) {
	v := func(k string) string { return strings.TrimSpace(values[k]) }
	switch a.Kind {
	case PullImage:
		a.Ref = v("ref")
		if a.Ref == "" {
			return a, errdefs.InvalidArgument(errors.New("pull: give an image reference, e.g. alpine:latest"))
		}
	case RunImage:
		if a.Image == "" {
			a.Image = v("image")
			if a.Image == "" {
				return a, errdefs.InvalidArgument(errors.New("run: give an image reference, e.g. alpine:latest"))
			}
		}
		a.Run.Name = v("name")
		cmd, err := SplitCommand(values["cmd"])
		if err != nil {
			return a, errdefs.InvalidArgument(fmt.Errorf("run: command: %w", err))
		}
		a.Run.Cmd = cmd
	case SetUpKernel:
		a.Kernel = types.KernelChoice{Path: v("path"), URL: v("url"), SHA256: v("sha256")}
		switch {
		case a.Kernel.Path == "" && a.Kernel.URL == "":
			return a, errdefs.InvalidArgument(errors.New("kernel: give a kernel file or a .deb URL"))
		case a.Kernel.Path != "" && a.Kernel.URL != "":
			return a, errdefs.InvalidArgument(errors.New("kernel: give a kernel file or a .deb URL, not both"))
		case a.Kernel.URL != "" && a.Kernel.SHA256 == "":
			return a, errdefs.InvalidArgument(errors.New("kernel: a .deb URL needs its SHA-256"))
		}
	case ShareFolder:
		a.HostPath = v("path")
		if a.HostPath == "" {
			return a, errdefs.InvalidArgument(errors.New("share: choose a folder"))
		}
	}
	return a, nil
}

// SplitCommand splits a command line into words as a POSIX shell does
// for plain words, 'single' and "double" quotes and backslash escapes
// (no variables, globs or operators): "sh -c 'echo hi'" is
// [sh -c "echo hi"].
func SplitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in %q", quote, s)
	}
	if escaped {
		return nil, fmt.Errorf("trailing backslash in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// Window names one of the app's windows.
type Window string

// The app's windows.
const (
	BerthWindow    Window = "berth"
	SettingsWindow Window = "settings"
)

// Result is what the glue shows after an action. At most a few fields
// are set.
type Result struct {
	// URL is a terminal page to open in a window (OpenShell, RunShell).
	URL string
	// Copy is text for the pasteboard (CopyIP).
	Copy string
	// TerminalCommand is a command line to run in Terminal.app
	// (OpenInTerminal, ShowLogs), each word already shell-quoted.
	TerminalCommand string
	// OpenPath is a file to open (OpenLog).
	OpenPath string
	// Window is a window to open (OpenWindow, OpenSettings).
	Window Window
	// Container is the container the action created (RunImage, RunShell).
	Container string
	// Message is a short line for the user ("Stopped web").
	Message string
	// Quit tells the glue to shut the engine down and terminate.
	Quit bool
}
