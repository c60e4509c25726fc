package ext4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"
)

// want is what an entry of an image must be.
type want struct {
	typ      FileType
	mode     uint32
	uid, gid uint32
	size     int64
	content  []byte // regular files; nil: not compared
	target   string
	major    uint32
	minor    uint32
	links    int
	mtime    time.Time // zero: not compared
	xattrs   map[string][]byte
}

var (
	reType  = regexp.MustCompile(`Type: (.+?)\s+Mode:\s+(\d+)`)
	reOwner = regexp.MustCompile(`User:\s+(-?\d+)\s+Group:\s+(-?\d+)`)
	reSize  = regexp.MustCompile(`Size: (\d+)`)
	reLinks = regexp.MustCompile(`Links: (\d+)`)
	reMtime = regexp.MustCompile(`mtime: 0x([0-9a-f]+):([0-9a-f]+)`)
	reDev   = regexp.MustCompile(`Device major/minor number: (\d+):(\d+)`)
	reFast  = regexp.MustCompile(`Fast link dest: "(.*)"`)
)

var debugfsTypes = map[string]FileType{
	"regular": TypeRegular, "directory": TypeDir, "symlink": TypeSymlink,
	"character special": TypeCharDevice, "block special": TypeBlockDevice, "FIFO": TypeFIFO, "socket": TypeSocket,
}

// checkDebugfs reads every wanted entry back with debugfs (stat, rdump,
// ea_get) and compares.
func checkDebugfs(t *testing.T, img string, wants map[string]want) {
	t.Helper()
	// One debugfs run: a stat and, for files, a dump of every entry.
	dump := t.TempDir()
	var cmds, paths []string
	for p, w := range wants {
		paths = append(paths, p)
		cmds = append(cmds, "stat "+p)
		if w.typ == TypeRegular && w.content != nil {
			cmds = append(cmds, fmt.Sprintf("dump %s %s/%d", p, dump, len(paths)))
		}
	}
	stats := map[string]string{}
	for _, part := range strings.Split(testenv.Debugfs(t, img, cmds...), "debugfs: ")[1:] {
		cmd, rest, _ := strings.Cut(part, "\n")
		if p, ok := strings.CutPrefix(cmd, "stat "); ok {
			stats[p] = rest
		}
	}
	for i, p := range paths {
		w := wants[p]
		st := stats[p]
		m := reType.FindStringSubmatch(st)
		if m == nil {
			t.Errorf("%s: debugfs stat: no type in\n%s", p, st)
			continue
		}
		if debugfsTypes[m[1]] != w.typ {
			t.Errorf("%s: type %s, want %s", p, m[1], w.typ)
		}
		if mode, _ := strconv.ParseUint(m[2], 8, 32); uint32(mode) != w.mode {
			t.Errorf("%s: mode %o, want %o", p, mode, w.mode)
		}
		o := reOwner.FindStringSubmatch(st)
		if o == nil || parseID(o[1]) != w.uid || parseID(o[2]) != w.gid {
			t.Errorf("%s: owner %v, want %d:%d", p, o, w.uid, w.gid)
		}
		if s := reSize.FindStringSubmatch(st); w.typ != TypeDir && (s == nil || s[1] != fmt.Sprint(w.size)) {
			t.Errorf("%s: size %v, want %d", p, s, w.size)
		}
		if w.links != 0 {
			if l := reLinks.FindStringSubmatch(st); l == nil || l[1] != fmt.Sprint(w.links) {
				t.Errorf("%s: links %v, want %d", p, l, w.links)
			}
		}
		if !w.mtime.IsZero() {
			mt := reMtime.FindStringSubmatch(st)
			if mt == nil {
				t.Errorf("%s: no mtime in stat", p)
			} else {
				lo, _ := strconv.ParseUint(mt[1], 16, 32)
				ex, _ := strconv.ParseUint(mt[2], 16, 32)
				got := time.Unix(int64(int32(lo))+int64(ex&3)<<32, int64(ex>>2))
				if !got.Equal(w.mtime) {
					t.Errorf("%s: mtime %v, want %v", p, got, w.mtime)
				}
			}
		}
		switch w.typ {
		case TypeCharDevice, TypeBlockDevice:
			d := reDev.FindStringSubmatch(st)
			if d == nil || parseID(d[1]) != w.major || parseID(d[2]) != w.minor {
				t.Errorf("%s: device %v, want %d:%d", p, d, w.major, w.minor)
			}
		case TypeSymlink:
			got := ""
			if f := reFast.FindStringSubmatch(st); f != nil {
				got = f[1]
			} else {
				got = string(debugfsCat(t, img, p))
			}
			if got != w.target {
				t.Errorf("%s: target %q, want %q", p, got, w.target)
			}
		case TypeRegular:
			if w.content != nil {
				b, err := os.ReadFile(filepath.Join(dump, fmt.Sprint(i+1)))
				if err != nil {
					t.Errorf("%s: rdump: %v", p, err)
				} else if !bytes.Equal(b, w.content) {
					t.Errorf("%s: content sha256 %x, want %x", p, sha256.Sum256(b), sha256.Sum256(w.content))
				}
			}
		}
		for name, v := range w.xattrs {
			f := filepath.Join(t.TempDir(), "x")
			testenv.Debugfs(t, img, fmt.Sprintf("ea_get -f %s %s %s", f, p, name))
			b, err := os.ReadFile(f)
			if err != nil || !bytes.Equal(b, v) {
				t.Errorf("%s: xattr %s = %q (%v), want %q", p, name, b, err, v)
			}
		}
	}
}

func debugfsCat(t *testing.T, img, p string) []byte {
	f := filepath.Join(t.TempDir(), "cat")
	testenv.Debugfs(t, img, fmt.Sprintf("dump %s %s", p, f))
	b, _ := os.ReadFile(f)
	return b
}

// zeroReader yields n zero bytes quickly.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	k := int(min(int64(len(p)), z.n))
	clear(p[:k])
	z.n -= int64(k)
	return k, nil
}

func mustDo(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var bg = context.Background()

// parseID parses a decimal number debugfs printed, possibly as a negative
// 32-bit value.
func parseID(s string) uint32 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return uint32(n)
}
