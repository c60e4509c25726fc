package guest

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/internal/testenv"
)

// These tests run over transporttest.NoHalfClose (newEnv): stdin's EOF
// must come in-band (CloseStdin with the byte count), and output must be
// complete without any half-close, as over vz's vsock.

// TestPipedStdinEOF is `echo hi | berth run -i IMAGE cat`, and a process
// that writes after its stdin's EOF.
func TestPipedStdinEOF(t *testing.T) {
	e := newEnv(t)
	out, errOut, st := e.run(t, &agentpb.CreateProcessRequest{Id: "cat", Args: []string{"cat"}}, "hi\n")
	if out != "hi\n" || errOut != "" || st.Code != 0 {
		t.Errorf("cat: stdout %q stderr %q exit %+v; want \"hi\\n\", exit 0", out, errOut, st)
	}
	out, errOut, st = e.run(t, &agentpb.CreateProcessRequest{Id: "after", Args: []string{"sh", "-c", "cat; echo after-eof; echo err >&2; exit 5"}}, "one\ntwo\n")
	if out != "one\ntwo\nafter-eof\n" || errOut != "err\n" || st.Code != 5 {
		t.Errorf("sh: stdout %q stderr %q exit %+v; want the input, then after-eof, exit 5", out, errOut, st)
	}
}

