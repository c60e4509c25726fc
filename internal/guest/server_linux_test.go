package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/internal/testenv"
)

func TestRunStdoutStderrExitCode(t *testing.T) {
	e := newEnv(t)
	out, errOut, st := e.run(t, &agentpb.CreateProcessRequest{
		Id:   "main",
		Args: []string{"sh", "-c", "echo out; echo err >&2; exit 3"},
	}, "")
	if out != "out\n" || errOut != "err\n" {
		t.Errorf("stdout %q stderr %q, want \"out\\n\" \"err\\n\"", out, errOut)
	}
	if st.Code != 3 || st.Signal != 0 {
		t.Errorf("exit %+v, want code 3", st)
	}
}

func TestStdinPastPipeBuffer(t *testing.T) {
	e := newEnv(t)
	payload := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB, past any pipe buffer
	out, _, st := e.run(t, &agentpb.CreateProcessRequest{Id: "cat", Args: []string{"cat"}}, payload)
	if out != payload || st.Code != 0 {
		t.Errorf("cat returned %d bytes (want %d), exit %d", len(out), len(payload), st.Code)
	}
}

func TestSignalsAndExitCodes(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	t.Run("sigterm", func(t *testing.T) {
		// Behind the init: as the container's PID 1 itself, sleep would
		// be shielded from a SIGTERM it does not handle (as with Docker).
		r := &agentpb.CreateProcessRequest{Id: "sleeper", Args: []string{"sleep", "100"}, Init: true}
		if err := e.client.CreateProcess(ctx, r); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.StartProcess(ctx, r.Id); err != nil {
			t.Fatal(err)
		}
		if err := e.client.SignalProcess(ctx, r.Id, 15); err != nil {
			t.Fatal(err)
		}
		st, err := e.client.WaitProcess(ctx, r.Id)
		if err != nil {
			t.Fatal(err)
		}
		// Behind an init the code is 128+n, as tini reports it (the init
		// exits; it cannot die of the signal itself).
		if st.Code != 143 {
			t.Errorf("exit %+v, want code 143", st)
		}
		if err := e.client.DeleteProcess(ctx, r.Id); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("self-kill", func(t *testing.T) {
		// A PID 1 cannot kill itself from inside its namespace: use --init.
		_, _, st := e.run(t, &agentpb.CreateProcessRequest{Id: "k9", Args: []string{"sh", "-c", "kill -9 $$"}, Init: true}, "")
		if st.Code != 137 {
			t.Errorf("exit %+v, want code 137", st)
		}
	})
	t.Run("exit-255", func(t *testing.T) {
		_, _, st := e.run(t, &agentpb.CreateProcessRequest{Id: "e255", Args: []string{"sh", "-c", "exit 255"}}, "")
		if st.Code != 255 {
			t.Errorf("exit %+v, want 255", st)
		}
	})
	t.Run("trap-forwarded", func(t *testing.T) {
		// The shell traps USR1 and exits 42: the signal reaches it.
		var out testenv.SyncBuffer
		r := &agentpb.CreateProcessRequest{Id: "trap", Args: []string{"sh", "-c", "trap 'echo got; exit 42' USR1; echo ready; while :; do sleep 0.05; done"}}
		e.client.AssignPorts(r, agent.Stdio{Stdout: &out})
		if err := e.client.CreateProcess(ctx, r); err != nil {
			t.Fatal(err)
		}
		a, err := e.client.Attach(ctx, r, agent.Stdio{Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if _, err := e.client.StartProcess(ctx, r.Id); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "ready", func() bool { return strings.Contains(out.String(), "ready") })
		usr1, _ := agent.SignalNumber("SIGUSR1")
		if err := e.client.SignalProcess(ctx, r.Id, usr1); err != nil {
			t.Fatal(err)
		}
		st, err := e.client.WaitProcess(ctx, r.Id)
		if err != nil {
			t.Fatal(err)
		}
		a.Wait()
		if st.Code != 42 || !strings.Contains(out.String(), "got") {
			t.Errorf("exit %+v output %q, want 42 and \"got\"", st, out.String())
		}
	})
}

// ttySession starts a tty shell and returns a writer to its terminal and
// its accumulated output.
func ttySession(t *testing.T, e *env, id string, rows, cols uint32) (io.Writer, *testenv.SyncBuffer, *agent.Attached) {
	t.Helper()
	ctx := ctxT(t)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	out := &testenv.SyncBuffer{}
	r := &agentpb.CreateProcessRequest{Id: id, Args: []string{"sh"}, Tty: true, Rows: rows, Cols: cols}
	stdio := agent.Stdio{Stdin: pr, Stdout: out}
	e.client.AssignPorts(r, stdio)
	if err := e.client.CreateProcess(ctx, r); err != nil {
		t.Fatal(err)
	}
	a, err := e.client.Attach(ctx, r, stdio)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if _, err := e.client.StartProcess(ctx, r.Id); err != nil {
		t.Fatal(err)
	}
	return pw, out, a
}

func TestTtyResize(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	in, out, a := ttySession(t, e, "tty", 24, 80)
	fmt.Fprintf(in, "stty size; tty\n")
	waitFor(t, "24 80 from stty size", func() bool { return strings.Contains(out.String(), "24 80") })
	waitFor(t, "a /dev/pts name from tty", func() bool { return strings.Contains(out.String(), "/dev/pts/") })
	if err := e.client.ResizePty(ctx, "tty", 50, 132); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(in, "stty size\n")
	waitFor(t, "50 132 after resize", func() bool { return strings.Contains(out.String(), "50 132") })
	fmt.Fprintf(in, "exit 7\n")
	st, err := e.client.WaitProcess(ctx, "tty")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(); err != nil {
		t.Errorf("tty output: %v", err)
	}
	if st.Code != 7 {
		t.Errorf("exit %+v, want 7", st)
	}
	if err := e.client.ResizePty(ctx, "tty", 0, 10); err == nil {
		t.Error("resize to 0 rows succeeded")
	}
}

func TestTtyCloseStdinSendsEOF(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	_, _, _ = ttySession(t, e, "tty", 24, 80)
	time.Sleep(100 * time.Millisecond)
	if err := e.client.CloseStdin(ctx, "tty"); err != nil {
		t.Fatal(err)
	}
	st, err := e.client.WaitProcess(ctx, "tty")
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != 0 {
		t.Errorf("sh after ^D: exit %+v, want 0", st)
	}
}

// startMain starts a long-running main process "main" and returns when it
// runs.
func startMain(t *testing.T, e *env, args ...string) {
	t.Helper()
	startMainWith(t, e, &agentpb.CreateProcessRequest{Id: "main", Args: args, Hostname: "box"})
}

// startInitMain starts "main" behind the reaping init (--init).
func startInitMain(t *testing.T, e *env, args ...string) {
	t.Helper()
	startMainWith(t, e, &agentpb.CreateProcessRequest{Id: "main", Args: args, Hostname: "box", Init: true})
}

func startMainWith(t *testing.T, e *env, r *agentpb.CreateProcessRequest) {
	t.Helper()
	ctx := ctxT(t)
	if err := e.client.CreateProcess(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.StartProcess(ctx, "main"); err != nil {
		t.Fatal(err)
	}
}

func TestExecIntoContainerAndPIDNamespace(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	startMain(t, e, "sleep", "1000")

	out, _, st := e.run(t, &agentpb.CreateProcessRequest{Id: "ps", ContainerId: "main", Args: []string{"ps", "-o", "pid,comm"}}, "")
	if st.Code != 0 {
		t.Fatalf("ps: exit %d", st.Code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// Header, PID 1 (the main process, sleep), ps: nothing of the test
	// machine, and not the container init, which lives a namespace up.
	if len(lines) != 3 {
		t.Errorf("ps in the container shows %d lines, want 3 (header, sleep, ps):\n%s", len(lines), out)
	}
	for _, want := range []string{"1 sleep", "ps"} {
		if !strings.Contains(out, want) {
			t.Errorf("ps output lacks %q:\n%s", want, out)
		}
	}

	out, _, _ = e.run(t, &agentpb.CreateProcessRequest{Id: "host", ContainerId: "main", Args: []string{"hostname"}}, "")
	if strings.TrimSpace(out) != "box" {
		t.Errorf("hostname in the container = %q, want box", out)
	}
	out, _, _ = e.run(t, &agentpb.CreateProcessRequest{Id: "root", ContainerId: "main", Args: []string{"ls", "/"}}, "")
	if !strings.Contains(out, "bin") || strings.Contains(out, "usr") {
		t.Errorf("ls / in the container shows %q, want the busybox rootfs only", out)
	}

	if err := e.client.SignalProcess(ctx, "main", 9); err != nil {
		t.Fatal(err)
	}
	st, err := e.client.WaitProcess(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != 137 {
		t.Errorf("main after SIGKILL: %+v, want 137", st)
	}
	// The container is gone: exec fails clearly.
	err = e.client.CreateProcess(ctx, &agentpb.CreateProcessRequest{Id: "late", ContainerId: "main", Args: []string{"true"}})
	if err == nil {
		_, err = e.client.StartProcess(ctx, "late")
	}
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("exec into an ended container: %v, want an error saying it is not running", err)
	}
}

func TestMainExitEndsExecProcesses(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	startMain(t, e, "sleep", "1000")
	r := &agentpb.CreateProcessRequest{Id: "bg", ContainerId: "main", Args: []string{"sleep", "1000"}}
	if err := e.client.CreateProcess(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.StartProcess(ctx, "bg"); err != nil {
		t.Fatal(err)
	}
	if err := e.client.SignalProcess(ctx, "main", 9); err != nil {
		t.Fatal(err)
	}
	st, err := e.client.WaitProcess(ctx, "bg")
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != 137 {
		t.Errorf("exec'd process after the main exited: %+v, want 137 (killed)", st)
	}
	waitFor(t, "the container init to be reaped", func() bool {
		e.srv.mu.Lock()
		defer e.srv.mu.Unlock()
		return len(e.srv.inits) == 0
	})
}

func TestUsers(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		user string
		gids []uint32
		want string
	}{
		{"", nil, "uid=0(root) gid=0(root) groups=0(root)"},
		{"tester", nil, "uid=1000(tester) gid=1000(tester) groups=1000(tester),2000(extra)"},
		{"1000", nil, "uid=1000(tester) gid=1000(tester) groups=1000(tester),2000(extra)"},
		{"tester:extra", nil, "uid=1000(tester) gid=2000(extra) groups=2000(extra)"},
		{"1000:2000", []uint32{3000}, "uid=1000(tester) gid=2000(extra) groups=2000(extra),3000"},
		{"4242", nil, "uid=4242 gid=0(root) groups=0(root)"},
	} {
		out, _, st := e.run(t, &agentpb.CreateProcessRequest{Id: "id", Args: []string{"id"}, User: tc.user, AdditionalGids: tc.gids}, "")
		if st.Code != 0 || strings.TrimSpace(out) != tc.want {
			t.Errorf("user %q: id says %q (exit %d), want %q", tc.user, strings.TrimSpace(out), st.Code, tc.want)
		}
	}
	out, _, _ := e.run(t, &agentpb.CreateProcessRequest{Id: "home", Args: []string{"sh", "-c", "echo $HOME; pwd"}, User: "tester", Cwd: "/home/tester"}, "")
	if out != "/home/tester\n/home/tester\n" {
		t.Errorf("HOME and cwd for tester: %q", out)
	}
	_, err := e.client.Run(ctxT(t), &agentpb.CreateProcessRequest{Id: "nouser", Args: []string{"id"}, User: "nosuch"}, agent.Stdio{})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "unable to find user nosuch") {
		t.Errorf("unknown user: %v, want invalid argument naming the user", err)
	}
}

// TestZombiesAreReaped: with --init the container's PID 1 is the
// reaping init, and orphans never stay zombies. (Without it PID 1 is the
// main process, whose job that is, as with Docker.)
func TestZombiesAreReaped(t *testing.T) {
	e := newEnv(t)
	startInitMain(t, e, "sleep", "1000")
	// Orphans whose parent shell exits at once: they are re-parented to
	// the container's PID 1, the init, which must reap them.
	_, _, st := e.run(t, &agentpb.CreateProcessRequest{Id: "orphans", ContainerId: "main",
		Args: []string{"sh", "-c", "for i in 1 2 3 4 5; do (sleep 0.01 &); done; sleep 0.3"}}, "")
	if st.Code != 0 {
		t.Fatalf("orphan maker: exit %d", st.Code)
	}
	out, _, _ := e.run(t, &agentpb.CreateProcessRequest{Id: "stat", ContainerId: "main",
		Args: []string{"sh", "-c", "cat /proc/[0-9]*/stat"}}, "")
	procs := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		i := strings.LastIndex(line, ")")
		if i < 0 || i+3 > len(line) {
			continue
		}
		procs++
		if line[i+2] == 'Z' {
			t.Errorf("zombie in the container: %s", line)
		}
	}
	if procs < 2 {
		t.Errorf("read %d process states, want at least the init and sleep:\n%s", procs, out)
	}
}

func TestHandlerPanicDoesNotKillServer(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	hook := func(method string) {
		if strings.HasSuffix(method, "/Info") {
			panic("injected by the test")
		}
	}
	e.srv.hookBeforeHandler.Store(&hook)
	_, err := e.client.Info(ctx)
	if err == nil || !strings.Contains(err.Error(), "internal error") {
		t.Fatalf("Info with a panicking handler: %v, want an internal error", err)
	}
	if err := e.client.Ping(ctx); err != nil {
		t.Fatalf("Ping after a handler panic: %v", err)
	}
	e.srv.hookBeforeHandler.Store(nil)
	_, _, st := e.run(t, &agentpb.CreateProcessRequest{Id: "after", Args: []string{"true"}}, "")
	if st.Code != 0 {
		t.Errorf("process after the panic: exit %d", st.Code)
	}
}

func TestBadInputs(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.client

	check := func(name string, err error, class error, substr string) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", name)
			return
		}
		if class != nil && !errors.Is(err, class) {
			t.Errorf("%s: %v is not %v", name, err, class)
		}
		if !strings.Contains(err.Error(), substr) {
			t.Errorf("%s: %q does not mention %q", name, err, substr)
		}
	}

	_, err := c.Run(ctx, &agentpb.CreateProcessRequest{Id: "missing", Args: []string{"nosuchbinary"}}, agent.Stdio{})
	check("missing binary", err, errdefs.ErrNotFound, `"nosuchbinary": executable file not found`)
	_, err = c.Run(ctx, &agentpb.CreateProcessRequest{Id: "missing2", Args: []string{"/bin/nope"}}, agent.Stdio{})
	check("missing path", err, errdefs.ErrNotFound, "/bin/nope")

	// A failed start reads as exit 127 to a waiter.
	r := &agentpb.CreateProcessRequest{Id: "w127", Args: []string{"nosuchbinary"}}
	if err := c.CreateProcess(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartProcess(ctx, r.Id); err == nil {
		t.Fatal("start of a missing binary succeeded")
	}
	if st, err := c.WaitProcess(ctx, r.Id); err != nil || st.Code != 127 {
		t.Errorf("wait after a failed start: %+v %v, want 127", st, err)
	}

	_, err = c.Run(ctx, &agentpb.CreateProcessRequest{Id: "cwd", Args: []string{"true"}, Cwd: "/nonexistent"}, agent.Stdio{})
	check("bad cwd", err, errdefs.ErrInvalidArgument, "/nonexistent")
	check("no args", c.CreateProcess(ctx, &agentpb.CreateProcessRequest{Id: "x"}), errdefs.ErrInvalidArgument, "no command")
	check("no id", c.CreateProcess(ctx, &agentpb.CreateProcessRequest{Args: []string{"true"}}), errdefs.ErrInvalidArgument, "no process id")
	check("dup id", c.CreateProcess(ctx, &agentpb.CreateProcessRequest{Id: "w127", Args: []string{"true"}}), errdefs.ErrAlreadyExists, "w127")
	check("agent port as stdio", c.CreateProcess(ctx, &agentpb.CreateProcessRequest{Id: "p", Args: []string{"true"}, StdoutPort: 1024}), errdefs.ErrInvalidArgument, "1024")
	check("no container", c.CreateProcess(ctx, &agentpb.CreateProcessRequest{Id: "e", ContainerId: "ghost", Args: []string{"true"}}), errdefs.ErrNotFound, "ghost")
	_, err = c.WaitProcess(ctx, "ghost")
	check("wait unknown", err, errdefs.ErrNotFound, "ghost")
	check("signal unknown", c.SignalProcess(ctx, "ghost", 9), errdefs.ErrNotFound, "ghost")
	check("bad signal", c.SignalProcess(ctx, "w127", 99), errdefs.ErrInvalidArgument, "99")
	_, err = c.Run(ctx, &agentpb.CreateProcessRequest{Id: "rl", Args: []string{"true"}, Rlimits: []*agentpb.Rlimit{{Type: "bogus", Soft: 1, Hard: 1}}}, agent.Stdio{})
	check("bad rlimit", err, errdefs.ErrInvalidArgument, "bogus")
	check("mount outside", c.Mount(ctx, &agentpb.MountRequest{Source: "tmpfs", Fstype: "tmpfs", Target: "/../../etc"}), errdefs.ErrInvalidArgument, "outside the container rootfs")
	check("mount relative", c.Mount(ctx, &agentpb.MountRequest{Source: "tmpfs", Fstype: "tmpfs", Target: "mnt"}), errdefs.ErrInvalidArgument, "not absolute")
	check("mount missing", c.Mount(ctx, &agentpb.MountRequest{Source: "tmpfs", Fstype: "tmpfs", Target: "/no/such/dir"}), errdefs.ErrNotFound, "/no/such/dir")
	check("unmount rootfs", c.Unmount(ctx, "/", false), errdefs.ErrInvalidArgument, "rootfs")
	check("unmount non-mount", c.Unmount(ctx, "/mnt", false), errdefs.ErrInvalidArgument, "not a mount point")
	check("bad address", c.ConfigureNetwork(ctx, &agentpb.ConfigureNetworkRequest{Address: "10.0.0.1"}), errdefs.ErrInvalidArgument, "CIDR")
	check("bad time", c.SetTime(ctx, time.Unix(0, 0)), errdefs.ErrInvalidArgument, "1970")
	check("resize non-tty", c.ResizePty(ctx, "w127", 10, 10), errdefs.ErrInvalidArgument, "no tty")

	// Still serving after all that.
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRlimits(t *testing.T) {
	e := newEnv(t)
	out, _, _ := e.run(t, &agentpb.CreateProcessRequest{Id: "ulimit", Args: []string{"sh", "-c", "ulimit -n"},
		Rlimits: []*agentpb.Rlimit{{Type: "nofile", Soft: 123, Hard: 456}}}, "")
	if strings.TrimSpace(out) != "123" {
		t.Errorf("ulimit -n = %q, want 123", out)
	}
}

func TestMountIntoRootfs(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	if err := e.client.Mount(ctx, &agentpb.MountRequest{Source: "tmpfs", Fstype: "tmpfs", Target: "/mnt/scratch", Options: []string{"nosuid", "size=1m"}, MkdirTarget: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.client.Unmount(ctxT(t), "/mnt/scratch", true) })
	out, _, _ := e.run(t, &agentpb.CreateProcessRequest{Id: "m", Args: []string{"grep", "/mnt/scratch", "/proc/mounts"}}, "")
	if !strings.Contains(out, "tmpfs /mnt/scratch tmpfs") || !strings.Contains(out, "nosuid") {
		t.Errorf("/proc/mounts in the container: %q, want the tmpfs on /mnt/scratch", out)
	}
	// A symlink pointing out of the rootfs resolves inside it.
	if err := os.Symlink("/../../../mnt", filepath.Join(e.rootfs, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := e.client.Mount(ctx, &agentpb.MountRequest{Source: "tmpfs", Fstype: "tmpfs", Target: "/escape/inner", MkdirTarget: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.rootfs, "mnt/inner")); err != nil {
		t.Errorf("mount through a symlink did not stay in the rootfs: %v", err)
	}
	if err := e.client.Unmount(ctx, "/escape/inner", false); err != nil {
		t.Errorf("unmount through the symlink: %v", err)
	}
	if err := e.client.Unmount(ctx, "/mnt/scratch", false); err != nil {
		t.Fatal(err)
	}
}

func TestConfigureNetworkWritesRootfsFiles(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	// resolv.conf as a symlink out of the rootfs must be replaced, not followed.
	os.Symlink("/etc/resolv.conf", filepath.Join(e.rootfs, "etc/resolv.conf"))
	err := e.client.ConfigureNetwork(ctx, &agentpb.ConfigureNetworkRequest{
		Address: "10.0.2.15/24", Gateway: "10.0.2.2",
		DnsServers: []string{"10.0.2.3"}, DnsSearch: []string{"example.com"}, DnsOptions: []string{"ndots:0"},
		DnsUpstreams: []string{"192.0.2.53", "192.0.2.54"},
		Hosts:        []*agentpb.HostEntry{{Ip: "10.0.2.2", Names: []string{"host.berth.internal"}}},
		Hostname:     "web",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"etc/resolv.conf": "nameserver 10.0.2.3\nsearch example.com\noptions ndots:0\n\n# The nameserver above is Berth's resolver for this network; names\n# outside it are forwarded to:\n# ExtServers: [192.0.2.53 192.0.2.54]\n",
		"etc/hosts":       "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.2.15\tweb\n10.0.2.2\thost.berth.internal\n",
		"etc/hostname":    "web\n",
	}
	for name, w := range want {
		b, err := os.ReadFile(filepath.Join(e.rootfs, name))
		if err != nil || string(b) != w {
			t.Errorf("%s = %q (%v), want %q", name, b, err, w)
		}
	}
	if fi, err := os.Lstat(filepath.Join(e.rootfs, "etc/resolv.conf")); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("resolv.conf is still a symlink")
	}
}

func TestEventsAndShutdownOnExit(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	events, err := e.client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, _, st := e.run(t, &agentpb.CreateProcessRequest{Id: "main", Args: []string{"sh", "-c", "exit 5"}, ShutdownOnExit: true}, "")
	if st.Code != 5 {
		t.Fatalf("exit %+v", st)
	}
	ev, err := events.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != agentpb.Event_EXIT || ev.Id != "main" || ev.ExitCode != 5 {
		t.Errorf("event %v, want EXIT of main with 5", ev)
	}
	waitFor(t, "the shutdown hook", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.shutdowns) == 1 && !e.shutdowns[0]
	})
}

func TestInfoStatsPing(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	v, err := e.client.Version(ctx)
	if err != nil || v != "test" {
		t.Errorf("Version = %q, %v", v, err)
	}
	info, err := e.client.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.KernelRelease == "" || info.Boot.AgentServingNs <= 0 || info.NowBoottimeNs < info.Boot.AgentServingNs {
		t.Errorf("info %v: want a kernel release and serving time before now", info)
	}
	st, err := e.client.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.MemoryTotalBytes == 0 || st.Pids == 0 || st.CpuUserUsec == 0 || st.Cpus == 0 {
		t.Errorf("stats %v: want memory, pids, cpu", st)
	}
}

func TestConcurrentContainers(t *testing.T) {
	e := newEnv(t)
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			var out bytes.Buffer
			id := fmt.Sprintf("c%d", i)
			st, err := e.client.Run(ctxT(t), &agentpb.CreateProcessRequest{Id: id, Args: []string{"sh", "-c", "echo " + id}}, agent.Stdio{Stdout: &out})
			if err == nil && (st.Code != 0 || out.String() != id+"\n") {
				err = fmt.Errorf("%s: exit %d output %q", id, st.Code, out.String())
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestOOMEvents(t *testing.T) {
	for _, tc := range []struct {
		rec  string
		want bool
	}{
		{"3,1234,5678,-;Out of memory: Killed process 812 (stress) total-vm:110000kB, anon-rss:90000kB, file-rss:4kB", true},
		{"3,1235,5679,-;Memory cgroup out of memory: Killed process 9 (x) total-vm:1kB", true},
		{"6,1236,5680,-;oom_reaper: reaped process 812 (stress)", false},
		{"6,1,2,-;virtio_blk virtio1: [vda] 262144 512-byte logical blocks", false},
	} {
		if _, got := parseKmsgOOM(tc.rec); got != tc.want {
			t.Errorf("parseKmsgOOM(%q) = %v, want %v", tc.rec, got, tc.want)
		}
	}

	e := newEnv(t)
	ctx := ctxT(t)
	events, err := e.client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	startMain(t, e, "sleep", "1000")
	msg, _ := parseKmsgOOM("3,1,1,-;Out of memory: Killed process 812 (sleep) total-vm:1kB")
	e.srv.oomKill(msg)
	ev, err := events.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != agentpb.Event_OOM || ev.Id != "main" || !strings.Contains(ev.Message, "Killed process 812") {
		t.Errorf("event %v, want OOM of main", ev)
	}
	if err := e.client.SignalProcess(ctx, "main", 9); err != nil {
		t.Fatal(err)
	}
	st, err := e.client.WaitProcess(ctx, "main")
	if err != nil || !st.OOMKilled || st.Code != 137 {
		t.Errorf("wait: %+v %v, want 137 and OOMKilled", st, err)
	}
}

// TestMountReachesRunningContainer checks the propagation guestinit sets
// up: the rootfs is a shared mount, each container's mounts are its
// slaves, so a Mount made while a container runs appears inside it.
func TestMountReachesRunningContainer(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	if err := unix.Mount(e.rootfs, e.rootfs, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(e.rootfs, unix.MNT_DETACH) })
	if err := unix.Mount("", e.rootfs, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	startMain(t, e, "sleep", "1000")
	if err := e.client.Mount(ctx, &agentpb.MountRequest{Source: "tmpfs", Fstype: "tmpfs", Target: "/mnt/late", MkdirTarget: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.client.Unmount(ctxT(t), "/mnt/late", true) })
	out, _, _ := e.run(t, &agentpb.CreateProcessRequest{Id: "see", ContainerId: "main", Args: []string{"grep", "/mnt/late", "/proc/mounts"}}, "")
	if !strings.Contains(out, "/mnt/late") {
		t.Errorf("the running container does not see the new mount; its /proc/mounts lines: %q", out)
	}
	if err := e.client.Unmount(ctx, "/mnt/late", false); err != nil {
		t.Fatal(err)
	}
	out, _, _ = e.run(t, &agentpb.CreateProcessRequest{Id: "gone", ContainerId: "main", Args: []string{"grep", "-c", "/mnt/late", "/proc/mounts"}}, "")
	if strings.TrimSpace(out) != "0" {
		t.Errorf("after Unmount the container still sees it: %q", out)
	}
}

func TestCloseStdinPipe(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	pr, pw := io.Pipe() // never closed by the test: only CloseStdin ends the input
	defer pw.Close()
	var out testenv.SyncBuffer
	r := &agentpb.CreateProcessRequest{Id: "cat", Args: []string{"cat"}}
	stdio := agent.Stdio{Stdin: pr, Stdout: &out}
	e.client.AssignPorts(r, stdio)
	if err := e.client.CreateProcess(ctx, r); err != nil {
		t.Fatal(err)
	}
	a, err := e.client.Attach(ctx, r, stdio)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := e.client.StartProcess(ctx, "cat"); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(pw, "partial input")
	waitFor(t, "cat to echo its input", func() bool { return out.String() == "partial input" })
	if err := e.client.CloseStdin(ctx, "cat"); err != nil {
		t.Fatal(err)
	}
	st, err := e.client.WaitProcess(ctx, "cat")
	if err != nil || st.Code != 0 {
		t.Errorf("cat after CloseStdin: %+v %v", st, err)
	}
}

// TestReadonlyRootfsRemount is how engine/container makes a container's
// root read-only (docker run --read-only): a bind remount of "/".
func TestReadonlyRootfsRemount(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	// In the VM the rootfs is a mount of its own; here, make it one.
	if err := unix.Mount(e.rootfs, e.rootfs, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(e.rootfs, unix.MNT_DETACH) })
	if err := e.client.Mount(ctx, &agentpb.MountRequest{Source: "rootfs", Target: "/", Options: []string{"remount", "bind", "ro"}}); err != nil {
		t.Fatal(err)
	}
	_, errOut, st := e.run(t, &agentpb.CreateProcessRequest{Id: "w", Args: []string{"sh", "-c", "echo x > /newfile"}}, "")
	if st.Code == 0 || !strings.Contains(errOut, "Read-only") {
		t.Errorf("writing to a read-only root: exit %d, stderr %q; want a read-only error", st.Code, errOut)
	}
	out, _, st := e.run(t, &agentpb.CreateProcessRequest{Id: "tmp", Args: []string{"sh", "-c", "echo ok > /dev/shm/f && cat /dev/shm/f"}}, "")
	if st.Code != 0 || out != "ok\n" {
		t.Errorf("/dev/shm under a read-only root: exit %d, %q", st.Code, out)
	}
}

// TestReadonlyRootfsWithoutMountPoints: an image with no /proc, /sys or
// /dev still runs with a read-only root (docker run --read-only): the
// mount points are made before the root becomes read-only, and the
// container gets its proc, sysfs and /dev as usual.
func TestReadonlyRootfsWithoutMountPoints(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	for _, d := range []string{"proc", "sys", "dev"} {
		if err := os.Remove(filepath.Join(e.rootfs, d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount(e.rootfs, e.rootfs, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(e.rootfs, unix.MNT_DETACH) })
	if err := e.client.Mount(ctx, &agentpb.MountRequest{Source: "rootfs", Target: "/", Options: []string{"remount", "bind", "ro"}}); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(e.rootfs, "late"), 0o755); !errors.Is(err, unix.EROFS) {
		t.Fatalf("the rootfs is not read-only: mkdir gave %v", err)
	}
	startMain(t, e, "sleep", "1000")
	script := "cat /proc/1/comm; ls /sys/kernel >/dev/null && echo sys; ls /dev/null /dev/pts/ptmx /dev/shm /dev/mqueue; echo x > /newfile"
	out, errOut, st := e.run(t, &agentpb.CreateProcessRequest{Id: "check", ContainerId: "main", Args: []string{"sh", "-c", script}}, "")
	want := "sleep\nsys\n/dev/null\n/dev/pts/ptmx\n\n/dev/mqueue:\n\n/dev/shm:\n"
	if out != want {
		t.Errorf("in the container: %q, want %q (stderr %q)", out, want, errOut)
	}
	if st.Code == 0 || !strings.Contains(errOut, "Read-only") {
		t.Errorf("writing to the read-only root: exit %d, stderr %q", st.Code, errOut)
	}
}

// TestInitForwardsSignals: a signal sent to PID 1 inside the container
// (kill 1, as docker stop's SIGTERM would arrive) reaches the main
// process, as with docker run --init.
func TestInitForwardsSignals(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	startInitMain(t, e, "sleep", "1000")
	// kill itself may be ended by the container's end (137): only the
	// main process's status matters.
	e.run(t, &agentpb.CreateProcessRequest{Id: "k", ContainerId: "main", Args: []string{"kill", "-TERM", "1"}}, "")
	mst, err := e.client.WaitProcess(ctx, "main")
	if err != nil || mst.Code != 143 {
		t.Errorf("main after kill -TERM 1: %+v %v, want 143", mst, err)
	}
}

// TestReapAllCollectsOrphans runs the server as guestinit does (ReapAll)
// with this process as a child subreaper standing in for PID 1: an
// orphaned grandchild must not stay a zombie.
func TestReapAllCollectsOrphans(t *testing.T) {
	requireRoot(t)
	if _, err := os.Stat(busyboxPath); err != nil {
		t.Skipf("skipping: %s is missing (apt-get install busybox-static)", busyboxPath)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	sockDir, _ := os.MkdirTemp("", "ba")
	defer os.RemoveAll(sockDir)
	srv, err := NewServer(Config{Rootfs: t.TempDir(), Listener: transport.NewUnix(sockDir), ReapAll: true,
		Logger: log.New(testWriter{t}, "agent: ", log.Lmicroseconds)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	<-srv.Serving()

	pid, err := syscall.ForkExec(busyboxPath, []string{"sh", "-c", "sleep 0.2 & exit 0"}, &syscall.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	zombies := func() []string {
		var z []string
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			s := string(b)
			i := strings.LastIndex(s, ")")
			f := strings.Fields(s[i+1:])
			if len(f) > 1 && f[0] == "Z" && f[1] == fmt.Sprint(os.Getpid()) {
				z = append(z, s[:i+1])
			}
		}
		return z
	}
	time.Sleep(600 * time.Millisecond) // the shell and its orphaned sleep have exited
	waitFor(t, "no zombie children", func() bool { return len(zombies()) == 0 })
	if err := unix.Kill(pid, 0); err == nil {
		t.Errorf("the shell (pid %d) still exists", pid)
	}
}

func TestTtyBelongsToUser(t *testing.T) {
	e := newEnv(t)
	var out testenv.SyncBuffer
	st, err := e.client.Run(ctxT(t), &agentpb.CreateProcessRequest{Id: "t", User: "tester", Tty: true,
		Args: []string{"sh", "-c", "ls -l $(tty); echo reopened > $(tty)"}}, agent.Stdio{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != 0 || !strings.Contains(out.String(), "tester") || !strings.Contains(out.String(), "reopened") {
		t.Errorf("tty of a non-root user: exit %d, output %q; want it owned by tester and writable by name", st.Code, out.String())
	}
}

// TestInitModeShowsInitAsPID1: with --init, ps in the container shows
// berth-init as PID 1 and the main process under it.
func TestInitModeShowsInitAsPID1(t *testing.T) {
	e := newEnv(t)
	startInitMain(t, e, "sleep", "1000")
	out, _, st := e.run(t, &agentpb.CreateProcessRequest{Id: "ps", ContainerId: "main", Args: []string{"ps", "-o", "pid,comm"}}, "")
	if st.Code != 0 || !strings.Contains(out, "1 berth-init") || !strings.Contains(out, "sleep") {
		t.Fatalf("ps with --init: exit %d:\n%s", st.Code, out)
	}
}

// TestMainIgnoresTERMAsPID1: without --init the main process is the
// container's PID 1, which the kernel shields from signals it does not
// handle: SIGTERM leaves it running, SIGKILL ends it (docker stop's
// timeout path).
func TestMainIgnoresTERMAsPID1(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	startMain(t, e, "sleep", "1000")
	if err := e.client.SignalProcess(ctx, "main", 15); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if st, err := e.client.WaitProcess(wctx, "main"); err == nil {
		t.Fatalf("PID 1 without a TERM handler died of SIGTERM: %+v", st)
	}
	if err := e.client.SignalProcess(ctx, "main", 9); err != nil {
		t.Fatal(err)
	}
	if st, err := e.client.WaitProcess(ctx, "main"); err != nil || st.Code != 137 {
		t.Fatalf("after SIGKILL: %+v %v, want 137", st, err)
	}
}

// TestExecFailureClasses: a command that cannot be executed fails its
// start with a class, not a text to match: missing (or a missing
// interpreter) is not found, exit 127; not executable, a directory, or
// on a noexec mount is permission denied, exit 126. Both the main
// process (started through the stage) and an exec'd one.
func TestExecFailureClasses(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	if err := os.WriteFile(filepath.Join(e.rootfs, "bin/badinterp"), []byte("#!/no/such/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := e.client.Mount(ctx, &agentpb.MountRequest{Source: "tmpfs", Fstype: "tmpfs", Target: "/mnt", Options: []string{"noexec"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.client.Unmount(ctxT(t), "/mnt", true) })
	bb, err := os.ReadFile(filepath.Join(e.rootfs, "bin/busybox"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.rootfs, "mnt/true"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	startMain(t, e, "sleep", "1000")
	cases := []struct {
		args  []string
		class error
		code  int
	}{
		{[]string{"/etc/passwd"}, errdefs.ErrPermissionDenied, 126},
		{[]string{"/bin"}, errdefs.ErrPermissionDenied, 126},
		{[]string{"/mnt/true"}, errdefs.ErrPermissionDenied, 126},
		{[]string{"/bin/badinterp"}, errdefs.ErrNotFound, 127},
		{[]string{"/no/such/file"}, errdefs.ErrNotFound, 127},
	}
	for i, c := range cases {
		for _, container := range []string{"", "main"} {
			id := fmt.Sprintf("p%d%s", i, container)
			err := e.client.CreateProcess(ctx, &agentpb.CreateProcessRequest{Id: id, ContainerId: container, Args: c.args})
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.client.StartProcess(ctx, id)
			if !errors.Is(err, c.class) {
				t.Errorf("%v (container %q): start error %v, want %v", c.args, container, err, c.class)
			}
			for _, other := range []error{errdefs.ErrNotFound, errdefs.ErrPermissionDenied} {
				if other != c.class && errors.Is(err, other) {
					t.Errorf("%v (container %q): %v is also %v", c.args, container, err, other)
				}
			}
			if st, err := e.client.WaitProcess(ctx, id); err != nil || st.Code != c.code {
				t.Errorf("%v (container %q): wait %+v %v, want exit %d", c.args, container, st, err, c.code)
			}
		}
	}
}

// TestMountShare stages one source (a tmpfs stands in for a 9p or
// virtio-fs device) once, binds two of its directories into the rootfs,
// one read-only, and refuses a subdir that leaves the share.
func TestMountShare(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	mount := func(target, subdir string, opts ...string) error {
		return e.client.Mount(ctx, &agentpb.MountRequest{Share: true, Source: "dev0", Fstype: "tmpfs", Target: target, Subdir: subdir, Options: opts})
	}
	if err := mount("/data/rw", "", "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Unmount(filepath.Join(e.rootfs, "data/rw"), unix.MNT_DETACH)
		unix.Unmount(filepath.Join(e.rootfs, "data/ro"), unix.MNT_DETACH)
		unix.Unmount(filepath.Join(e.staging, "dev0"), unix.MNT_DETACH)
	})
	if err := os.MkdirAll(filepath.Join(e.staging, "dev0/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mount("/data/ro", "sub", "ro"); err != nil {
		t.Fatal(err)
	}
	out, _, code := e.run(t, &agentpb.CreateProcessRequest{Id: "w", Args: []string{"sh", "-c", "echo hi > /data/rw/sub/f && cat /data/ro/f && ! touch /data/ro/g 2>/dev/null && grep -c ' /data/r[ow] ' /proc/mounts"}}, "")
	if code.Code != 0 || !strings.Contains(out, "hi\n2") {
		t.Errorf("rw write seen through the ro bind, ro refusing writes: exit %d, output %q", code.Code, out)
	}
	if _, err := os.Stat(filepath.Join(e.staging, "dev0/sub/f")); err != nil {
		t.Errorf("the write did not land in the one staged mount: %v", err)
	}
	if err := mount("/data/x", "../../etc"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("subdir leaving the share: %v, want invalid argument", err)
	}
	if err := e.client.Mount(ctx, &agentpb.MountRequest{Share: true, Source: "../x", Fstype: "tmpfs", Target: "/data/y"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("source that is a path: %v, want invalid argument", err)
	}
}

// TestMountShareSerialPortRefused: a share over a spare serial port must
// be 9p, name a berth.share.N port and not also an agent port; each is
// refused as an invalid argument before anything is opened.
func TestMountShareSerialPortRefused(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	for _, r := range []*agentpb.MountRequest{
		{Share: true, Source: "p0", Fstype: "tmpfs", Target: "/data/a", SerialPort: "berth.share.0"},
		{Share: true, Source: "p1", Fstype: "9p", Target: "/data/b", SerialPort: "berth.agent"},
		{Share: true, Source: "p2", Fstype: "9p", Target: "/data/c", SerialPort: "berth.share.0", Port: 1234},
	} {
		if err := e.client.Mount(ctx, r); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("mount %s over serial port %q (fstype %s, port %d): %v, want invalid argument", r.Source, r.SerialPort, r.Fstype, r.Port, err)
		}
	}
}
