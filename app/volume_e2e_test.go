package main

import (
	"encoding/json"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthvm/berth/internal/testenv"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TestBindsAndVolumes boots two real VMs and shares folders with them:
//   - berth run -v HOST:/data (read-write): a host file is seen in the
//     guest, before and after the start, and a file the guest writes
//     lands on the host owned by the user who runs Berth;
//   - --mount type=bind,...,readonly: readable, writes refused in the
//     guest; a symlink in a share that points out of it leads nowhere on
//     the host;
//   - a named volume (-v NAME:/path, created on first use) written by the
//     first container is read by the second (the real docker CLI's
//     docker run -d -v), and the first sees the second's writes while
//     both run;
//   - an image's VOLUME path becomes an anonymous volume that starts with
//     the image's files there (copy-up); -v NAME:/path:nocopy stays empty;
//   - docker inspect shows Mounts and HostConfig.Binds as Docker does;
//   - rm of a volume in use is refused with Docker's text (berth and
//     docker), docker volume ls and berth volume ls agree, the volume
//     outlives its containers and rm then removes it;
//   - a bind whose host folder does not exist fails the create naming it,
//     and creates nothing.
func TestBindsAndVolumes(t *testing.T) {
	start := time.Now()
	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "test/busybox", "vol", testenv.BusyboxImage(t, nil))
	// An image that declares VOLUME /seed over content of its own.
	seedBase := testenv.BusyboxImage(t, map[string]string{"seed/hello": "from the image\n", "opt/data/x": "x\n"})
	cf, err := seedBase.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf.Config.Volumes = map[string]struct{}{"/seed": {}}
	seeded, err := mutate.Config(seedBase, cf.Config)
	if err != nil {
		t.Fatal(err)
	}
	seededRef := reg.Push(t, "test/busybox", "seeded", seeded)
	home := shortHome(t)
	base := t.TempDir()
	rw, ro := filepath.Join(base, "rw"), filepath.Join(base, "ro")
	for _, d := range []string{rw, ro} {
		if err := os.Mkdir(d, 0o777); err != nil {
			t.Fatal(err)
		}
		// Writable by any guest user: the test writes as uid 1234 too.
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	// Run as root, the daemon runs as nobody: the ownership checks below
	// are then about an unprivileged user, as on a desktop.
	owner, cred, env := unprivilegedDaemon(t, home, base)
	startDaemonAs(t, home, cred, env...)
	mustOK(t, "pull", berth(t, home, "pull", ref))
	if fi, err := os.Stat(home); err != nil || fi.Sys().(*syscall.Stat_t).Uid != owner.Uid {
		t.Fatalf("the daemon did not run as uid %d: its home %v, %v", owner.Uid, fi, err)
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(rw, "from-host"), "hello from the host\n")
	write(filepath.Join(ro, "readme"), "read me\n")
	write(filepath.Join(base, "secret"), "host secret\n")
	if err := os.Symlink("../secret", filepath.Join(rw, "escape")); err != nil {
		t.Fatal(err)
	}

	// A missing host folder: a clear error, no container, no volume.
	r := berth(t, home, "run", "--rm", "-v", filepath.Join(base, "missing")+":/x", "-v", "never:/n", ref, "true")
	if r.code == 0 || !strings.Contains(r.err, "bind source path does not exist: "+filepath.Join(base, "missing")) {
		t.Fatalf("run with a missing host folder: %+v", r)
	}
	if r := mustOK(t, "ps -a", berth(t, home, "ps", "-a", "-q")); r.out != "" {
		t.Fatalf("a failed create left a container: %q", r.out)
	}
	if r := mustOK(t, "volume ls", berth(t, home, "volume", "ls", "-q")); r.out != "" {
		t.Fatalf("a failed create left a volume: %q", r.out)
	}

	// VM 1.
	mustOK(t, "run -d b1", berth(t, home, "run", "-d", "--name", "b1",
		"-v", rw+":/data", "--mount", "type=bind,source="+ro+",target=/ro,readonly", "-v", "shared:/vol",
		ref, "sleep", "1000"))
	t.Logf("first VM up after %v", time.Since(start))
	exec := func(name string, script string) result {
		t.Helper()
		return berth(t, home, "exec", name, "sh", "-c", script)
	}
	if r := mustOK(t, "exec cat", exec("b1", "cat /data/from-host /ro/readme")); r.out != "hello from the host\nread me\n" {
		t.Errorf("host files in the guest: %q", r.out)
	}
	mustOK(t, "exec write", exec("b1", "echo written in the guest > /data/from-guest && mkdir -p /data/dir/sub && echo v1 > /vol/f"))
	mustOK(t, "exec -u 1234 write", berth(t, home, "exec", "-u", "1234:1234", "b1", "sh", "-c", "echo by 1234 > /data/by-1234"))
	b, err := os.ReadFile(filepath.Join(rw, "from-guest"))
	if err != nil || string(b) != "written in the guest\n" {
		t.Errorf("guest file on the host: %q, %v", b, err)
	}
	// Whoever writes in the guest (root, uid 1234), the host sees the
	// user who runs Berth. (A daemon run as root would honour the guest's
	// uid, as Docker does.)
	for _, p := range []string{filepath.Join(rw, "from-guest"), filepath.Join(rw, "dir/sub"), filepath.Join(rw, "by-1234")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != owner.Uid || st.Gid != owner.Gid {
			t.Errorf("%s is owned by %d:%d on the host, want the user running Berth (%d:%d)", p, st.Uid, st.Gid, owner.Uid, owner.Gid)
		}
	}
	write(filepath.Join(rw, "later"), "written on the host while it runs\n")
	if r := mustOK(t, "exec cat later", exec("b1", "cat /data/later")); r.out != "written on the host while it runs\n" {
		t.Errorf("host write after start seen in the guest: %q", r.out)
	}
	r = exec("b1", "touch /ro/x")
	if r.code == 0 || !strings.Contains(r.err, "Read-only file system") {
		t.Errorf("write to a read-only bind: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(ro, "x")); !os.IsNotExist(err) {
		t.Errorf("read-only bind written on the host: %v", err)
	}
	r = exec("b1", "cat /data/escape")
	if r.code == 0 || strings.Contains(r.out, "host secret") {
		t.Errorf("a symlink out of the share reached the host: %+v", r)
	}
	r = exec("b1", "grep -E ' /(data|ro|vol) ' /proc/mounts")
	if strings.Count(r.out, "\n") != 3 || !strings.Contains(r.out, " /ro 9p ro,") {
		t.Errorf("the container's share mounts: %q", r.out)
	}

	// docker inspect: Mounts and HostConfig as Docker shows them.
	r = mustOK(t, "docker inspect", docker(t, home, "inspect", "--format", "{{json .Mounts}}|{{json .HostConfig.Binds}}|{{len .HostConfig.Mounts}}", "b1"))
	parts := strings.Split(strings.TrimSpace(r.out), "|")
	var mounts []struct {
		Type, Name, Source, Destination, Driver, Mode, Propagation string
		RW                                                         bool
	}
	if len(parts) != 3 || json.Unmarshal([]byte(parts[0]), &mounts) != nil || len(mounts) != 3 {
		t.Fatalf("docker inspect: %q", r.out)
	}
	if m := mounts[0]; m.Type != "bind" || m.Source != rw || m.Destination != "/data" || !m.RW || m.Propagation != "rprivate" {
		t.Errorf("bind mount point: %+v", m)
	}
	// Binds first, then Mounts (Docker's own order is a map's).
	if m := mounts[1]; m.Type != "volume" || m.Name != "shared" || m.Destination != "/vol" || m.Driver != "local" || m.Source != filepath.Join(home, "volumes/shared/_data") {
		t.Errorf("volume mount point: %+v", m)
	}
	if m := mounts[2]; m.Type != "bind" || m.Destination != "/ro" || m.RW {
		t.Errorf("read-only --mount mount point: %+v", m)
	}
	if parts[1] != `["`+rw+`:/data","shared:/vol"]` || parts[2] != "1" {
		t.Errorf("HostConfig.Binds and Mounts: %q", r.out)
	}

	// VM 2, through the real docker CLI: reads what b1 wrote to the
	// volume, writes back; b1 sees it at once. Its image's VOLUME /seed
	// becomes an anonymous volume that starts with the image's files
	// (copy-up); nocopy leaves a new volume empty.
	mustOK(t, "docker run -d -v", docker(t, home, "run", "-d", "--name", "b2", "-v", "shared:/v", "-v", rw+":/h:ro", "-v", "nocopied:/opt/data:nocopy", seededRef,
		"sh", "-c", "cat /v/f > /v/seen-by-b2; echo from b2 > /v/from-b2; sleep 1000"))
	t.Logf("second VM up after %v", time.Since(start))
	deadline := time.Now().Add(30 * time.Second)
	for {
		r = exec("b1", "cat /vol/seen-by-b2 /vol/from-b2")
		if r.out == "v1\nfrom b2\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b1 does not see b2's writes to the shared volume: %+v", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := mustOK(t, "docker exec b2 seed", docker(t, home, "exec", "b2", "sh", "-c", "cat /seed/hello; ls -A /opt/data; grep -c ' /seed ' /proc/mounts")); r.out != "from the image\n1\n" {
		t.Errorf("image VOLUME /seed (copied up) and -v nocopied:/opt/data:nocopy (empty): %q", r.out)
	}
	r = mustOK(t, "docker inspect b2", docker(t, home, "inspect", "--format", `{{range .Mounts}}{{if eq .Destination "/seed"}}{{.Type}} {{.Name}}{{end}}{{end}}`, "b2"))
	anon, ok := strings.CutPrefix(strings.TrimSpace(r.out), "volume ")
	if !ok || len(anon) != 64 {
		t.Fatalf("b2's /seed mount: %q, want an anonymous volume", r.out)
	}
	r = docker(t, home, "exec", "b2", "sh", "-c", "cat /h/from-guest && touch /h/nope")
	if r.out != "written in the guest\n" || r.code == 0 || !strings.Contains(r.err, "Read-only file system") {
		t.Errorf("docker run -v HOST:/h:ro: %+v", r)
	}

	// Volumes: in use, listed alike, outliving their containers.
	for _, cli := range []func(testing.TB, string, ...string) result{berth, docker} {
		r = cli(t, home, "volume", "rm", "shared")
		if r.code == 0 || !strings.Contains(r.err, "remove shared: volume is in use - [") {
			t.Errorf("volume rm in use: %+v", r)
		}
	}
	names := func(r result) string {
		f := strings.Fields(r.out)
		sort.Strings(f)
		return strings.Join(f, " ")
	}
	bl := names(mustOK(t, "berth volume ls", berth(t, home, "volume", "ls", "-q")))
	dl := names(mustOK(t, "docker volume ls", docker(t, home, "volume", "ls", "-q")))
	if want := strings.Join(slices.Sorted(slices.Values([]string{"shared", "nocopied", anon})), " "); bl != want || dl != bl {
		t.Errorf("volume ls: berth %q, docker %q", bl, dl)
	}
	if r := mustOK(t, "docker volume ls dangling", docker(t, home, "volume", "ls", "-q", "--filter", "dangling=true")); r.out != "" {
		t.Errorf("dangling while in use: %q", r.out)
	}
	mustOK(t, "docker rm -f", docker(t, home, "rm", "-f", "b1", "b2"))
	if b, err := os.ReadFile(filepath.Join(home, "volumes/shared/_data/from-b2")); err != nil || string(b) != "from b2\n" {
		t.Errorf("the volume's data after its containers are gone: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(home, "volumes", anon, "_data/hello")); err != nil || string(b) != "from the image\n" {
		t.Errorf("the anonymous volume's copy of the image's /seed after rm (no -v): %q, %v", b, err)
	}
	mustOK(t, "docker volume rm", docker(t, home, "volume", "rm", "shared"))
	mustOK(t, "docker volume create", docker(t, home, "volume", "create", "--label", "com.example=1", "labelled"))
	if r := mustOK(t, "docker volume inspect", docker(t, home, "volume", "inspect", "--format", "{{.Name}} {{.Driver}} {{index .Labels \"com.example\"}} {{.Mountpoint}}", "labelled")); strings.TrimSpace(r.out) != "labelled local 1 "+filepath.Join(home, "volumes/labelled/_data") {
		t.Errorf("docker volume inspect: %q", r.out)
	}
	if r := mustOK(t, "docker volume prune", docker(t, home, "volume", "prune", "-af")); !strings.Contains(r.out, "labelled") {
		t.Errorf("docker volume prune -a: %q", r.out)
	}
	if r := mustOK(t, "berth volume ls", berth(t, home, "volume", "ls", "-q")); r.out != "" {
		t.Errorf("volumes left: %q", r.out)
	}
	t.Logf("TestBindsAndVolumes took %v", time.Since(start))
}

// unprivilegedDaemon returns who the daemon for home runs as, and, when
// this test runs as root, the credentials and environment that run it as
// nobody instead: home, dirs and the test binaries' folder made theirs or
// reachable, and the guest kernel tree hard-linked into a cache of their
// own (root's cache is not reachable). Not root: this user, as is.
func unprivilegedDaemon(t *testing.T, home string, dirs ...string) (syscall.Credential, *syscall.Credential, []string) {
	t.Helper()
	if os.Getuid() != 0 {
		return syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}, nil, nil
	}
	nobody := syscall.Credential{Uid: 65534, Gid: 65534}
	chown := func(p string) {
		t.Helper()
		if err := os.Chown(p, int(nobody.Uid), int(nobody.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	chown(filepath.Dir(home))
	for _, d := range dirs {
		// t.TempDir's parent is private to root.
		if err := os.Chmod(filepath.Dir(d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := filepath.Walk(d, func(p string, _ os.FileInfo, err error) error {
			if err == nil {
				chown(p)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	// berth and guestinit live in TestMain's private folder.
	if err := os.Chmod(filepath.Dir(berthBin), 0o755); err != nil {
		t.Fatal(err)
	}
	rootCache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	kdir := filepath.Join(cache, "berth", "kernel")
	if err := os.MkdirAll(kdir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(rootCache, "berth", "kernel", runtime.GOARCH)
	if out, err := osexec.Command("cp", "-al", src, kdir).CombinedOutput(); err != nil {
		testenv.Unavailable(t, "no guest kernel tree at %s to lend the unprivileged daemon (run make kernel): %v %s", src, err, out)
	}
	if err := filepath.Walk(cache, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			chown(p)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return nobody, &nobody, []string{"XDG_CACHE_HOME=" + cache, "HOME=" + cache}
}
