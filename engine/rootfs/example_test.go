package rootfs_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/berthvm/berth/engine/rootfs"
)

// Two layers become one ext4 image; the second deletes a file of the
// first with a whiteout. The image is then read back without mounting it.
func ExampleUnpackLayers() {
	layer := func(files map[string]string) io.Reader {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for name, body := range files {
			tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
			tw.Write([]byte(body))
		}
		tw.Close()
		return &buf
	}
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	img := filepath.Join(dir, "rootfs.ext4")

	err := rootfs.UnpackLayers(context.Background(), img, []io.Reader{
		layer(map[string]string{"etc/hostname": "berth\n", "tmp/junk": "x"}),
		layer(map[string]string{"tmp/.wh.junk": ""}),
	})
	if err != nil {
		log.Fatal(err)
	}
	hostname, _ := rootfs.ReadFile(img, "/etc/hostname")
	_, err = rootfs.ReadFile(img, "/tmp/junk")
	fmt.Printf("hostname %q; junk deleted: %v\n", hostname, err != nil)
	// Output: hostname "berth\n"; junk deleted: true
}
