package menubar

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthvm/berth/app/drop"
	"github.com/berthvm/berth/app/menu"
	"github.com/berthvm/berth/engine/daemon"
	"github.com/berthvm/berth/engine/terminal"
)

// This file is the platform-neutral half of the glue: every decision the
// darwin code (menubar_darwin.go) makes that is not a Cocoa call, so that
// it is tested on any OS.

// EffectKind is one thing the glue does with a menu.Result.
type EffectKind int

// The effects, in the order Effects returns them.
const (
	// OpenTerminalWindow opens Text (a terminal page URL whose fragment
	// carries the session's token) in a terminal window.
	OpenTerminalWindow EffectKind = iota + 1
	// CopyText puts Text on the pasteboard.
	CopyText
	// RunInTerminalApp runs the shell command line Text in Terminal.app
	// (a .command file, see WriteTerminalScript).
	RunInTerminalApp
	// OpenFile opens the file Text with its default app (NSWorkspace).
	OpenFile
	// ShowWindow shows the app window Text names (menu.Window).
	ShowWindow
	// ShowMessage shows Text as the status item's tooltip.
	ShowMessage
	// QuitApp shuts the engine down and terminates the app.
	QuitApp
)

// Effect is one thing to do on the main queue after an action.
type Effect struct {
	Kind EffectKind
	Text string
}

// Effects is what the glue does with r, in order; the quit comes last, so
// that nothing is asked of an app that is terminating.
func Effects(r menu.Result) []Effect {
	var out []Effect
	add := func(k EffectKind, text string) {
		if text != "" {
			out = append(out, Effect{k, text})
		}
	}
	add(OpenTerminalWindow, r.URL)
	add(CopyText, r.Copy)
	add(RunInTerminalApp, r.TerminalCommand)
	add(OpenFile, r.OpenPath)
	add(ShowWindow, string(r.Window))
	add(ShowMessage, r.Message)
	if r.Quit {
		out = append(out, Effect{Kind: QuitApp})
	}
	return out
}

// Redeemer takes a terminal session's ticket for its token, once: the
// engine's terminal.Manager (daemon.Daemon.Terminals).
type Redeemer interface {
	Redeem(token string) (terminal.Ticket, error)
}

// TicketFromURL redeems the token in a terminal page URL's fragment
// ("…/terminal/#token=T", as the engine's OpenTerminal answers) for the
// session's ticket. The app hosts the engine, so its terminal window
// serves the session from the Manager itself rather than through the
// loopback page.
func TicketFromURL(r Redeemer, pageURL string) (terminal.Ticket, error) {
	u, err := url.Parse(pageURL)
	if err != nil {
		return terminal.Ticket{}, fmt.Errorf("open terminal window: bad page URL: %w", err)
	}
	frag, err := url.ParseQuery(u.Fragment)
	if err != nil {
		return terminal.Ticket{}, fmt.Errorf("open terminal window: bad fragment in the page URL %s%s: %w", u.Host, u.Path, err)
	}
	tok := frag.Get("token")
	if tok == "" {
		return terminal.Ticket{}, fmt.Errorf("open terminal window: the page URL %s%s has no #token=", u.Host, u.Path)
	}
	t, err := r.Redeem(tok)
	if err != nil {
		return terminal.Ticket{}, fmt.Errorf("open terminal window for %s%s: %w", u.Host, u.Path, err)
	}
	return t, nil
}

// Button is one button of a confirmation alert.
type Button struct {
	Title string
	// Action is what choosing it does; Cancel buttons do nothing.
	Action menu.Action
	Cancel bool
}

// Confirmation is the alert shown before an item's action when the item
// has a Confirm question. Buttons are in NSAlert's order: the first is
// the default (Return), a Cancel one answers Escape.
type Confirmation struct {
	Title, Message string
	Buttons        []Button
}

// ConfirmationFor is the alert it needs before its action, or false
// when it needs none. Quit with containers running offers a graceful stop
// ("Stop and Quit", the default), "Quit Now" (their VMs die with the
// engine) and Cancel; any other item offers its verb and Cancel.
func ConfirmationFor(it menu.Item) (Confirmation, bool) {
	if it.Confirm == "" {
		return Confirmation{}, false
	}
	if it.Action.Kind == menu.Quit {
		stop, now := it.Action, it.Action
		stop.StopContainers, now.StopContainers = true, false
		return Confirmation{Title: "Quit Berth?", Message: it.Confirm, Buttons: []Button{
			{Title: "Stop and Quit", Action: stop},
			{Title: "Quit Now", Action: now},
			{Title: "Cancel", Cancel: true},
		}}, true
	}
	verb := strings.TrimSuffix(strings.TrimSpace(it.Title), "…")
	return Confirmation{Title: verb + "?", Message: it.Confirm, Buttons: []Button{
		{Title: verb, Action: it.Action},
		{Title: "Cancel", Cancel: true},
	}}, true
}

// alertFirstButton is NSAlertFirstButtonReturn: RunModal's answer for the
// first button; the second is one more, and so on.
const alertFirstButton = 1000

// Choose is the action the answer of NSAlert's RunModal (a modal
// response) picks, or false for Cancel or an answer no button gives.
func (c Confirmation) Choose(response int) (menu.Action, bool) {
	i := response - alertFirstButton
	if i < 0 || i >= len(c.Buttons) || c.Buttons[i].Cancel {
		return menu.Action{}, false
	}
	return c.Buttons[i].Action, true
}

