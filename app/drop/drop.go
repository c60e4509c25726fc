// Package drop decides what a drop of Finder items onto a container
// means, platform-neutrally: the darwin glue (a terminal window's web
// view, the status item's button) reads the dropped file URLs and the
// container the drop landed on, and Decide answers with the ShareFolder
// actions to do at once, the questions to ask first and the lines to
// tell the user. Nothing here calls the engine: the Dispatcher does the
// actions, and the engine checks each folder again when it shares it.
//
// The rules, in the order Decide applies them to each dropped path:
//
//  1. A path that is not absolute, or does not exist, is an error that
//     names it (a drop can race with a delete in Finder).
//  2. A file (anything not a folder) is not shared by itself: Berth
//     shares folders. Its parent folder is offered instead, as one
//     question per parent ("Share the folder that holds notes.txt?").
//  3. A folder already shared with the container (or inside one that is)
//     is not shared twice: a note says where it already is.
//  4. Every other folder is one ShareFolder action; the same folder
//     dropped twice is one action.
//  5. A container that is not running gets its shares recorded: a note
//     says they appear when it starts. A container being removed, or
//     dead, refuses the drop.
package drop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berthvm/berth/app/internal/human"
	"github.com/berthvm/berth/app/menu"
	"github.com/berthvm/berth/engine/errdefs"
)

// Question is something to ask before an action: a dropped file whose
// folder could be shared instead. The glue shows Title and Message with
// the buttons OK and Cancel and does Action on OK.
type Question struct {
	Title, Message, OK string
	Action             menu.Action
}

// Decision is what a drop means.
type Decision struct {
	// Share are the ShareFolder actions to do now, one per folder, in
	// the order dropped.
	Share []menu.Action
	// Ask are the questions to ask first (dropped files), one per
	// parent folder.
	Ask []Question
	// Notes are lines to tell the user: folders and files already
	// shared, and where.
	Notes []string
	// Recorded, for a container that is not running, says that its
	// shares appear when it starts: the glue tells it once a share is
	// done (not when every question was declined).
	Recorded string
	// Err joins the paths that cannot be shared, each an
	// errdefs.ErrInvalidArgument naming the path; nil when none.
	Err error
}

// Decide is what dropping paths (absolute host paths, as file URLs
// give them) onto container c means (see the package comment).
func Decide(paths []string, c menu.Container) Decision {
	var d Decision
	name := c.Name
	if name == "" {
		name = human.ShortID(c.ID)
	}
	if c.ID == "" {
		d.Err = errdefs.InvalidArgument(errors.New("share: no container to share with"))
		return d
	}
	switch c.State {
	case "removing", "dead":
		d.Err = errdefs.Conflict(fmt.Errorf("share with %s: the container is %s; drop the folder onto another container", name, c.State))
		return d
	}
	if len(paths) == 0 {
		d.Err = errdefs.InvalidArgument(errors.New("share: nothing was dropped"))
		return d
	}
	shared := shares(c.Shares)
	var folders []string           // to share, cleaned
	var resolved []string          // the same, symlinks resolved
	files := map[string][]string{} // parent folder → dropped files in it
	var parents []string           // the parents, in the order dropped
	var errs []error
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			errs = append(errs, errdefs.InvalidArgument(fmt.Errorf("share %s: not an absolute path", p)))
			continue
		}
		p = filepath.Clean(p)
		fi, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				errs = append(errs, errdefs.InvalidArgument(fmt.Errorf("share %s: it no longer exists on this Mac", p)))
			} else {
				errs = append(errs, errdefs.InvalidArgument(fmt.Errorf("share %s: %w", p, err)))
			}
			continue
		}
		if !fi.IsDir() {
			parent := filepath.Dir(p)
			if _, ok := files[parent]; !ok {
				parents = append(parents, parent)
			}
			files[parent] = append(files[parent], filepath.Base(p))
			continue
		}
		real := resolve(p)
		if at, ok := shared.find(real); ok {
			d.Notes = append(d.Notes, p+" is already shared with "+name+" at "+at+".")
			continue
		}
		if slices.Contains(resolved, real) {
			continue
		}
		folders, resolved = append(folders, p), append(resolved, real)
	}
	for _, f := range folders {
		d.Share = append(d.Share, menu.Action{Kind: menu.ShareFolder, Container: c.ID, Name: c.Name, HostPath: f})
	}
	for _, parent := range parents {
		real := resolve(parent)
		if at, ok := shared.find(real); ok {
			d.Notes = append(d.Notes, fileList(files[parent])+" "+isAre(files[parent])+" already in "+name+" at "+at+".")
			continue
		}
		if slices.Contains(resolved, real) {
			continue // the folder itself was dropped too
		}
		d.Ask = append(d.Ask, Question{
			Title: "Share the folder that holds " + fileList(files[parent]) + "?",
			Message: "Berth shares folders, not single files. Share " + parent + " with " + name +
				"? Everything in it appears in the container at /mnt/" + filepath.Base(parent) + ".",
			OK:     "Share Folder",
			Action: menu.Action{Kind: menu.ShareFolder, Container: c.ID, Name: c.Name, HostPath: parent},
		})
	}
	if !c.Running() && (len(d.Share) > 0 || len(d.Ask) > 0) {
		d.Recorded = name + " is not running: the share is recorded and appears in it when it starts."
	}
	d.Err = errors.Join(errs...)
	return d
}

