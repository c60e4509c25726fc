package engine_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine"
	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/internal/testenv"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// shareRig is one running busybox container with a host folder bound at
// create time (-v, QEMU virtio-9p) at /v, another shared at run time
// (berth share add) at /r, on one of the VM's spare virtio-serial ports,
// and a third shared at run time at /y while the other spare ports serve
// fillers, so over the agent transport (yamux on virtio-serial).
type shareRig struct {
	eng      *engine.Engine
	id       string
	bindDir  string
	shareDir string
	yamuxDir string
}

func startShareRig(tb testing.TB, img v1.Image) *shareRig {
	tb.Helper()
	reg := testenv.StartRegistry(tb)
	ref := reg.Push(tb, "bench/busybox", "share", img)
	dir, err := os.MkdirTemp("", "bs")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	r := &shareRig{bindDir: filepath.Join(dir, "bind"), shareDir: filepath.Join(dir, "share"), yamuxDir: filepath.Join(dir, "yamux")}
	for _, d := range []string{r.bindDir, r.shareDir, r.yamuxDir} {
		if err := os.Mkdir(d, 0o777); err != nil {
			tb.Fatal(err)
		}
	}
	r.eng, _ = startBenchEngine(tb, dir, ref)
	ctx := context.Background()
	cm := r.eng.Containers()
	c, err := cm.Create(ctx, container.CreateRequest{
		Config:     &mobycontainer.Config{Image: ref, Cmd: []string{"sleep", "100000"}},
		HostConfig: &mobycontainer.HostConfig{Binds: []string{r.bindDir + ":/v"}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	r.id = c.ID()
	tb.Cleanup(func() { cm.Remove(context.Background(), r.id, true) })
	if err := cm.Start(ctx, r.id); err != nil {
		tb.Fatal(err)
	}
	if _, err := cm.AddShare(ctx, r.id, container.RunShare{Source: r.shareDir, Target: "/r"}); err != nil {
		tb.Fatal(err)
	}
	// Fillers keep the other spare ports busy, so the next share goes
	// over the agent transport.
	for i := range container.RunSharePorts - 1 {
		fill := filepath.Join(dir, "fill"+strconv.Itoa(i))
		if err := os.Mkdir(fill, 0o777); err != nil {
			tb.Fatal(err)
		}
		if _, err := cm.AddShare(ctx, r.id, container.RunShare{Source: fill, Target: "/fill" + strconv.Itoa(i)}); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := cm.AddShare(ctx, r.id, container.RunShare{Source: r.yamuxDir, Target: "/y"}); err != nil {
		tb.Fatal(err)
	}
	mounts := r.sh(tb, "cat /proc/mounts")
	if !strings.Contains(mounts, "\nport0 /r 9p ") || !regexp.MustCompile(`\nrun[0-9]+ /y 9p `).MatchString(mounts) {
		tb.Fatalf("want /r on spare port 0 and /y over an agent port; the guest's mounts:\n%s", mounts)
	}
	return r
}

// sh runs script with sh -c in the container and returns its stdout; a
// non-zero exit fails tb with the script's stderr.
func (r *shareRig) sh(tb testing.TB, script string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cm := r.eng.Containers()
	id, err := cm.CreateExec(ctx, r.id, container.ExecConfig{Cmd: []string{"sh", "-c", script}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		tb.Fatal(err)
	}
	var out, errb bytes.Buffer
	code, err := cm.StartExec(ctx, id, agent.Stdio{Stdout: &out, Stderr: &errb})
	if err != nil || code != 0 {
		tb.Fatalf("exec %q: exit %d, %v: %s", script, code, err, errb.String())
	}
	return out.String()
}

// sharePlace is where a share benchmark runs: in the guest on one of the
// rig's shares, or on the host in the folder itself (guest == "").
type sharePlace struct {
	name, guest, host string
}

// run runs script (a template with %[1]s for the folder) where p says
// and returns its stdout and how long it took.
func (p sharePlace) run(tb testing.TB, r *shareRig, script string) (string, time.Duration) {
	tb.Helper()
	t0 := time.Now()
	if p.guest != "" {
		out := r.sh(tb, fmt.Sprintf(script, p.guest))
		return out, time.Since(t0)
	}
	cmd := exec.Command("sh", "-c", fmt.Sprintf(script, p.host))
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("host %q: %v: %s", script, err, errb.String())
	}
	return string(out), time.Since(t0)
}

// gitLayer is an image layer with the host's git (Debian's package, as
// installed on the machine running the benchmark) and the shared
// libraries it links, found with ldd, so that the guest can run git
// status. It skips when the host has no git.
func gitLayer(tb testing.TB) v1.Layer {
	tb.Helper()
	testenv.RequireTool(tb, "/usr/bin/git", "git")
	gitPath, err := exec.LookPath("/usr/bin/git")
	if err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command("ldd", gitPath).Output()
	if err != nil {
		tb.Fatalf("ldd %s: %v", gitPath, err)
	}
	files := []string{gitPath}
	for _, l := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		name := strings.TrimPrefix(f, "/")
		for d := filepath.Dir(name); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(b))}); err != nil {
			tb.Fatal(err)
		}
		tw.Write(b)
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	// Directories first: an OCI layer names each parent before its files.
	var dbuf bytes.Buffer
	dw := tar.NewWriter(&dbuf)
	ds := slices.Sorted(maps.Keys(dirs))
	for _, d := range ds {
		if err := dw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}); err != nil {
			tb.Fatal(err)
		}
	}
	dw.Flush()
	data := append(dbuf.Bytes(), buf.Bytes()...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// makeTree writes n small files into dir, 100 to a folder.
func makeTree(tb testing.TB, dir string, n int) {
	tb.Helper()
	for i := 0; i < n; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("d%03d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				tb.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%d.txt", i)), []byte(fmt.Sprintf("file %d\n", i)), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkShares compares a run-time share on a spare port and one over
// the agent transport (berth share add: 9P), a create-time bind (-v:
// QEMU's virtio-9p) and the host folder itself, with one VM for all of
// it: 1 GiB sequential write (dd, fsync at the end) and read, 500 small
// files created and read back (the loop TestRunTimeShares ran before it
// moved into the folder: kept, so that the numbers stay comparable),
// find + stat over 10,000 files,
// and git status in a 5,000-file checkout. Each metric is the median of
// b.N runs; guest times include the exec's own ~0.1–0.2 s.
func BenchmarkShares(b *testing.B) {
	img, err := mutate.AppendLayers(testenv.BusyboxImage(b, nil), gitLayer(b))
	if err != nil {
		b.Fatal(err)
	}
	r := startShareRig(b, img)
	hostDir := filepath.Join(filepath.Dir(r.shareDir), "host")
	if err := os.Mkdir(hostDir, 0o777); err != nil {
		b.Fatal(err)
	}
	// -short: a quick check of the benchmark itself, not numbers to quote.
	seqMiB, treeFiles, repoFiles := 1024, 10000, 5000
	if testing.Short() {
		seqMiB, treeFiles, repoFiles = 16, 300, 200
	}
	places := []sharePlace{{"run-time", "/r", r.shareDir}, {"run-time-yamux", "/y", r.yamuxDir}, {"bind", "/v", r.bindDir}, {"host", "", hostDir}}
	for _, p := range places {
		makeTree(b, filepath.Join(p.host, "tree"), treeFiles)
		repo := filepath.Join(p.host, "repo")
		makeTree(b, repo, repoFiles)
		git := exec.Command("sh", "-c", "git init -q && git add -A && git -c user.name=b -c user.email=b@b commit -qm init")
		git.Dir = repo
		if out, err := git.CombinedOutput(); err != nil {
			b.Fatalf("make the checkout: %v: %s", err, out)
		}
	}
	bench := func(name string, p sharePlace, script string, check func(string) bool, report func(*testing.B, time.Duration)) {
		b.Run(name+"/"+p.name, func(b *testing.B) {
			var ds []time.Duration
			for i := 0; i < b.N; i++ {
				out, d := p.run(b, r, script)
				if !check(out) {
					b.Fatalf("%s on %s: unexpected output %q", name, p.name, out)
				}
				ds = append(ds, d)
			}
			report(b, median(ds))
			b.ReportMetric(0, "ns/op")
		})
	}
	mbps := func(b *testing.B, d time.Duration) { b.ReportMetric(float64(seqMiB<<20)/1e6/d.Seconds(), "MB/s") }
	secs := func(b *testing.B, d time.Duration) { b.ReportMetric(d.Seconds(), "s") }
	anyOut := func(string) bool { return true }
	for _, p := range places {
		bench("write-1GiB", p, "dd if=/dev/zero of=%[1]s/seq bs=1M count="+strconv.Itoa(seqMiB)+" conv=fsync 2>/dev/null", anyOut, mbps)
		bench("read-1GiB", p, "dd if=%[1]s/seq of=/dev/null bs=1M 2>/dev/null", anyOut, mbps)
		p.run(b, r, "rm -f %[1]s/seq")
		bench("small-files-500", p, "rm -rf %[1]s/m && mkdir %[1]s/m && i=0 && while [ $i -lt 500 ]; do echo $i > %[1]s/m/f$i; i=$((i+1)); done && cat %[1]s/m/* | wc -l",
			func(s string) bool { return strings.TrimSpace(s) == "500" }, secs)
		bench("find-stat-10k", p, "find %[1]s/tree -type f | xargs stat -c %%s | wc -l",
			func(s string) bool { return strings.TrimSpace(s) == strconv.Itoa(treeFiles) }, secs)
		p.run(b, r, "git -c safe.directory='*' -C %[1]s/repo status --porcelain") // refreshes the index once
		bench("git-status-5k", p, "git -c safe.directory='*' -C %[1]s/repo status --porcelain | wc -l",
			func(s string) bool { return strings.TrimSpace(s) == "0" }, secs)
	}
}
