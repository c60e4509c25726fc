// Command demoimage writes Berth's demo image — Debian's static busybox
// with its applets, as a `docker save` tarball — so `make run` can import
// an image with no network:
//
//	go run ./app/demoimage -o bin/demo.tar [-tag demo:latest] [-busybox /bin/busybox] [-arch amd64]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/berthvm/berth/internal/demoimage"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	out := flag.String("o", "demo.tar", "output tarball")
	tag := flag.String("tag", "demo:latest", "the image's reference")
	busybox := flag.String("busybox", "/bin/busybox", "static busybox binary (Debian: busybox-static)")
	arch := flag.String("arch", runtime.GOARCH, "image architecture (must match the busybox binary)")
	flag.Parse()
	if err := run(*out, *tag, *busybox, *arch); err != nil {
		fmt.Fprintf(os.Stderr, "demoimage: %v\n", err)
		os.Exit(1)
	}
}

func run(out, tag, busybox, arch string) error {
	img, err := demoimage.Busybox(busybox, arch, map[string]string{
		"etc/motd": "Welcome to Berth: this shell runs in its own micro-VM.\n",
	})
	if err != nil {
		return fmt.Errorf("%w (on Debian: apt-get install busybox-static)", err)
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}