// DialogInput fills a's dialog d from the text fields' values, in d's
// field order, as WithInput does with them by key.
func DialogInput(a menu.Action, d menu.Dialog, texts []string) (menu.Action, error) {
	if len(texts) != len(d.Fields) {
		return a, fmt.Errorf("dialog %q: %d values for %d fields", d.Title, len(texts), len(d.Fields))
	}
	values := make(map[string]string, len(texts))
	for i, f := range d.Fields {
		values[f.Key] = texts[i]
	}
	return a.WithInput(values)
}

// ErrorAlert is the alert for an action that failed: "Stop failed" (the
// item's title) and the error, which names the subject, without the
// prefix Docker's client puts on engine errors.
func ErrorAlert(it menu.Item, err error) (title, message string) {
	title = strings.TrimSuffix(strings.TrimSpace(it.Title), "…")
	if title == "" {
		title = it.Action.Kind.String()
	}
	return title + " failed", strings.TrimPrefix(err.Error(), "Error response from daemon: ")
}

// AlreadyRunning is the alert a second Berth app shows when the engine it
// would host finds the home's lock held (daemon.LockedError) — "Berth is
// already running (pid N)" — before it exits; false for any other error.
func AlreadyRunning(err error) (title, message string, ok bool) {
	var locked *daemon.LockedError
	if !errors.As(err, &locked) {
		return "", "", false
	}
	title = "Berth is already running"
	if locked.PID > 0 {
		title = fmt.Sprintf("Berth is already running (pid %d)", locked.PID)
	}
	return title, fmt.Sprintf("Another Berth (the app, or `berth daemon`) is serving %s. Use its menu-bar item, or quit it and open Berth again.", locked.Home), true
}

// WriteTerminalScript writes command into a new .command file in dir for
// `open -a Terminal FILE` (Terminal.app runs such files in a new window);
// the script deletes itself first, then runs the command with exec. It
// returns the file's path.
func WriteTerminalScript(dir, command string) (string, error) {
	f, err := os.CreateTemp(dir, "berth-*.command")
	if err != nil {
		return "", fmt.Errorf("open in Terminal: create a .command file in %s: %w", dir, err)
	}
	script := "#!/bin/sh\nrm -f \"$0\"\nexec " + command + "\n"
	_, werr := f.WriteString(script)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), 0o700)); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("open in Terminal: write %s: %w", f.Name(), err)
	}
	return filepath.Clean(f.Name()), nil
}

// TerminalAppArgs is the command line that opens script in Terminal.app.
func TerminalAppArgs(script string) []string { return []string{"open", "-a", "Terminal", script} }

// Icon names the status item's template image: its resource file is
// Icon+".png" (and "@2x.png") in the app's Resources.
type Icon string

// The status item's icons, one per engine state.
const (
	IconRunning  Icon = "berthTemplate"
	IconStarting Icon = "berthStartingTemplate"
	IconError    Icon = "berthErrorTemplate"
)

// IconFor is the icon the status item shows for s: the error variant
// when the engine is not running, has no usable kernel, or a kernel
// download failed; the starting one while it starts or sets its kernel
// up; else the plain one.
func IconFor(s menu.Snapshot) Icon {
	switch {
	case s.Engine.State == menu.EngineNotRunning, s.Kernel.Error != "" && s.KernelDownload == nil,
		s.KernelDownload != nil && s.KernelDownload.Err != "":
		return IconError
	case s.Engine.State == menu.EngineStarting, s.KernelDownload != nil:
		return IconStarting
	}
	return IconRunning
}

// QuestionConfirmation is the alert a drop's question (a file dropped:
// share its folder?) is asked with: its OK button does the question's
// action, Cancel nothing.
func QuestionConfirmation(q drop.Question) Confirmation {
	return Confirmation{Title: q.Title, Message: q.Message, Buttons: []Button{
		{Title: q.OK, Action: q.Action},
		{Title: "Cancel", Cancel: true},
	}}
}

// Chooser is the alert a drop on the status item asks which container
// with: Titles fill its pop-up button, in Candidates' order.
type Chooser struct {
	Title, Message string
	Titles         []string
	// OK is the default button; the second is Cancel.
	OK         string
	candidates []drop.Candidate
}

// DropChooser is the chooser for paths dropped on the status item, or
// drop.ErrNoContainers when no container can take a share.
func DropChooser(s menu.Snapshot, paths []string) (Chooser, error) {
	cands := drop.Candidates(s)
	if len(cands) == 0 {
		return Chooser{}, drop.ErrNoContainers
	}
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	what := "the dropped items"
	switch len(names) {
	case 1:
		what = names[0]
	case 2:
		what = names[0] + " and " + names[1]
	}
	c := Chooser{Title: "Share with which container?", OK: "Share", candidates: cands,
		Message: "Share " + what + " with one container. Only that container sees it, at /mnt/<folder name>."}
	for _, cand := range cands {
		c.Titles = append(c.Titles, cand.Title)
	}
	return c, nil
}

// Pick is the container chosen: RunModal's response and the pop-up
// button's selected index; false for Cancel or an index out of range.
func (c Chooser) Pick(response, selected int) (menu.Container, bool) {
	if response != alertFirstButton || selected < 0 || selected >= len(c.candidates) {
		return menu.Container{}, false
	}
	return c.candidates[selected].Container, true
}
