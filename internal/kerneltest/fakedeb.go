package kerneltest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
)

// FakeDeb builds a FAKE Debian kernel package: an ar archive whose
// data.tar.gz holds boot/vmlinuz-VERSION (an arm64 Image header, or for
// amd64 a bzImage one, followed by incompressible filler to size bytes, so a download of it takes many
// writes) and an empty lib/modules/VERSION. It is no kernel and boots
// nothing; it has the shape kernel.Fetch unpacks and kernel.Open
// recognises, for tests of the download that cannot fetch the real one.
func FakeDeb(t testing.TB, arch, version string, size int) []byte {
	t.Helper()
	img := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	clear(img[:0x240])
	switch arch {
	case "arm64":
		binary.LittleEndian.PutUint32(img[0x38:], 0x644d5241) // "ARM\x64"
	case "amd64":
		copy(img[0x202:], "HdrS")
	default:
		t.Fatalf("FakeDeb: no fake kernel image for %s", arch)
	}
	var data bytes.Buffer
	zw := gzip.NewWriter(&data)
	tw := tar.NewWriter(zw)
	for _, d := range []string{"./boot/", "./lib/", "./lib/modules/", "./lib/modules/" + version + "/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "./boot/vmlinuz-" + version, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(img))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(img); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	var deb bytes.Buffer
	deb.WriteString("!<arch>\n")
	member := func(name string, body []byte) {
		fmt.Fprintf(&deb, "%-16s%-12s%-6s%-6s%-8s%-10s`\n", name, "0", "0", "0", "100644", strconv.Itoa(len(body)))
		deb.Write(body)
		if len(body)%2 == 1 {
			deb.WriteByte('\n')
		}
	}
	member("debian-binary", []byte("2.0\n"))
	member("data.tar.gz", data.Bytes())
	return deb.Bytes()
}

// DebServer is a FAKE package mirror on loopback: it serves Body at
// /fake.deb with its length, and counts requests. Built with hold, it
// sends the first half and then waits until Release is called (or the
// client goes away), so a test can look at a download mid-way.
type DebServer struct {
	*httptest.Server
	Body     []byte
	requests atomic.Int32
	release  chan struct{}
}

// NewDebServer starts a DebServer for body, closed when the test ends.
func NewDebServer(t testing.TB, body []byte, hold bool) *DebServer {
	s := &DebServer{Body: body, release: make(chan struct{})}
	if !hold {
		close(s.release)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if r.URL.Path != "/fake.deb" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(s.Body)))
		half := len(s.Body) / 2
		w.Write(s.Body[:half])
		w.(http.Flusher).Flush()
		select {
		case <-s.release:
		case <-r.Context().Done():
			return
		}
		w.Write(s.Body[half:])
	}))
	t.Cleanup(s.Close)
	return s
}

// URL is the package's URL.
func (s *DebServer) URL() string { return s.Server.URL + "/fake.deb" }

// Release lets held downloads finish.
func (s *DebServer) Release() { close(s.release) }

// Requests is how many requests the server has had.
func (s *DebServer) Requests() int { return int(s.requests.Load()) }