// TestLargeStdinInOrder sends several MiB of random bytes through cat:
// the EOF comes only after every byte, each in its place, although the
// host's CloseStdin leaves long before the guest has read them.
func TestLargeStdinInOrder(t *testing.T) {
	e := newEnv(t)
	payload := make([]byte, 6<<20+12345)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	var out, errb bytes.Buffer
	st, err := e.client.Run(ctxT(t), &agentpb.CreateProcessRequest{Id: "big", Args: []string{"cat"}},
		agent.Stdio{Stdin: bytes.NewReader(payload), Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != 0 || !bytes.Equal(out.Bytes(), payload) {
		t.Errorf("cat: exit %+v, %d bytes out (want %d), equal=%v, stderr %q", st, out.Len(), len(payload), bytes.Equal(out.Bytes(), payload), errb.String())
	}
}

// TestTtyInputEndsOutputComplete: a tty's input ends (the client's EOF)
// while the process runs on. As in Docker, that EOF does not end the
// terminal's input (no ^D: the cat started after it reads until timeout
// kills it, 143), and all the output that follows arrives.
func TestTtyInputEndsOutputComplete(t *testing.T) {
	e := newEnv(t)
	var out bytes.Buffer
	script := "read a; echo got:$a; timeout 1 cat; echo cat:$?; seq 1 20000; exit 3"
	st, err := e.client.Run(ctxT(t), &agentpb.CreateProcessRequest{Id: "tty", Args: []string{"sh", "-c", script}, Tty: true, Rows: 24, Cols: 80},
		agent.Stdio{Stdin: strings.NewReader("hello\n"), Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := 1; i <= 20000; i++ {
		fmt.Fprintf(&want, "%d\r\n", i)
	}
	got := out.String()
	if st.Code != 3 {
		t.Errorf("exit %+v, want 3", st)
	}
	if !strings.Contains(got, "got:hello\r\n") {
		t.Errorf("output lacks the input line: %q", head(got))
	}
	if !strings.Contains(got, "cat:143\r\n") {
		t.Errorf("the client's EOF ended the tty's input (want cat killed by timeout, 143): %q", head(got))
	}
	if !strings.HasSuffix(got, "cat:143\r\n"+want.String()) {
		t.Errorf("output after the input ended is incomplete: %d bytes, ends %q", len(got), got[max(0, len(got)-40):])
	}
}

// TestTtyCloseStdinAfterInput: an explicit CloseStdin on a tty types ^D
// after the input written before it, even when that input is still on
// its way.
func TestTtyCloseStdinAfterInput(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	var out testenv.SyncBuffer
	r := &agentpb.CreateProcessRequest{Id: "tty", Args: []string{"sh", "-c", "stty -echo; echo ready; cat; echo cat-ended"}, Tty: true}
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
	if _, err := e.client.StartProcess(ctx, r.Id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ready", func() bool { return strings.Contains(out.String(), "ready") })
	fmt.Fprint(pw, "line\n")
	waitFor(t, "cat to echo", func() bool { return strings.Contains(out.String(), "line\r\n") })
	if err := e.client.CloseStdin(ctx, r.Id); err != nil {
		t.Fatal(err)
	}
	st, err := e.client.WaitProcess(ctx, r.Id)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(); err != nil {
		t.Fatal(err)
	}
	if st.Code != 0 || !strings.HasSuffix(out.String(), "cat-ended\r\n") {
		t.Errorf("exit %+v output %q; want cat ended by ^D, exit 0", st, out.String())
	}
}

func head(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// feedEnd is one end of a test feed: what the process would read.
type feedEnd struct {
	bytes.Buffer
	eofs []int // the delivered length at each EOF
}

func (f *feedEnd) sink(once bool) feedSink {
	return feedSink{w: &f.Buffer, eof: func() { f.eofs = append(f.eofs, f.Len()) }, once: once}
}

// runFeed runs a feed over a net.Pipe (no half-close, no buffering) with
// the host's writes and CloseStdin calls done by host, and returns what
// was delivered once the feed stopped.
func runFeed(t *testing.T, once bool, host func(f *stdinFeed, c net.Conn)) *feedEnd {
	t.Helper()
	f := newStdinFeed()
	hc, gc := net.Pipe()
	defer hc.Close()
	var end feedEnd
	exited := make(chan struct{})
	done := make(chan struct{})
	go func() { f.run(gc, end.sink(once), exited); close(done) }()
	host(f, hc)
	if once {
		hc.Close() // a pipe's feed ends with its connection
	} else {
		time.Sleep(50 * time.Millisecond)
		close(exited)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("feed did not stop")
	}
	return &end
}

// TestStdinFeedOrder: CloseStdin's EOF lands exactly after the bytes it
// counts, whether it comes before them, in the middle of a chunk, or
// after; a pipe drops what follows, a terminal takes it.
func TestStdinFeedOrder(t *testing.T) {
	t.Run("before the bytes", func(t *testing.T) {
		end := runFeed(t, true, func(f *stdinFeed, c net.Conn) {
			f.closeAfter(10)
			time.Sleep(20 * time.Millisecond)
			c.Write([]byte("0123456789"))
		})
		if end.String() != "0123456789" || fmt.Sprint(end.eofs) != "[10]" {
			t.Errorf("delivered %q, EOFs at %v; want 10 bytes, then EOF", end.String(), end.eofs)
		}
	})
	t.Run("inside a chunk", func(t *testing.T) {
		end := runFeed(t, true, func(f *stdinFeed, c net.Conn) {
			f.closeAfter(4)
			c.Write([]byte("0123456789")) // a host that wrote past its count
		})
		if end.String() != "0123" || fmt.Sprint(end.eofs) != "[4]" {
			t.Errorf("delivered %q, EOFs at %v; want 4 bytes, then EOF", end.String(), end.eofs)
		}
	})
	t.Run("zero: at once", func(t *testing.T) {
		end := runFeed(t, true, func(f *stdinFeed, c net.Conn) {
			f.closeAfter(0)
			time.Sleep(20 * time.Millisecond)
			c.Write([]byte("late"))
		})
		if end.String() != "" || fmt.Sprint(end.eofs) != "[0]" {
			t.Errorf("delivered %q, EOFs at %v; want EOF first", end.String(), end.eofs)
		}
	})
	t.Run("connection ends", func(t *testing.T) {
		end := runFeed(t, true, func(f *stdinFeed, c net.Conn) { c.Write([]byte("abc")) })
		if end.String() != "abc" || fmt.Sprint(end.eofs) != "[3]" {
			t.Errorf("delivered %q, EOFs at %v; want EOF when the connection ended", end.String(), end.eofs)
		}
	})
	t.Run("terminal", func(t *testing.T) {
		end := runFeed(t, false, func(f *stdinFeed, c net.Conn) {
			f.closeAfter(3)
			c.Write([]byte("abcdef"))
			time.Sleep(20 * time.Millisecond)
			f.closeAfter(6)
			time.Sleep(20 * time.Millisecond)
			c.Write([]byte("gh"))
		})
		if end.String() != "abcdefgh" || fmt.Sprint(end.eofs) != "[3 6]" {
			t.Errorf("delivered %q, ^D at %v; want ^D after abc and after def, then gh", end.String(), end.eofs)
		}
	})
}

// TestTtyUnreadInputAtExit: a tty process exits with much of the host's
// input unread; the guest closes the stream anyway, and the host still
// gets all the output and no error (a socket reports that close as a
// reset, after the last byte).
func TestTtyUnreadInputAtExit(t *testing.T) {
	e := newEnv(t)
	var out bytes.Buffer
	st, err := e.client.Run(ctxT(t), &agentpb.CreateProcessRequest{Id: "tty", Args: []string{"sh", "-c", "stty raw -echo; seq 1 3000; exit 2"}, Tty: true},
		agent.Stdio{Stdin: bytes.NewReader(bytes.Repeat([]byte("x"), 4<<20)), Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := 1; i <= 3000; i++ {
		fmt.Fprintf(&want, "%d\n", i) // raw: no \r added
	}
	// Input typed before stty took effect may be echoed, even amid the
	// output: only digits and newlines are the process's.
	got := strings.ReplaceAll(out.String(), "x", "")
	if st.Code != 2 || !strings.HasSuffix(got, want.String()) {
		t.Errorf("exit %+v, %d bytes out, ends %q; want exit 2 and 1..3000", st, out.Len(), got[max(0, len(got)-40):])
	}
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrShortWrite }

// TestOutputWriterFails: when the host's writer fails, the rest of the
// output is drained (the process never blocks on it) and Run reports the
// failure.
func TestOutputWriterFails(t *testing.T) {
	e := newEnv(t)
	var errb bytes.Buffer
	st, err := e.client.Run(ctxT(t), &agentpb.CreateProcessRequest{Id: "seq", Args: []string{"sh", "-c", "seq 1 100000; echo done >&2"}},
		agent.Stdio{Stdout: failingWriter{}, Stderr: &errb})
	if err == nil || !strings.Contains(err.Error(), "write output") {
		t.Errorf("Run = %v; want the output's write error", err)
	}
	if st.Code != 0 || errb.String() != "done\n" {
		t.Errorf("exit %+v, stderr %q; want the process to finish (0, done)", st, errb.String())
	}
}
