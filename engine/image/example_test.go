package image_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/berthvm/berth/engine/image"
)

// Pull an image with progress, then hand its layers to a rootfs builder.
// (Compiled, not run: it needs a registry.)
func ExampleStore_Pull() {
	ctx := context.Background()
	s, err := image.Open(filepath.Join(os.Getenv("HOME"), ".berth", "images"))
	if err != nil {
		log.Fatal(err)
	}
	res, err := s.Pull(ctx, "alpine:3.20", image.WithProgress(func(e image.Event) {
		fmt.Printf("%s: %s %d/%d\n", e.ID, e.State, e.Current, e.Total)
	}))
	if err != nil {
		log.Fatal(err) // errors.Is(err, errdefs.ErrNotFound), ErrUnauthorized, ...
	}
	fmt.Println("Digest:", res.Digest)
	img, err := s.Image(ctx, res.Image.ID) // a v1.Image
	if err != nil {
		log.Fatal(err)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, _ := l.Uncompressed() // a tar stream for the ext4 writer
		rc.Close()
	}
	fmt.Println(res.Image.Config.Config.Cmd)
}
