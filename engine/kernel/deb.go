package kernel

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/berthvm/berth/engine/errdefs"
)

// Source is a kernel package to download: a Debian linux-image .deb and
// its SHA-256.
type Source struct {
	// URL of the .deb.
	URL string `json:"url"`
	// SHA256 of the .deb, hex.
	SHA256 string `json:"sha256"`
	// Version is the kernel release the package holds (informational).
	Version string `json:"version,omitempty"`
}

// ErrChecksum is the class of Fetch's error when the download does not
// match its SHA-256.
var ErrChecksum = errors.New("checksum mismatch")

// Progress receives download progress: bytes so far and the total (-1
// when the server did not say).
type Progress func(done, total int64)

// Fetch downloads src, verifies its SHA-256, and unpacks it into dest as
// a kernel tree (boot/ and lib/modules/VERSION/ with a modules.dep
// generated here, since the package ships none and macOS has no depmod).
// An existing tree at dest is kept. The download and the unpacking go to
// temporary names beside dest, so an interrupted fetch leaves nothing
// that looks complete.
func Fetch(ctx context.Context, src Source, dest string, progress Progress) (*Kernel, error) {
	return fetch(ctx, http.DefaultClient, src, dest, progress)
}

// fetch is Fetch over client.
func fetch(ctx context.Context, client *http.Client, src Source, dest string, progress Progress) (*Kernel, error) {
	if k, err := Open(dest); err == nil && k.ModulesDir != "" {
		return k, nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return nil, fmt.Errorf("fetch kernel %s: %w", src.URL, err)
	}
	deb, err := download(ctx, client, src, filepath.Dir(dest), progress)
	if err != nil {
		return nil, err
	}
	defer os.Remove(deb)
	tmp := dest + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("fetch kernel %s: %w", src.URL, err)
	}
	defer os.RemoveAll(tmp)
	if err := UnpackDeb(ctx, deb, tmp); err != nil {
		return nil, fmt.Errorf("fetch kernel %s: %w", src.URL, err)
	}
	mods, _ := filepath.Glob(filepath.Join(tmp, "lib", "modules", "*"))
	for _, m := range mods {
		if err := WriteModulesDep(m); err != nil {
			return nil, fmt.Errorf("fetch kernel %s: %w", src.URL, err)
		}
	}
	if err := os.RemoveAll(dest); err != nil {
		return nil, fmt.Errorf("fetch kernel %s: %w", src.URL, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return nil, fmt.Errorf("fetch kernel %s: %w", src.URL, err)
	}
	return Open(dest)
}

// download fetches src into a temporary file in dir and returns its path
// once the SHA-256 matched.
func download(ctx context.Context, client *http.Client, src Source, dir string, progress Progress) (string, error) {
	want, err := hex.DecodeString(src.SHA256)
	if err != nil || len(want) != sha256.Size {
		return "", errdefs.InvalidArgument(fmt.Errorf("download kernel %s: bad sha256 %q", src.URL, src.SHA256))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return "", errdefs.InvalidArgument(fmt.Errorf("download kernel %s: %w", src.URL, err))
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", errdefs.Unavailable(fmt.Errorf("download kernel %s: %w", src.URL, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", errdefs.Unavailable(fmt.Errorf("download kernel %s: %s", src.URL, resp.Status))
	}
	f, err := os.CreateTemp(dir, ".kernel-*.deb")
	if err != nil {
		return "", fmt.Errorf("download kernel %s: %w", src.URL, err)
	}
	ok := false
	defer func() {
		f.Close()
		if !ok {
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	pw := &progressWriter{total: resp.ContentLength, fn: progress}
	if _, err := io.Copy(io.MultiWriter(f, h, pw), resp.Body); err != nil {
		return "", errdefs.Unavailable(fmt.Errorf("download kernel %s: %w", src.URL, err))
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return "", fmt.Errorf("download kernel %s: %w: sha256 is %x, want %s", src.URL, ErrChecksum, got, src.SHA256)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("download kernel %s: %w", src.URL, err)
	}
	ok = true
	return f.Name(), nil
}

type progressWriter struct {
	done, total int64
	fn          Progress
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if p.fn != nil {
		p.fn(p.done, p.total)
	}
	return len(b), nil
}

// UnpackDeb extracts the kernel's files from a Debian package: the
// data.tar.{xz,zst,gz} member of the ar archive, limited to boot/ and
// (usr/)lib/modules/, written under dest as boot/ and lib/modules/.
// Entries that would leave dest, and anything but directories, regular
// files and links, are refused; links are skipped.
func UnpackDeb(ctx context.Context, debPath, dest string) error {
	f, err := os.Open(debPath)
	if err != nil {
		return fmt.Errorf("unpack %s: %w", debPath, err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic := make([]byte, 8)
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != "!<arch>\n" {
		return errdefs.InvalidArgument(fmt.Errorf("unpack %s: not an ar archive", debPath))
	}
	for {
		name, size, err := arNext(br)
		if err == io.EOF {
			return errdefs.InvalidArgument(fmt.Errorf("unpack %s: no data.tar member", debPath))
		}
		if err != nil {
			return fmt.Errorf("unpack %s: %w", debPath, err)
		}
		if !strings.HasPrefix(name, "data.tar") {
			if _, err := br.Discard(int(size + size%2)); err != nil {
				return fmt.Errorf("unpack %s: %w", debPath, err)
			}
			continue
		}
		r, err := decompressor(name, io.LimitReader(br, size))
		if err != nil {
			return fmt.Errorf("unpack %s: %w", debPath, err)
		}
		if err := untarKernel(ctx, r, dest); err != nil {
			return fmt.Errorf("unpack %s: %w", debPath, err)
		}
		return nil
	}
}

// arNext reads the next ar member header: name and size.
func arNext(r io.Reader) (string, int64, error) {
	var h [60]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = errors.New("truncated ar header")
		}
		return "", 0, err
	}
	if string(h[58:60]) != "`\n" {
		return "", 0, errors.New("bad ar member header")
	}
	size, err := strconv.ParseInt(strings.TrimSpace(string(h[48:58])), 10, 64)
	if err != nil || size < 0 {
		return "", 0, errors.New("bad ar member size")
	}
	return strings.TrimRight(strings.TrimSpace(string(h[0:16])), "/"), size, nil
}

func decompressor(name string, r io.Reader) (io.Reader, error) {
	switch path.Ext(name) {
	case ".xz":
		return xz.NewReader(r)
	case ".zst":
		d, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case ".gz":
		return gzip.NewReader(r)
	case ".tar":
		return r, nil
	}
	return nil, fmt.Errorf("%s: unsupported compression", name)
}

// untarKernel writes the boot/ and lib/modules/ entries of a package's
// data tarball under dest.
func untarKernel(ctx context.Context, r io.Reader, dest string) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read data tarball: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		name = strings.TrimPrefix(name, "usr/")
		if !strings.HasPrefix(name, "boot/") && !strings.HasPrefix(name, "lib/modules/") {
			continue
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("data tarball entry %q leaves the destination", h.Name)
		}
		target := filepath.Join(dest, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeEntry(target, tr, h.FileInfo().Mode().Perm()); err != nil {
				return err
			}
		case tar.TypeSymlink, tar.TypeLink:
			// Kernel packages link build/ and source/ to headers that are
			// not here. Links are skipped, so no later entry can be
			// written through one.
			continue
		default:
			return fmt.Errorf("data tarball entry %q has unsupported type %q", h.Name, h.Typeflag)
		}
	}
}

func writeEntry(target string, r io.Reader, perm os.FileMode) error {
	os.Remove(target)
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm|0o200)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
