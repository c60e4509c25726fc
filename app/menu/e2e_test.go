package menu

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/app/internal/human"
	"github.com/berthvm/berth/internal/testenv"
	"github.com/coder/websocket"
)

// TestMenuEndToEnd drives a real engine (in-process, QEMU backend, one
// micro-VM) only through menu items and the Dispatcher, as a user's
// clicks would: Pull Image… (a real registry), the image's Run… (with
// its dialog filled), Copy IP, Open Shell (a terminal session whose
// WebSocket runs a command), Share Folder… (the file seen through a
// shell) and Stop Sharing, Stop and Remove, checking the model after
// each event arrives.
func TestMenuEndToEnd(t *testing.T) {
	begin := time.Now()
	h := engineHome(t)
	startEngine(t, h)
	st, d, _ := menuFor(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := waitFor(t, st, "running", func(s Snapshot) bool { return s.Engine.State == EngineRunning })
	if s.Kernel.Error != "" {
		testenv.Unavailable(t, "no guest kernel: %s", s.Kernel.Error)
	}
	t.Logf("engine backend: %s", s.Engine.Backend)
	menu := func() Menu { return Build(st.Snapshot(), time.Now()) }

	// Pull Image…, its dialog filled.
	reg := testenv.StartRegistry(t)
	ref := reg.Push(t, "menu/busybox", "1", testenv.BusyboxImage(t, nil))
	pull, err := mustItem(t, menu(), "Pull Image…").enabled(t).Action.WithInput(map[string]string{"ref": ref})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Do(ctx, pull); err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, st, "the pulled image", func(s Snapshot) bool { return hasImage(s, ref) })
	imageTitle := ref + " — " + human.Bytes(s.Images[0].Size)

	// The image's Run…, with a name and a command that keeps it up.
	run, err := mustItem(t, menu(), imageTitle, "Run…").enabled(t).Action.WithInput(map[string]string{"name": "menu-e2e", "cmd": "sleep 1000000"})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	r, err := d.Do(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Run: the container started in %v", time.Since(started).Round(time.Millisecond))
	s = waitFor(t, st, "the container running with an IP", func(s Snapshot) bool {
		c, ok := containerNamed(s, "menu-e2e")
		return ok && c.State == "running" && c.IP != "" && !c.StartedAt.IsZero()
	})
	c, _ := containerNamed(s, "menu-e2e")
	if c.ID != r.Container || c.Image != ref {
		t.Errorf("container %+v; Run returned %q", c, r.Container)
	}
	title := "menu-e2e — " + ref
	m := menu()
	first(t, m, "Berth is running · 1 container running")
	if it := mustItem(t, m, title); it.State != On {
		t.Errorf("the running container is not checked")
	}
	mustItem(t, m, title, "IP: "+c.IP)
	if q := mustItem(t, m, "Quit Berth"); q.Action.Running != 1 || q.Confirm == "" {
		t.Errorf("quit with a container running: %+v", q)
	}

	// Copy IP, Open in Terminal.app, Logs.
	r, err = d.Do(ctx, mustItem(t, m, title, "Copy IP").enabled(t).Action)
	if err != nil || r.Copy != c.IP {
		t.Errorf("copy IP: %+v, %v; want %s", r, err, c.IP)
	}
	if r, err = d.Do(ctx, mustItem(t, m, title, "Open in Terminal.app").Action); err != nil || r.TerminalCommand != "berth shell menu-e2e" {
		t.Errorf("open in Terminal.app: %+v, %v", r, err)
	}
	if r, err = d.Do(ctx, mustItem(t, m, title, "Logs").Action); err != nil || r.TerminalCommand != "berth logs --follow --tail 200 menu-e2e" {
		t.Errorf("logs: %+v, %v", r, err)
	}

	// Open Shell: a terminal page URL whose session runs a command.
	r, err = d.Do(ctx, mustItem(t, m, title, "Open Shell").enabled(t).Action)
	if err != nil {
		t.Fatal(err)
	}
	if got := shellEcho(t, ctx, r.URL, "echo $((6*7)) D\"\"ONE\r", "42 DONE"); !strings.Contains(got, "42 DONE") {
		t.Fatalf("the shell said %q", got)
	}

	// Share Folder… (its folder chooser answered): the folder is in the
	// model and, through a shell (an exec), in the container; Stop
	// Sharing takes it out of both.
	dir := filepath.Join(t.TempDir(), "menu-share")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("shared-from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	share, err := mustItem(t, menu(), title, "Share Folder…").enabled(t).Action.WithInput(map[string]string{"path": dir})
	if err != nil {
		t.Fatal(err)
	}
	shared := time.Now()
	if r, err = d.Do(ctx, share); err != nil {
		t.Fatal(err)
	}
	if want := " with menu-e2e at /mnt/menu-share"; !strings.HasSuffix(r.Message, want) {
		t.Errorf("share: message %q, want it to end %q", r.Message, want)
	}
	t.Logf("Share Folder: mounted in %v", time.Since(shared).Round(time.Millisecond))
	s = waitFor(t, st, "the share in the model", func(s Snapshot) bool {
		c, _ := containerNamed(s, "menu-e2e")
		return len(c.Shares) == 1
	})
	c, _ = containerNamed(s, "menu-e2e")
	if sh := c.Shares[0]; sh.ContainerPath != "/mnt/menu-share" || filepath.Base(sh.HostPath) != "menu-share" || sh.ReadOnly {
		t.Errorf("share in the model: %+v", sh)
	}
	shareTitle := c.Shares[0].HostPath + " → /mnt/menu-share"
	stop := mustItem(t, menu(), title, "Shared Folders", shareTitle, "Stop Sharing").enabled(t)
	r, err = d.Do(ctx, mustItem(t, menu(), title, "Open Shell").enabled(t).Action)
	if err != nil {
		t.Fatal(err)
	}
	if got := shellEcho(t, ctx, r.URL, "cat /mnt/menu-share/hello.txt; echo D\"\"ONE\r", "DONE"); !strings.Contains(got, "shared-from-host") {
		t.Fatalf("the shared file in the container: the shell said %q", got)
	}
	if _, err := d.Do(ctx, stop.Action); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "the share gone from the model", func(s Snapshot) bool {
		c, _ := containerNamed(s, "menu-e2e")
		return len(c.Shares) == 0
	})
	noItem(t, menu(), title, "Shared Folders")
	r, err = d.Do(ctx, mustItem(t, menu(), title, "Open Shell").enabled(t).Action)
	if err != nil {
		t.Fatal(err)
	}
	if got := shellEcho(t, ctx, r.URL, "test -e /mnt/menu-share/hello.txt || echo G\"\"ONE\r", "GONE"); !strings.Contains(got, "GONE") {
		t.Fatalf("after Stop Sharing the shell said %q", got)
	}

	// Stop: exited, no error notice (the stop was asked for).
	if _, err := d.Do(ctx, mustItem(t, menu(), title, "Stop").enabled(t).Action); err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, st, "the container exited", func(s Snapshot) bool { c, _ := containerNamed(s, "menu-e2e"); return c.State == "exited" })
	m = Build(s, time.Now())
	first(t, m, "Berth is running")
	mustItem(t, m, title, "Open Shell").disabledBecause(t, "The container is not running.")
	mustItem(t, m, title, "Copy IP").disabledBecause(t, "The container has no IP address: it is not running.")
	mustItem(t, m, title, "Start").enabled(t)
	if c, _ := containerNamed(s, "menu-e2e"); c.IP != "" || c.FinishedAt.IsZero() {
		t.Errorf("stopped container: %+v", c)
	}
	select {
	case n := <-st.Notices():
		if n.Err {
			t.Errorf("a stop asked for notified %+v", n)
		}
	default:
	}

	// Remove.
	rm := mustItem(t, m, title, "Remove…").enabled(t)
	if rm.Action.Force || rm.Confirm == "" {
		t.Errorf("remove of a stopped container: %+v", rm)
	}
	if _, err := d.Do(ctx, rm.Action); err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, st, "the container gone", func(s Snapshot) bool { _, ok := containerNamed(s, "menu-e2e"); return !ok })
	mustItem(t, Build(s, time.Now()), "No containers")
	t.Logf("end to end in %v", time.Since(begin).Round(time.Millisecond))
}

