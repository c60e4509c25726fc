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
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/internal/demoimage"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// Run a command in its own micro-VM with the engine alone: open an
// engine on a home, load an image (here the busybox demo image, made
// locally), create, start, wait, read the logs.
func Example() {
	if err := runExample(context.Background()); err != nil {
		fmt.Println("error:", err)
	}
	// Output:
	// hello from Linux in a micro-VM
	// exit code 0
}

func runExample(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "berth-example")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	h, err := home.Resolve(filepath.Join(dir, "home"))
	if err != nil {
		return err
	}
	eng, err := engine.New(ctx, h)
	if err != nil {
		return err
	}
	defer eng.Close()

	img, err := demoimage.Busybox("/bin/busybox", runtime.GOARCH, nil)
	if err != nil {
		return err
	}
	var tar bytes.Buffer
	if err := tarball.Write(name.MustParseReference("demo:latest"), img, &tar); err != nil {
		return err
	}
	if _, err := eng.Images().Import(ctx, &tar); err != nil {
		return err
	}

	cm := eng.Containers()
	c, err := cm.Create(ctx, container.CreateRequest{Config: &mobycontainer.Config{
		Image: "demo", Cmd: []string{"sh", "-c", "echo hello from $(uname -s) in a micro-VM"},
	}})
	if err != nil {
		return err
	}
	defer cm.Remove(ctx, c.ID(), true)
	if err := cm.Start(ctx, c.ID()); err != nil {
		return err
	}
	code, err := cm.Wait(ctx, c.ID(), container.WaitNotRunning)
	if err != nil {
		return err
	}
	err = cm.Logs(ctx, c.ID(), container.LogOptions{Stdout: true, Tail: -1}, func(e container.LogEntry) error {
		fmt.Print(e.Log)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Println("exit code", code)
	return nil
}
