package cli

import (
	"context"
	"errors"
	"io"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/moby/moby/api/pkg/stdcopy"
	mobycontainer "github.com/moby/moby/api/types/container"
	docker "github.com/moby/moby/client"
)

// session is how the CLI joins a container's streams.
type session struct {
	// cond is the wait condition whose exit code the session returns.
	cond       mobycontainer.WaitCondition
	stdin, tty bool
	// start starts the container once attached (run, start -a).
	start bool
}

// runAttached attaches to a created container, starts it and relays its
// streams until it exits, then exits with its code.
func (e *env) runAttached(ctx context.Context, cl *client.Client, id string, f *createFlags, t *terminal) error {
	cond := mobycontainer.WaitConditionNextExit
	if f.rm {
		cond = mobycontainer.WaitConditionRemoved
	}
	return e.attachSession(ctx, cl, id, session{cond: cond, stdin: f.interactive, tty: f.tty, start: true}, t)
}

// attachSession asks for the exit code first (so a quick exit is not
// missed), attaches, puts the terminal in raw mode for an interactive tty,
// optionally starts the container, follows the window size, relays the
// streams until the output ends, restores the terminal and returns the
// container's exit code as an ExitError.
func (e *env) attachSession(ctx context.Context, cl *client.Client, id string, o session, t *terminal) error {
	exit, err := waitExit(ctx, cl, id, o.cond)
	if err != nil {
		return err
	}
	hj, err := cl.ContainerAttach(ctx, id, docker.ContainerAttachOptions{Stream: true, Stdin: o.stdin, Stdout: true, Stderr: true})
	if err != nil {
		return err
	}
	defer hj.Close()
	if o.tty && o.stdin && t != nil {
		if err := t.raw(); err != nil {
			return err
		}
		defer t.restore()
	}
	if o.start {
		if _, err := cl.ContainerStart(ctx, id, docker.ContainerStartOptions{}); err != nil {
			t.restore()
			return startError(err)
		}
	}
	if o.tty {
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		t.watchResize(rctx, func(r, c uint) {
			_, _ = cl.ContainerResize(ctx, id, docker.ContainerResizeOptions{Height: r, Width: c})
		})
	}
	relay(e.io, &hj.HijackedResponse, o.stdin, o.tty)
	t.restore()
	code, err := exit()
	if err != nil {
		return err
	}
	return &ExitError{Code: code}
}

// waitExit asks the daemon to report when container id meets cond. It
// returns once the daemon accepted the request (an unknown container is
// an error here), so an exit that happens next is never missed; the
// returned function blocks until the exit code arrives.
func waitExit(ctx context.Context, cl *client.Client, id string, cond mobycontainer.WaitCondition) (func() (int, error), error) {
	res := cl.ContainerWait(ctx, id, docker.ContainerWaitOptions{Condition: cond})
	// Docker's client delivers a refused request on Error before it
	// returns.
	select {
	case err := <-res.Error:
		return nil, err
	default:
	}
	return func() (int, error) {
		select {
		case w := <-res.Result:
			if w.Error != nil && w.Error.Message != "" {
				return 0, errors.New(w.Error.Message)
			}
			return int(w.StatusCode), nil
		case err := <-res.Error:
			return 0, err
		}
	}, nil
}

// relay copies stdin into a hijacked stream and its output to stdout and
// stderr until the output ends.
func relay(stdio IO, hj *docker.HijackedResponse, stdin, tty bool) {
	if stdin && stdio.In != nil {
		go func() {
			_, _ = io.Copy(hj.Conn, stdio.In)
			_ = hj.CloseWrite()
		}()
	}
	if tty {
		_, _ = io.Copy(stdio.Out, hj.Reader)
	} else {
		_, _ = stdcopy.StdCopy(stdio.Out, stdio.Err, hj.Reader)
	}
}
