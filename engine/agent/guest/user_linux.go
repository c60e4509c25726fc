package guest

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
)

// execUser is who a process runs as.
type execUser struct {
	Uid, Gid uint32
	Groups   []uint32
	Home     string
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// resolveUser turns a Docker-style user spec ("", "name", "uid",
// "name:group", "uid:gid") into ids, reading passwd and group files (the
// container's /etc/passwd and /etc/group). As in Docker, a numeric uid
// need not exist in passwd (it then gets gid 0 and home /); a name must.
// Supplementary groups are the user's memberships in group plus extra.
func resolveUser(spec string, passwdPath, groupPath string, extra []uint32) (*execUser, error) {
	users, uerr := readPasswd(passwdPath)
	groups, gerr := readGroup(groupPath)
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "0"
	}
	u := &execUser{Home: "/"}
	var name string
	if id, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		u.Uid = uint32(id)
		for _, p := range users {
			if p.uid == u.Uid {
				name, u.Gid, u.Home = p.name, p.gid, p.home
				break
			}
		}
	} else {
		if uerr != nil {
			return nil, errdefs.InvalidArgument(fmt.Errorf("unable to find user %s: %w", userPart, uerr))
		}
		found := false
		for _, p := range users {
			if p.name == userPart {
				name, u.Uid, u.Gid, u.Home, found = p.name, p.uid, p.gid, p.home, true
				break
			}
		}
		if !found {
			return nil, errdefs.InvalidArgument(fmt.Errorf("unable to find user %s: no matching entries in passwd file", userPart))
		}
	}
	if hasGroup {
		gid, err := resolveGroup(groupPart, groups, gerr)
		if err != nil {
			return nil, err
		}
		u.Gid = gid
	}
	seen := map[uint32]bool{u.Gid: true}
	u.Groups = append(u.Groups, u.Gid)
	if name != "" && !hasGroup {
		for _, g := range groups {
			for _, m := range g.members {
				if m == name && !seen[g.gid] {
					seen[g.gid] = true
					u.Groups = append(u.Groups, g.gid)
				}
			}
		}
	}
	for _, g := range extra {
		if !seen[g] {
			seen[g] = true
			u.Groups = append(u.Groups, g)
		}
	}
	return u, nil
}

func resolveGroup(spec string, groups []groupEntry, gerr error) (uint32, error) {
	if id, err := strconv.ParseUint(spec, 10, 32); err == nil {
		return uint32(id), nil
	}
	if gerr != nil {
		return 0, errdefs.InvalidArgument(fmt.Errorf("unable to find group %s: %w", spec, gerr))
	}
	for _, g := range groups {
		if g.name == spec {
			return g.gid, nil
		}
	}
	return 0, errdefs.InvalidArgument(fmt.Errorf("unable to find group %s: no matching entries in group file", spec))
}

func readPasswd(path string) ([]passwdEntry, error) {
	var out []passwdEntry
	err := readColonFile(path, func(f []string) {
		if len(f) < 6 {
			return
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return
		}
		out = append(out, passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid), home: f[5]})
	})
	return out, err
}

func readGroup(path string) ([]groupEntry, error) {
	var out []groupEntry
	err := readColonFile(path, func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return
		}
		g := groupEntry{name: f[0], gid: uint32(gid)}
		if len(f) > 3 && f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		out = append(out, g)
	})
	return out, err
}

func readColonFile(path string, line func([]string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		line(strings.Split(t, ":"))
	}
	return sc.Err()
}
