package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
	"github.com/berthvm/berth/engine/agent/transport/transporttest"
	"github.com/berthvm/berth/engine/errdefs"
)

// fakeAgent answers Ping, and fails WaitProcess with a classed error;
// the other calls are the embedded nil interface's (they are not used).
type fakeAgent struct {
	agentpb.AgentService
}

func (fakeAgent) Ping(context.Context, *agentpb.PingRequest) (*agentpb.PingResponse, error) {
	return &agentpb.PingResponse{Version: "fake"}, nil
}

func (fakeAgent) WaitProcess(_ context.Context, r *agentpb.WaitProcessRequest) (*agentpb.WaitProcessResponse, error) {
	if r.Id == "ghost" {
		return nil, errorStatus(errdefs.NotFound(errors.New("no such process: ghost")))
	}
	return &agentpb.WaitProcessResponse{ExitCode: 137, Signal: 9, ExitedAtNs: 1}, nil
}

// errorStatus gives err the gRPC code the guest's interceptor gives a
// not-found error.
func errorStatus(err error) error {
	return status.Error(codes.NotFound, err.Error())
}

func serveFake(t *testing.T, tr *transport.Unix) {
	t.Helper()
	l, err := tr.ListenPort(transport.AgentPort)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	agentpb.RegisterAgentService(s, fakeAgent{})
	go s.Serve(context.Background(), l)
	t.Cleanup(func() { s.Close() })
}

func shortDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "bc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestDialWaitsForTheGuest(t *testing.T) {
	tr := transport.NewUnix(shortDir(t))
	go func() {
		time.Sleep(200 * time.Millisecond) // the guest "boots"
		serveFake(t, tr)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v, err := c.Version(ctx); err != nil || v != "fake" {
		t.Errorf("Version = %q, %v", v, err)
	}
	st, err := c.WaitProcess(ctx, "p")
	if err != nil || st.Code != 137 || st.Signal != 9 {
		t.Errorf("WaitProcess = %+v, %v", st, err)
	}
	_, err = c.WaitProcess(ctx, "ghost")
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "ghost") {
		t.Errorf("WaitProcess(ghost) = %v, want a NotFound error naming ghost", err)
	}
}

func TestDialGivesUpWithContext(t *testing.T) {
	tr := transport.NewUnix(shortDir(t))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, tr)
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "1024") {
		t.Errorf("Dial with no guest = %v, want unavailable naming port 1024", err)
	}
}

// syncWriter serializes writes to w with mu.
type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (s syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// stdinAgent is a fake guest for Attach: it records CloseStdin's byte
// count; fakeAgent answers the rest.
type stdinAgent struct {
	fakeAgent
	closes chan *agentpb.CloseStdinRequest
}

func (a stdinAgent) CloseStdin(_ context.Context, r *agentpb.CloseStdinRequest) (*agentpb.Empty, error) {
	a.closes <- r
	return &agentpb.Empty{}, nil
}

// TestAttachStdinEOFInBand checks the stdio helper against a fake guest
// over a transport without half-close: stdin's EOF comes as CloseStdin
// carrying the count of bytes written, the stdin connection stays open
// (no half-close, no close), and the output is complete when Wait
// returns after the guest closes the stream.
func TestAttachStdinEOFInBand(t *testing.T) {
	u := transport.NewUnix(shortDir(t))
	tr := transporttest.NewNoHalfClose(u)
	agentL, err := tr.ListenPort(transport.AgentPort)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	closes := make(chan *agentpb.CloseStdinRequest, 1)
	agentpb.RegisterAgentService(s, stdinAgent{closes: closes})
	go s.Serve(context.Background(), agentL)
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	input := strings.Repeat("hello over stdio ", 10000)
	r := &agentpb.CreateProcessRequest{Id: "echo"}
	var out bytes.Buffer
	stdio := Stdio{Stdin: strings.NewReader(input), Stdout: &out}
	c.AssignPorts(r, stdio)
	if r.StdinPort == 0 || r.StdoutPort == 0 || r.StderrPort != 0 || r.StdinPort == r.StdoutPort {
		t.Fatalf("ports %d/%d/%d", r.StdinPort, r.StdoutPort, r.StderrPort)
	}
	// The guest side: read stdin up to CloseStdin's count, check that
	// the connection is still open, then echo and close stdout.
	inL, _ := tr.ListenPort(r.StdinPort)
	outL, _ := tr.ListenPort(r.StdoutPort)
	guest := make(chan error, 1)
	go func() {
		guest <- func() error {
			in, err := inL.Accept()
			if err != nil {
				return err
			}
			defer in.Close()
			o, err := outL.Accept()
			if err != nil {
				return err
			}
			defer o.Close()
			// Read stdin as it comes (the host's writes may need it).
			var mu sync.Mutex
			var got bytes.Buffer
			var ended error
			go func() {
				_, err := io.Copy(syncWriter{&mu, &got}, in)
				mu.Lock()
				ended = fmt.Errorf("the stdin connection ended (%v)", err)
				mu.Unlock()
			}()
			var cl *agentpb.CloseStdinRequest
			select {
			case cl = <-closes:
			case <-ctx.Done():
				return errors.New("no CloseStdin")
			}
			if cl.Id != "echo" || cl.StdinBytes != uint64(len(input)) {
				return fmt.Errorf("CloseStdin %+v, want id echo and %d bytes", cl, len(input))
			}
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				mu.Lock()
				n := got.Len()
				mu.Unlock()
				if n == len(input) {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("read %d of the %d counted stdin bytes", n, len(input))
				}
			}
			time.Sleep(100 * time.Millisecond) // a half-close or close would show now
			mu.Lock()
			b, err := bytes.Clone(got.Bytes()), ended
			mu.Unlock()
			if err != nil {
				return fmt.Errorf("after CloseStdin: %w; want it open until Close", err)
			}
			o.Write(b)
			return nil
		}()
	}()
	a, err := c.Attach(ctx, r, stdio)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := <-guest; err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(); err != nil {
		t.Fatal(err)
	}
	if out.String() != input {
		t.Errorf("stdout: %d bytes, want %d", out.Len(), len(input))
	}
}

func TestSignalNumber(t *testing.T) {
	for in, want := range map[string]int{"TERM": 15, "SIGKILL": 9, "sigusr1": 10, "28": 28, "WINCH": 28, "RTMIN+2": 36, "SIGRTMAX": 64} {
		if got, err := SignalNumber(in); err != nil || got != want {
			t.Errorf("SignalNumber(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "NOPE", "0", "65", "RTMIN+40"} {
		if _, err := SignalNumber(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("SignalNumber(%q) = %v, want invalid argument", bad, err)
		}
	}
}
