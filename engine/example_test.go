package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/berthvm/berth/engine"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/demoimage"
	"github.com/berthvm/berth/engine/home"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// Run a command in its own micro-VM with the engine alone: open an
// engine on a home, load an image (here the busybox demo image, made
// locally), create, start, wait, read the logs.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "berth-example")
	defer os.RemoveAll(dir)
	h, _ := home.Resolve(filepath.Join(dir, "home"))
	eng, err := engine.New(ctx, h)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer eng.Close()

	img, _ := demoimage.Busybox("/bin/busybox", runtime.GOARCH, nil)
	var tar bytes.Buffer
	_ = tarball.Write(name.MustParseReference("demo:latest"), img, &tar)
	if _, err := eng.Images().Import(ctx, &tar); err != nil {
		fmt.Println(err)
		return
	}

	cm := eng.Containers()
	c, _ := cm.Create(ctx, container.CreateRequest{Config: &mobycontainer.Config{
		Image: "demo", Cmd: []string{"sh", "-c", "echo hello from $(uname -s) in a micro-VM"},
	}})
	if err := cm.Start(ctx, c.ID()); err != nil {
		fmt.Println(err)
		return
	}
	code, _ := cm.Wait(ctx, c.ID(), container.WaitNotRunning)
	_ = cm.Logs(ctx, c.ID(), container.LogOptions{Stdout: true, Tail: -1}, func(e container.LogEntry) error {
		fmt.Print(e.Log)
		return nil
	})
	fmt.Println("exit code", code)
	// Output:
	// hello from Linux in a micro-VM
	// exit code 0
}
