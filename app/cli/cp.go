package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/internal/tarcopy"
	cerrdefs "github.com/containerd/errdefs"
	docker "github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// berth cp: files between the host and a running container, as docker cp
// copies them, through GET and PUT /containers/{id}/archive. On the
// host's side the tar is written and read through an os.Root of the
// destination's folder (internal/tarcopy), so an archive from a
// container cannot place anything outside it.

func newCpCmd(e *env) *cobra.Command {
	var keepOwner bool
	c := &cobra.Command{
		Use:   "cp [flags] CONTAINER:SRC_PATH DEST_PATH|-\n  berth cp [flags] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files between a running container and the host",
		Long: "Copy files between a running container and the host, as docker cp does.\n" +
			"A path in the container is absolute (a relative one starts at /). '-' as the\n" +
			"source reads a tar archive from stdin; as the destination it writes one to stdout.",
		Args: cobra.ExactArgs(2),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			srcCtr, srcPath := splitCopyArg(args[0])
			dstCtr, dstPath := splitCopyArg(args[1])
			switch {
			case srcCtr != "" && dstCtr != "":
				return errors.New("berth cp: copying between two containers is not supported; copy to the host first")
			case srcCtr != "":
				return copyFromContainer(cmd.Context(), e, cl, srcCtr, srcPath, dstPath, keepOwner)
			case dstCtr != "":
				return copyToContainer(cmd.Context(), e, cl, srcPath, dstCtr, dstPath, keepOwner)
			}
			return errors.New("berth cp: one of the paths must name a container (CONTAINER:PATH)")
		}),
	}
	c.Flags().BoolVarP(&keepOwner, "archive", "a", false, "keep the files' owners (uid:gid)")
	return c
}

// splitCopyArg splits "CONTAINER:PATH"; a path that starts with "/" or
// "." is local even with a colon in it (as docker cp reads it).
func splitCopyArg(arg string) (ctr, p string) {
	if strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") {
		return "", arg
	}
	ctr, p, ok := strings.Cut(arg, ":")
	if !ok || ctr == "" {
		return "", arg
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return ctr, p
}

func copyFromContainer(ctx context.Context, e *env, cl *client.Client, ctr, src, dst string, keepOwner bool) error {
	res, err := cl.CopyFromContainer(ctx, ctr, docker.CopyFromContainerOptions{SourcePath: src})
	if err != nil {
		return fmt.Errorf("berth cp: %w", err)
	}
	defer res.Content.Close()
	if dst == "-" {
		_, err := io.Copy(e.io.Out, res.Content)
		return err
	}
	// Into dst when it is a folder; else as dst, a new name in its folder.
	dir, opts := dst, tarcopy.ExtractOptions{KeepOwner: keepOwner, UID: -1, GID: -1}
	fi, err := os.Stat(dst)
	switch {
	case err == nil && fi.IsDir():
	case errors.Is(err, fs.ErrNotExist) && res.Stat.Name == "." && res.Stat.Mode.IsDir():
		// "DIR/.": its contents, into a new folder dst.
		if err := os.Mkdir(dst, 0o755); err != nil {
			return fmt.Errorf("berth cp: %w", err)
		}
	case err == nil && res.Stat.Mode.IsDir():
		return fmt.Errorf("berth cp: cannot copy the folder %s:%s onto the file %s", ctr, src, dst)
	case err == nil || errors.Is(err, fs.ErrNotExist):
		if strings.HasSuffix(dst, string(filepath.Separator)) {
			return fmt.Errorf("berth cp: the folder %s does not exist", dst)
		}
		dir = filepath.Dir(dst)
		opts.Rename.From, opts.Rename.To = res.Stat.Name, filepath.Base(dst)
	default:
		return fmt.Errorf("berth cp: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("berth cp: the destination folder: %w", err)
	}
	defer root.Close()
	if err := tarcopy.Extract(ctx, root, res.Content, opts); err != nil {
		return fmt.Errorf("berth cp %s:%s to %s: %w", ctr, src, dst, err)
	}
	return nil
}

func copyToContainer(ctx context.Context, e *env, cl *client.Client, src, ctr, dst string, keepOwner bool) error {
	put := func(dir string, content io.Reader) error {
		_, err := cl.CopyToContainer(ctx, ctr, docker.CopyToContainerOptions{DestinationPath: dir, Content: content, CopyUIDGID: keepOwner})
		if err != nil {
			return fmt.Errorf("berth cp: %w", err)
		}
		return nil
	}
	if src == "-" {
		return put(dst, e.io.In)
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("berth cp: %w", err)
	}
	// Into dst when it is a folder in the container; else as dst, a new
	// name in its folder.
	dir, name := dst, filepath.Base(src)
	st, err := cl.ContainerStatPath(ctx, ctr, docker.ContainerStatPathOptions{Path: dst})
	switch {
	case err == nil && st.Stat.Mode.IsDir():
	case err == nil && fi.IsDir():
		return fmt.Errorf("berth cp: cannot copy the folder %s onto the file %s:%s", src, ctr, dst)
	case err == nil || cerrdefs.IsNotFound(err):
		dir, name = path.Dir(dst), path.Base(dst)
	default:
		return fmt.Errorf("berth cp: %w", err)
	}
	root, err := os.OpenRoot(filepath.Dir(src))
	if err != nil {
		return fmt.Errorf("berth cp: %w", err)
	}
	defer root.Close()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarcopy.Archive(ctx, root, filepath.Base(src), name, pw)) }()
	err = put(dir, pr)
	pr.Close()
	return err
}
