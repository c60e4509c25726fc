package agent_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/agent/transport"
)

// A container's main process, run to completion, from the Dialer a VMM
// hands out (here the unix-socket transport a test guest listens on).
func ExampleClient_Run() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var dialer transport.Dialer = transport.NewUnix("/run/berth/test-guest")
	c, err := agent.Dial(ctx, dialer) // waits while the guest boots
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	st, err := c.Run(ctx, &agentpb.CreateProcessRequest{
		Id:   "main",
		Args: []string{"/bin/sh", "-c", "echo hello; exit 3"},
	}, agent.Stdio{Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		fmt.Println(err) // errdefs.ErrNotFound for a missing binary: exit 127
		return
	}
	fmt.Println("exit code", st.Code) // 128+n after signal n
}