// shellEcho opens the terminal page's WebSocket as the page does
// (docs/terminal.md: hello, resize, binary input and output, acks),
// types input and returns the output up to want.
func shellEcho(t *testing.T, ctx context.Context, pageURL, input, want string) string {
	t.Helper()
	base, token, ok := strings.Cut(pageURL, "/terminal/#token=")
	if !ok || !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("terminal URL %q: want http://127.0.0.1:PORT/terminal/#token=TOKEN", pageURL)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(base, "http://", "ws://", 1)+"/terminal/ws?token="+token,
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {base}}})
	if err != nil {
		t.Fatalf("dial the terminal: %v", err)
	}
	defer c.CloseNow()
	typ, b, err := c.Read(ctx)
	var hello struct {
		Type      string
		Container struct{ Name, State string }
	}
	if err != nil || typ != websocket.MessageText || json.Unmarshal(b, &hello) != nil || hello.Type != "hello" || hello.Container.Name != "menu-e2e" {
		t.Fatalf("first message %q (%v), want hello for menu-e2e", b, err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"resize","rows":24,"cols":80}`)); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageBinary, []byte(input)); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for !strings.Contains(out.String(), want) {
		typ, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read the terminal: %v; output so far %q", err, out.String())
		}
		if typ == websocket.MessageText {
			t.Fatalf("the session said %s; output so far %q", b, out.String())
		}
		out.Write(b)
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"ack","bytes":`+strconv.Itoa(len(b))+`}`)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	return out.String()
}
