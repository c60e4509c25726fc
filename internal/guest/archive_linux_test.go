package guest

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
)

func TestArchive(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	os.MkdirAll(filepath.Join(e.rootfs, "data", "sub"), 0o755)
	os.WriteFile(filepath.Join(e.rootfs, "data", "sub", "f"), []byte("in the guest"), 0o640)
	os.Symlink("/data/sub", filepath.Join(e.rootfs, "link"))
	os.Symlink("loop", filepath.Join(e.rootfs, "loop"))
	// A place beside the rootfs that a hostile archive must not reach.
	outside := t.TempDir()

	t.Run("stat", func(t *testing.T) {
		st, err := e.client.StatPath(ctx, "/link")
		if err != nil {
			t.Fatal(err)
		}
		if st.Name != "link" || fs.FileMode(st.Mode)&fs.ModeSymlink == 0 || st.LinkTarget != "/data/sub" {
			t.Fatalf("stat /link = %+v; want a symlink named link to /data/sub", st)
		}
		if _, err := e.client.StatPath(ctx, "/nope"); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("stat /nope: %v; want not found", err)
		}
	})

	t.Run("read", func(t *testing.T) {
		var buf bytes.Buffer
		var got *agentpb.PathStat
		// "/link/" follows the symlink; entries are named after it.
		err := e.client.ReadArchive(ctx, "/link/", func(st *agentpb.PathStat) (io.Writer, error) { got = st; return &buf, nil })
		if err != nil {
			t.Fatal(err)
		}
		if !fs.FileMode(got.Mode).IsDir() {
			t.Fatalf("stat = %+v; want the directory", got)
		}
		tr := tar.NewReader(&buf)
		var names []string
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, h.Name)
			if h.Name == "link/f" {
				b, _ := io.ReadAll(tr)
				if string(b) != "in the guest" {
					t.Fatalf("link/f = %q", b)
				}
			}
		}
		if len(names) != 2 || names[0] != "link/" || names[1] != "link/f" {
			t.Fatalf("entries %q; want [link/ link/f]", names)
		}
	})

	tarOf := func(hdrs ...*tar.Header) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range hdrs {
			tw.WriteHeader(h)
			if h.Size > 0 {
				tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
			}
		}
		tw.Close()
		return buf.Bytes()
	}

	t.Run("write", func(t *testing.T) {
		body := tarOf(&tar.Header{Name: "new/", Typeflag: tar.TypeDir, Mode: 0o755},
			&tar.Header{Name: "new/file", Typeflag: tar.TypeReg, Mode: 0o600, Size: 3, Uid: 1000})
		// Through the symlink /link: into /data/sub.
		if err := e.client.WriteArchive(ctx, "/link", bytes.NewReader(body), agent.ArchiveOptions{}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(e.rootfs, "data", "sub", "new", "file"))
		if err != nil || fi.Size() != 3 {
			t.Fatalf("/data/sub/new/file: %v, %v", fi, err)
		}
		if err := e.client.WriteArchive(ctx, "/data/sub/f", bytes.NewReader(body), agent.ArchiveOptions{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("extract into a file: %v; want invalid argument", err)
		}
		if err := e.client.WriteArchive(ctx, "/loop", bytes.NewReader(body), agent.ArchiveOptions{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("extract into a symlink loop: %v; want invalid argument", err)
		}
		if _, err := os.Stat(filepath.Join(e.rootfs, "new")); err == nil {
			t.Fatal("extracted into the root through a symlink loop")
		}
		if err := e.client.WriteArchive(ctx, "/missing", bytes.NewReader(body), agent.ArchiveOptions{}); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("extract into a missing directory: %v; want not found", err)
		}
	})

	t.Run("hostile", func(t *testing.T) {
		rel, _ := filepath.Rel(filepath.Join(e.rootfs, "tmp"), outside)
		for name, body := range map[string][]byte{
			"dotdot":   tarOf(&tar.Header{Name: rel + "/escaped", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}),
			"absolute": tarOf(&tar.Header{Name: outside + "/escaped", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}),
			"symlink": tarOf(&tar.Header{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: outside},
				&tar.Header{Name: "esc/escaped", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}),
			"hardlink": tarOf(&tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../" + rel + "/x"}),
		} {
			err := e.client.WriteArchive(ctx, "/tmp", bytes.NewReader(body), agent.ArchiveOptions{})
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%s: %v; want the archive refused", name, err)
			}
			if des, _ := os.ReadDir(outside); len(des) != 0 {
				t.Fatalf("%s: written outside the container: %v", name, des)
			}
		}
		// The agent still serves after the refusals.
		if _, err := e.client.StatPath(ctx, "/tmp"); err != nil {
			t.Fatal(err)
		}
	})
}
