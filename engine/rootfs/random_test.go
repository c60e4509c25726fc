package rootfs

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"

	"github.com/berthvm/berth/engine/ext4"
)

// TestRandomTrees runs random sequences of writer operations (create,
// replace, remove, hard link, every entry type, sparse and multi-extent
// files) and then reads every entry of the image back through Reader
// (go-ext4) and compares it with the writer's own tree; e2fsck must pass.
func TestRandomTrees(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { randomTree(t, seed) })
	}
}

func randomTree(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 42))
	img := filepath.Join(t.TempDir(), "random.ext4")
	w, err := ext4.Create(img, ext4.WithMinFree(16<<20))
	mustDo(t, err)
	dirs := []string{"/"}
	var files []string
	content := map[string][]byte{}
	name := func() string { return fmt.Sprintf("n%d", r.IntN(100)) }
	md := func() ext4.Metadata {
		return ext4.Metadata{
			Mode: uint32(r.IntN(0o7777 + 1)), UID: r.Uint32(), GID: r.Uint32(),
			Mtime: time.Unix(r.Int64N(1<<33)-1<<31, r.Int64N(1e9)),
		}
	}
	body := func() []byte {
		switch r.IntN(6) {
		case 0:
			return nil
		case 1: // sparse, several extents
			b := make([]byte, 4096*(1+r.IntN(64)))
			for i := 0; i < len(b); i += 4096 * (1 + r.IntN(3)) {
				b[i+r.IntN(4096)] = byte(1 + r.IntN(255))
			}
			return b
		default:
			b := make([]byte, r.IntN(20000))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return b
		}
	}
	for range 1500 {
		parent := dirs[r.IntN(len(dirs))]
		p := path.Join(parent, name())
		var err error
		switch op := r.IntN(20); op {
		case 0, 1, 2, 3, 4:
			err = w.Mkdir(bg, p, md())
			if err == nil {
				dirs = append(dirs, p)
			}
		case 5, 6, 7, 8, 9, 10, 11:
			b := body()
			if err = w.WriteFile(bg, p, md(), bytes.NewReader(b), int64(len(b))); err == nil {
				content[p] = b
				files = append(files, p)
			}
		case 12, 13:
			target := strings.Repeat("t", 1+r.IntN(120))
			err = w.Symlink(bg, p, target, md())
		case 14, 15:
			if len(files) > 0 {
				target := files[r.IntN(len(files))]
				if err = w.Link(bg, p, target); err == nil {
					content[p] = content[target]
					files = append(files, p)
				}
			}
		case 16, 17:
			types := []ext4.FileType{ext4.TypeCharDevice, ext4.TypeBlockDevice, ext4.TypeFIFO, ext4.TypeSocket}
			err = w.Mknod(bg, p, types[r.IntN(4)], uint32(r.IntN(4096)), uint32(r.IntN(1<<20)), md())
		case 18: // remove a file (or what replaced it)
			if len(files) > 0 {
				err = w.Remove(bg, files[r.IntN(len(files))])
			}
		case 19: // remove a directory tree, rarely
			if len(dirs) > 1 && r.IntN(4) == 0 {
				err = w.Remove(bg, dirs[1+r.IntN(len(dirs)-1)])
			}
		}
		_ = err // parents vanish and links fail on purpose; errors are fine
	}

	// What the writer holds.
	type want struct {
		info ext4.Info
		body []byte
	}
	wants := map[string]want{}
	var walk func(dir string)
	walk = func(dir string) {
		names, err := w.ReadDir(dir)
		mustDo(t, err)
		for _, n := range names {
			p := path.Join(dir, n)
			info, err := w.Lookup(p)
			mustDo(t, err)
			wants[p] = want{info: info, body: content[p]}
			if info.Type == ext4.TypeDir {
				walk(p)
			}
		}
	}
	walk("/")
	mustDo(t, w.Close(bg))
	testenv.Fsck(t, img)

	im, err := OpenReader(img)
	mustDo(t, err)
	defer im.Close()
	seen := 0
	var walkImage func(dir string)
	walkImage = func(dir string) {
		names, err := im.ReadDir(dir)
		mustDo(t, err)
		for _, n := range names {
			p := path.Join(dir, n)
			seen++
			wt, ok := wants[p]
			if !ok {
				t.Errorf("%s: in the image, not in the writer's tree", p)
				continue
			}
			fi, err := im.Lstat(p)
			mustDo(t, err)
			wi := wt.info
			typeBits := map[ext4.FileType]uint32{ext4.TypeRegular: 0o100000, ext4.TypeDir: 0o040000, ext4.TypeSymlink: 0o120000,
				ext4.TypeCharDevice: 0o020000, ext4.TypeBlockDevice: 0o060000, ext4.TypeFIFO: 0o010000, ext4.TypeSocket: 0o140000}
			if fi.Mode != typeBits[wi.Type]|wi.Mode || fi.UID != wi.UID || fi.GID != wi.GID || !fi.Mtime.Equal(wi.Mtime) {
				t.Errorf("%s: mode %o uid %d gid %d mtime %v; want %o %d %d %v", p, fi.Mode, fi.UID, fi.GID, fi.Mtime,
					typeBits[wi.Type]|wi.Mode, wi.UID, wi.GID, wi.Mtime)
			}
			switch wi.Type {
			case ext4.TypeRegular:
				b, err := im.ReadFile(p, 1<<30)
				if err != nil || !bytes.Equal(b, wt.body) || fi.Links != wi.Links {
					t.Errorf("%s: content %d bytes (%v), want %d; links %d, want %d", p, len(b), err, len(wt.body), fi.Links, wi.Links)
				}
			case ext4.TypeSymlink:
				if fi.Target != wi.Target {
					t.Errorf("%s: target %q, want %q", p, fi.Target, wi.Target)
				}
			case ext4.TypeCharDevice, ext4.TypeBlockDevice:
				if fi.Major != wi.Major || fi.Minor != wi.Minor {
					t.Errorf("%s: device %d:%d, want %d:%d", p, fi.Major, fi.Minor, wi.Major, wi.Minor)
				}
			case ext4.TypeDir:
				walkImage(p)
			}
		}
	}
	walkImage("/")
	if seen != len(wants) {
		t.Errorf("image has %d entries, the writer %d", seen, len(wants))
	}
	t.Logf("%d entries compared", seen)
	if seen < 50 {
		t.Errorf("only %d entries survived: the test exercises too little", seen)
	}
}
