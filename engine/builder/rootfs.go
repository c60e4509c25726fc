// Package builder runs the image builder (issue 26, docs/build.md): a
// Berth micro-VM running BuildKit's buildkitd with runc. WriteRootfs and
// WriteCacheDisk write its two disks with Berth's ext4 writer; Manager
// starts the VM on the first connection to the host's BuildKit socket,
// forwards connections to buildkitd through the agent, and stops the VM
// when it has been idle.
package builder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/ext4"
)

// Programs are the builder guest's executables, each a static linux
// binary for the guest's arch (make builder-bins puts them in
// builder/bin/ARCH), installed in /usr/bin.
var Programs = []string{"buildkitd", "buildctl", "runc"}

// DefaultCABundle is where Debian's ca-certificates keeps the PEM bundle
// of the host's trusted roots.
const DefaultCABundle = "/etc/ssl/certs/ca-certificates.crt"

// RootfsSpec says what goes into the builder's root filesystem.
type RootfsSpec struct {
	// BinDir holds the Programs.
	BinDir string
	// CABundle is a PEM file of the CA roots buildkitd trusts when it
	// pulls from registries; DefaultCABundle when empty.
	CABundle string
	// HTTPRegistries are registries (host:port) buildkitd reaches over
	// plain HTTP: the registry of Berth's images on the builder
	// network's gateway.
	HTTPRegistries []string
}

// buildkitdConfig is /etc/buildkit/buildkitd.toml: the OCI worker (runc)
// only, its state on the cache disk that is mounted at /var/lib/buildkit.
const buildkitdConfig = `root = "/var/lib/buildkit"

[worker.oci]
  enabled = true
  binary = "/usr/bin/runc"
  snapshotter = "overlayfs"

[worker.containerd]
  enabled = false
`

// buildkitdTOML is buildkitdConfig with a registry section for each of
// spec.HTTPRegistries.
func buildkitdTOML(spec RootfsSpec) string {
	var b strings.Builder
	b.WriteString(buildkitdConfig)
	for _, r := range spec.HTTPRegistries {
		fmt.Fprintf(&b, "\n[registry.%q]\n  http = true\n  insecure = true\n", r)
	}
	return b.String()
}

// WriteRootfs writes the builder's root filesystem as an ext4 image at
// path, with Berth's own ext4 writer: the Programs, /etc files, the CA
// roots and the empty directories guestinit and buildkitd mount or write
// into. A program missing from spec.BinDir is an error that says to run
// make builder-bins.
func WriteRootfs(ctx context.Context, path string, spec RootfsSpec) (err error) {
	ca := spec.CABundle
	if ca == "" {
		ca = DefaultCABundle
	}
	w, err := ext4.Create(path, ext4.WithMinFree(16<<20))
	if err != nil {
		return fmt.Errorf("write builder rootfs: %w", err)
	}
	defer func() {
		if err != nil {
			w.Abort()
			os.Remove(path)
		}
	}()
	dir := ext4.Metadata{Mode: 0o755}
	for _, d := range []string{"/bin", "/dev", "/etc", "/etc/buildkit", "/etc/ssl", "/etc/ssl/certs",
		"/proc", "/root", "/run", "/sys", "/usr", "/usr/bin", "/var", "/var/lib", "/var/lib/buildkit"} {
		if err := w.Mkdir(ctx, d, dir); err != nil {
			return fmt.Errorf("write builder rootfs %s: %w", path, err)
		}
	}
	for _, d := range []string{"/tmp", "/var/tmp"} {
		if err := w.Mkdir(ctx, d, ext4.Metadata{Mode: 0o1777}); err != nil {
			return fmt.Errorf("write builder rootfs %s: %w", path, err)
		}
	}
	for _, p := range Programs {
		if err := copyFile(ctx, w, filepath.Join(spec.BinDir, p), "/usr/bin/"+p, 0o755); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return errdefs.NotFound(fmt.Errorf("write builder rootfs %s: %s is missing from %s; build it with make builder-bins: %w", path, p, spec.BinDir, err))
			}
			return fmt.Errorf("write builder rootfs %s: %w", path, err)
		}
	}
	if err := copyFile(ctx, w, ca, "/etc/ssl/certs/ca-certificates.crt", 0o644); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errdefs.NotFound(fmt.Errorf("write builder rootfs %s: no CA roots at %s (Debian: apt-get install ca-certificates): %w", path, ca, err))
		}
		return fmt.Errorf("write builder rootfs %s: %w", path, err)
	}
	files := map[string]string{
		"/etc/passwd":                  "root:x:0:0:root:/root:/bin/sh\n",
		"/etc/group":                   "root:x:0:\n",
		"/etc/hosts":                   "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"/etc/nsswitch.conf":           "hosts: files dns\n",
		"/etc/buildkit/buildkitd.toml": buildkitdTOML(spec),
	}
	for p, c := range files {
		if err := w.WriteFile(ctx, p, ext4.Metadata{Mode: 0o644}, strings.NewReader(c), int64(len(c))); err != nil {
			return fmt.Errorf("write builder rootfs %s: %w", path, err)
		}
	}
	if err := w.Close(ctx); err != nil {
		return fmt.Errorf("write builder rootfs %s: %w", path, err)
	}
	return nil
}

// copyFile writes the host file src into the image at dst with mode.
func copyFile(ctx context.Context, w *ext4.Writer, src, dst string, mode uint32) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", src, err)
	}
	if !st.Mode().IsRegular() {
		return errdefs.InvalidArgument(fmt.Errorf("%s is not a regular file", src))
	}
	if err := w.WriteFile(ctx, dst, ext4.Metadata{Mode: mode}, f, st.Size()); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

// WriteCacheDisk writes the builder's cache disk at path: an empty,
// sparse ext4 of size bytes (Berth's ext4 writer, so a Mac, which has no
// mkfs.ext4, makes it too), with an inode for every 32 KiB (BuildKit's
// snapshots are many small files). The guest mounts it at
// /var/lib/buildkit.
func WriteCacheDisk(ctx context.Context, path string, size int64) error {
	w, err := ext4.Create(path, ext4.WithSize(size), ext4.WithMinFreeInodes(uint32(min(size/(32<<10), 1<<24))))
	if err != nil {
		return fmt.Errorf("write builder cache disk: %w", err)
	}
	if err := w.Close(ctx); err != nil {
		os.Remove(path)
		return fmt.Errorf("write builder cache disk %s: %w", path, err)
	}
	return nil
}

// BinDirEnv names the environment variable that points at the directory
// holding the builder's Programs (overriding the search next to the
// berth executable).
const BinDirEnv = "BERTH_BUILDER_BIN"

// FindBinDir returns the directory with the Programs for arch:
// $BERTH_BUILDER_BIN, else builder-linux-ARCH next to the running
// executable or in the app bundle's Resources.
func FindBinDir(arch string) (string, error) {
	if d := os.Getenv(BinDirEnv); d != "" {
		return d, nil
	}
	var tried []string
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		name := "builder-linux-" + arch
		for _, d := range []string{filepath.Join(dir, name), filepath.Join(dir, "..", "Resources", name)} {
			if _, err := os.Stat(filepath.Join(d, Programs[0])); err == nil {
				return d, nil
			}
			tried = append(tried, d)
		}
	}
	return "", errdefs.Unavailable(fmt.Errorf("no image builder programs for linux/%s: looked at $%s and %s; build them with `make builder-bins` and set $%s to builder/bin/%s",
		arch, BinDirEnv, strings.Join(tried, ", "), BinDirEnv, arch))
}
