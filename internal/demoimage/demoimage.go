// Package demoimage builds small container images on the machine itself,
// with no network: `make run` imports one as the demo image, and the
// tests push them to a real registry.
package demoimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Busybox builds a linux/arch image whose one layer holds the static
// busybox binary at busybox (Debian's busybox-static) as /bin/busybox with
// applet links (sh, ls, ps, cat, ...), /etc/passwd and /etc/group (root,
// nobody, berth:1000), and whose config runs sh. extra files (path →
// content) are added to the layer.
func Busybox(busybox, arch string, extra map[string]string) (v1.Image, error) {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("busybox image: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Unix(1700000000, 0)
	var werr error
	add := func(h *tar.Header, body []byte) {
		h.ModTime = now
		h.Size = int64(len(body))
		if werr == nil {
			werr = tw.WriteHeader(h)
		}
		if werr == nil {
			_, werr = tw.Write(body)
		}
	}
	for _, d := range []string{"bin/", "etc/", "tmp/", "root/", "proc/", "sys/", "dev/", "run/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		add(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755}, bb)
	for _, a := range []string{"sh", "ls", "cat", "echo", "ps", "sleep", "id", "env", "pwd", "stty", "true", "false", "hostname", "mount", "uname", "wc", "head", "tail", "kill", "touch", "rm", "mkdir", "grep", "sed", "seq", "top", "printf", "test", "vi", "less", "df", "free", "ip", "ping", "wget", "date", "dd", "find", "tr", "cut", "sort", "uniq", "xargs", "tee", "du", "chmod", "chown", "cp", "mv", "ln", "clear", "reset", "whoami"} {
		add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644}, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nberth:x:1000:1000:berth:/tmp:/bin/sh\n"))
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/group", Mode: 0o644}, []byte("root:x:0:\nnogroup:x:65534:\nberth:x:1000:\n"))
	for p, c := range extra {
		add(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o644}, []byte(c))
	}
	if werr == nil {
		werr = tw.Close()
	}
	if werr != nil {
		return nil, fmt.Errorf("busybox image: %w", werr)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: now}
	cf.Config.Cmd = []string{"sh"}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Labels = map[string]string{"dev.berthvm.test": "busybox"}
	return mutate.ConfigFile(img, cf)
}
