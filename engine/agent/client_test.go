package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
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

// TestAttachHalfClose checks the stdio helper against a guest-side echo:
// stdin's EOF reaches the guest as a half-close, and the output is
// complete when Wait returns.
func TestAttachHalfClose(t *testing.T) {
	tr := transport.NewUnix(shortDir(t))
	serveFake(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &agentpb.CreateProcessRequest{Id: "echo"}
	var out bytes.Buffer
	stdio := Stdio{Stdin: strings.NewReader("hello over stdio"), Stdout: &out}
	c.AssignPorts(r, stdio)
	if r.StdinPort == 0 || r.StdoutPort == 0 || r.StderrPort != 0 || r.StdinPort == r.StdoutPort {
		t.Fatalf("ports %d/%d/%d", r.StdinPort, r.StdoutPort, r.StderrPort)
	}
	// The guest side: copy stdin to stdout once stdin ends.
	inL, _ := tr.ListenPort(r.StdinPort)
	outL, _ := tr.ListenPort(r.StdoutPort)
	go func() {
		in, err := inL.Accept()
		if err != nil {
			return
		}
		o, err := outL.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(in) // returns at the host's half-close
		o.Write(b)
		o.Close()
		in.Close()
	}()
	a, err := c.Attach(ctx, r, stdio)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Wait(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello over stdio" {
		t.Errorf("stdout = %q", out.String())
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