// resolve is p with symlinks resolved (as the engine records a share's
// source), or p when it cannot be.
func resolve(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// shares are a container's shares by host folder.
type shares []menu.Share

// find returns where folder is in the container: a shared folder's
// target, or the path inside one that holds folder.
func (s shares) find(folder string) (string, bool) {
	for _, sh := range s {
		if folder == sh.HostPath {
			return sh.ContainerPath, true
		}
		if rel, ok := strings.CutPrefix(folder, strings.TrimSuffix(sh.HostPath, "/")+"/"); ok {
			return sh.ContainerPath + "/" + filepath.ToSlash(rel), true
		}
	}
	return "", false
}

// fileList is "a.txt", "a.txt and b.txt" or "a.txt and 2 more files".
func fileList(names []string) string {
	switch len(names) {
	case 1:
		return names[0]
	case 2:
		return names[0] + " and " + names[1]
	}
	return fmt.Sprintf("%s and %d more files", names[0], len(names)-1)
}

func isAre(names []string) string {
	if len(names) == 1 {
		return "is"
	}
	return "are"
}

// Candidate is a container a drop on the status item can go to.
type Candidate struct {
	// Title is the line the chooser shows: "web — nginx:alpine", with
	// " (not running: from its next start)" for a stopped one.
	Title     string
	Container menu.Container
}

// Candidates are the containers of s a drop on the status item can go
// to, in the menu's order (running first): every one but those being
// removed or dead. The glue asks which (an alert with a pop-up button)
// and Decides the drop for the one chosen; with none it says so.
func Candidates(s menu.Snapshot) []Candidate {
	cs := slices.Clone(s.Containers)
	menu.SortContainers(cs)
	var out []Candidate
	for _, c := range cs {
		if c.State == "removing" || c.State == "dead" {
			continue
		}
		title := c.Name + " — " + c.Image
		if !c.Running() {
			title += " (not running: from its next start)"
		}
		out = append(out, Candidate{Title: title, Container: c})
	}
	return out
}

// ErrNoContainers is the answer to a drop on the status item when there
// is no container to share with.
var ErrNoContainers = errdefs.NotFound(errors.New("share: there is no container to share the folder with; run one first (Run Image… in the menu)"))

// Find returns the container of s that ref names: its ID, a unique ID
// prefix, or its name (a terminal window knows its container by the ref
// its session was opened with).
func Find(s menu.Snapshot, ref string) (menu.Container, bool) {
	ref = strings.TrimPrefix(ref, "/")
	if ref == "" {
		return menu.Container{}, false
	}
	var byPrefix []menu.Container
	for _, c := range s.Containers {
		if c.ID == ref || c.Name == ref {
			return c, true
		}
		if strings.HasPrefix(c.ID, ref) {
			byPrefix = append(byPrefix, c)
		}
	}
	if len(byPrefix) == 1 {
		return byPrefix[0], true
	}
	return menu.Container{}, false
}

// Message is the decision's notes and errors as one text for an alert
// (empty when there is nothing to tell), and whether any of it is an
// error; shared is how many of its shares were done, which decides
// whether Recorded is told.
func (d Decision) Message(shared int) (text string, isErr bool) {
	lines := slices.Clone(d.Notes)
	if shared > 0 && d.Recorded != "" {
		lines = append(lines, d.Recorded)
	}
	if d.Err != nil {
		lines = append(lines, strings.Split(d.Err.Error(), "\n")...)
	}
	return strings.Join(lines, "\n"), d.Err != nil
}

// Summary is what the glue tells after a drop onto c was acted on:
// results are the Dispatcher's answers for the shares done, failed the
// errors of those that were not. The text has a line per share done
// (where it is), per failure, then the decision's notes and errors;
// isErr says whether anything failed.
func Summary(d Decision, c menu.Container, results []menu.Result, failed []error) (title, text string, isErr bool) {
	name := c.Name
	if name == "" {
		name = human.ShortID(c.ID)
	}
	n, total := len(results), len(results)+len(failed)
	switch {
	case total == 0:
		title = "Nothing shared with " + name
	case len(failed) == 0 && n == 1:
		title = "Shared a folder with " + name
	case len(failed) == 0:
		title = fmt.Sprintf("Shared %d folders with %s", n, name)
	case n == 0:
		title = "Sharing with " + name + " failed"
	default:
		title = fmt.Sprintf("Shared %d of %d folders with %s", n, total, name)
	}
	var lines []string
	for _, r := range results {
		if r.Message != "" {
			lines = append(lines, r.Message+".")
		}
	}
	for _, err := range failed {
		lines = append(lines, strings.TrimPrefix(err.Error(), "Error response from daemon: "))
	}
	rest, restErr := d.Message(n)
	if rest != "" {
		lines = append(lines, rest)
	}
	return title, strings.Join(lines, "\n"), len(failed) > 0 || restErr
}
