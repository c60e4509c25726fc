// Package user resolves the user a container's process runs as — Docker's
// USER value ("", "name", "uid", "name:group", "uid:gid", ...) — against
// the container's /etc/passwd and /etc/group. The host checks USER with
// it when a container is created (reading the files from the image) and
// the guest when it starts each process (reading the container's own
// files): both give the same answer, because it is the same code.
//
// The rules are runc's and containerd's, as Docker applies them:
//
//   - "" is root (uid 0).
//   - A numeric user need not exist in /etc/passwd: it then gets gid 0
//     and home "/". A named one must exist.
//   - A group after the colon, by number or by name, replaces the
//     user's primary group; a named one must exist in /etc/group.
//   - The supplementary groups are the primary gid, then — only when the
//     value names no group — every group /etc/group lists the user's name
//     in, then the extra gids (docker run --group-add), without repeats.
//   - A missing file reads as an empty one. Blank lines and lines
//     starting with '#' are skipped; a line that does not parse is
//     skipped unless it is the one the value names, which is then an
//     error naming the file and line.
//
// A value the files cannot satisfy is errdefs.ErrInvalidArgument (the
// USER value is wrong for this image), worded as runc words it: "unable
// to find user app: no matching entries in passwd file". A failure to
// read a file is returned wrapped, unclassified.
package user

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
)

// PasswdPath and GroupPath are where the files live in a container.
const (
	PasswdPath = "/etc/passwd"
	GroupPath  = "/etc/group"
)

// maxLine is the longest line read; a longer one fails the lookup.
const maxLine = 1 << 20

// Exec is who a process runs as.
type Exec struct {
	UID, GID uint32
	// Groups are the supplementary groups, GID first (see the package
	// comment).
	Groups []uint32
	// Home is the user's home directory ("/" when passwd has none).
	Home string
}

// Resolve resolves spec against passwd and group (the contents of
// /etc/passwd and /etc/group; nil for a file that does not exist) and
// adds extra to the supplementary groups.
func Resolve(spec string, passwd, group io.Reader, extra []uint32) (Exec, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "0"
	}
	u, name, err := lookupUser(userPart, passwd)
	if err != nil {
		return Exec{}, err
	}
	var groups []groupLine
	if hasGroup || name != "" {
		if groups, err = readGroup(group); err != nil {
			return Exec{}, err
		}
	}
	u.Groups = []uint32{u.GID}
	if hasGroup {
		if u.GID, err = lookupGroup(groupPart, groups); err != nil {
			return Exec{}, err
		}
		u.Groups[0] = u.GID
	} else if name != "" {
		for _, g := range groups {
			if g.err == nil && slices.Contains(g.members, name) {
				u.Groups = append(u.Groups, g.gid)
			}
		}
	}
	u.Groups = append(u.Groups, extra...)
	u.Groups = dedup(u.Groups)
	return u, nil
}

// lookupUser finds userPart (a name or a uid) in passwd and returns the
// user, without groups, and its name ("" for a uid passwd lacks).
func lookupUser(userPart string, passwd io.Reader) (Exec, string, error) {
	lines, err := readPasswd(passwd)
	if err != nil {
		return Exec{}, "", err
	}
	uid, numErr := strconv.ParseUint(userPart, 10, 32)
	numeric := numErr == nil
	for _, l := range lines {
		if numeric && l.uidField != userPart && (l.err != nil || l.uid != uint32(uid)) {
			continue
		}
		if !numeric && l.name != userPart {
			continue
		}
		if l.err != nil {
			return Exec{}, "", errdefs.InvalidArgument(fmt.Errorf("unable to find user %s: %w", userPart, l.err))
		}
		return Exec{UID: l.uid, GID: l.gid, Home: l.home}, l.name, nil
	}
	if numeric {
		return Exec{UID: uint32(uid), Home: "/"}, "", nil
	}
	return Exec{}, "", errdefs.InvalidArgument(fmt.Errorf("unable to find user %s: no matching entries in passwd file", userPart))
}

// lookupGroup finds groupPart (a name or a gid) in groups.
func lookupGroup(groupPart string, groups []groupLine) (uint32, error) {
	if gid, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
		return uint32(gid), nil
	}
	for _, g := range groups {
		if g.name != groupPart {
			continue
		}
		if g.err != nil {
			return 0, errdefs.InvalidArgument(fmt.Errorf("unable to find group %s: %w", groupPart, g.err))
		}
		return g.gid, nil
	}
	return 0, errdefs.InvalidArgument(fmt.Errorf("unable to find group %s: no matching entries in group file", groupPart))
}

// Names returns the user names of a passwd file by uid (the first line
// of a uid wins, as getpwuid finds it). Lines that do not parse are
// skipped.
func Names(passwd io.Reader) (map[uint32]string, error) {
	lines, err := readPasswd(passwd)
	if err != nil {
		return nil, err
	}
	names := map[uint32]string{}
	for _, l := range lines {
		if _, dup := names[l.uid]; l.err == nil && !dup {
			names[l.uid] = l.name
		}
	}
	return names, nil
}

// passwdLine is one line of /etc/passwd; err says why it does not parse.
type passwdLine struct {
	name, uidField string
	uid, gid       uint32
	home           string
	err            error
}

func readPasswd(r io.Reader) ([]passwdLine, error) {
	var out []passwdLine
	err := scan(r, "passwd", func(n int, f []string) {
		l := passwdLine{name: f[0], home: "/"}
		if len(f) < 4 {
			l.err = fmt.Errorf("passwd file line %d: %d fields, want 7", n, len(f))
			out = append(out, l)
			return
		}
		l.uidField = f[2]
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			l.err = fmt.Errorf("passwd file line %d: uid %q or gid %q is not a number", n, f[2], f[3])
		}
		l.uid, l.gid = uint32(uid), uint32(gid)
		if len(f) > 5 && f[5] != "" {
			l.home = f[5]
		}
		out = append(out, l)
	})
	return out, err
}

// groupLine is one line of /etc/group; err says why it does not parse.
type groupLine struct {
	name    string
	gid     uint32
	members []string
	err     error
}

func readGroup(r io.Reader) ([]groupLine, error) {
	var out []groupLine
	err := scan(r, "group", func(n int, f []string) {
		g := groupLine{name: f[0]}
		if len(f) < 3 {
			g.err = fmt.Errorf("group file line %d: %d fields, want 4", n, len(f))
			out = append(out, g)
			return
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			g.err = fmt.Errorf("group file line %d: gid %q is not a number", n, f[2])
		}
		g.gid = uint32(gid)
		if len(f) > 3 && f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		out = append(out, g)
	})
	return out, err
}

// scan calls line with the colon-separated fields of each line of r that
// is neither blank nor a comment, and its 1-based number. A nil r has no
// lines.
func scan(r io.Reader, file string, line func(n int, fields []string)) error {
	if r == nil {
		return nil
	}
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), maxLine)
	for n := 1; s.Scan(); n++ {
		t := strings.TrimSpace(s.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		line(n, strings.Split(t, ":"))
	}
	if err := s.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return errdefs.InvalidArgument(fmt.Errorf("read %s file: a line is longer than %d bytes", file, maxLine))
		}
		return fmt.Errorf("read %s file: %w", file, err)
	}
	return nil
}

func dedup(ids []uint32) []uint32 {
	out := ids[:0]
	seen := map[uint32]bool{}
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
