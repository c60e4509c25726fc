package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthvm/berth/app/internal/human"
	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/internal/atomicfile"
	"github.com/distribution/reference"
	"github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/jsonstream"
	docker "github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// newImageCmd builds `berth image …`; NewRoot adds the top-level aliases
// (pull, images, rmi, load, save) Docker users type.
func newImageCmd(e *env) *cobra.Command {
	img := newGroupCmd("image", "Manage images", "i")
	img.AddCommand(newUnpackCmd(e), newPullCmd(e, "pull"), newPushCmd(e), newImagesCmd(e, "ls", "list"), newImageInspectCmd(e),
		newRmiCmd(e, "rm", "remove", "delete"), newTagCmd(e), newImagePruneCmd(e),
		newLoadCmd(e, "load", "import"), newSaveCmd(e, "save", "export"))
	return img
}

func newPullCmd(e *env, use string) *cobra.Command {
	var platform string
	var quiet bool
	c := &cobra.Command{
		Use:   use + " [flags] REFERENCE",
		Short: "Pull an image from a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := pullOptions(platform)
			if err != nil {
				return err
			}
			cl, err := e.client()
			if err != nil {
				return err
			}
			defer cl.Close()
			if quiet {
				return e.pullQuiet(cmd.Context(), cl, args[0], opts)
			}
			return showProgress(e.io.Out, func(fn func(jsonstream.Message)) error {
				return pullImage(cmd.Context(), cl, args[0], opts, fn)
			}, func(status string) bool {
				return strings.HasPrefix(status, "Status: ") || strings.HasPrefix(status, "Digest: ")
			})
		},
	}
	c.Flags().StringVar(&platform, "platform", "", "platform to pull (os/arch[/variant]; default: this machine's linux/ARCH)")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the image's full reference once pulled")
	return c
}

// newPushCmd builds `berth image push` (and `berth push`): the engine
// sends a stored image to its registry, with the credentials of its
// Docker config (docker login), showing each layer's progress.
func newPushCmd(e *env) *cobra.Command {
	var all, quiet bool
	c := &cobra.Command{
		Use:   "push [flags] NAME[:TAG]",
		Short: "Push an image to a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := e.client()
			if err != nil {
				return err
			}
			defer cl.Close()
			resp, err := cl.ImagePush(cmd.Context(), args[0], docker.ImagePushOptions{All: all})
			if err != nil {
				return err
			}
			defer resp.Close()
			if quiet {
				if err := eachMessage(resp.JSONMessages(cmd.Context()), nil); err != nil {
					return err
				}
				fmt.Fprintln(e.io.Out, args[0])
				return nil
			}
			return showProgress(e.io.Out, func(fn func(jsonstream.Message)) error {
				return eachMessage(resp.JSONMessages(cmd.Context()), fn)
			}, func(status string) bool { return strings.Contains(status, ": digest: ") })
		},
	}
	c.Flags().BoolVarP(&all, "all-tags", "a", false, "push every local tag of NAME")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the reference once pushed")
	return c
}

// pullQuiet is docker's pull -q: no progress, then the full reference
// pulled ("docker.io/library/alpine:latest").
func (e *env) pullQuiet(ctx context.Context, cl *client.Client, ref string, opts docker.ImagePullOptions) error {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return err
	}
	if err := pullImage(ctx, cl, ref, opts, nil); err != nil {
		return err
	}
	fmt.Fprintln(e.io.Out, reference.TagNameOnly(named).String())
	return nil
}

// pullOptions are Docker's pull options for a --platform value ("" for
// the daemon's default).
func pullOptions(platform string) (docker.ImagePullOptions, error) {
	if platform == "" {
		return docker.ImagePullOptions{}, nil
	}
	p, err := parsePlatform(platform)
	if err != nil {
		return docker.ImagePullOptions{}, err
	}
	return docker.ImagePullOptions{Platforms: []ocispec.Platform{p}}, nil
}

// parsePlatform parses os/arch[/variant].
func parsePlatform(s string) (ocispec.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return ocispec.Platform{}, fmt.Errorf("invalid --platform %q: want os/arch[/variant], e.g. linux/arm64", s)
	}
	return ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}, nil
}

// pullImage pulls ref and calls progress for every progress message. An
// error reported inside the stream is returned as an error.
func pullImage(ctx context.Context, cl *client.Client, ref string, opts docker.ImagePullOptions, progress func(jsonstream.Message)) error {
	resp, err := cl.ImagePull(ctx, ref, opts)
	if err != nil {
		return err
	}
	defer resp.Close()
	return eachMessage(resp.JSONMessages(ctx), progress)
}

// eachMessage reads a Docker JSON progress stream, stopping at the first
// error message.
func eachMessage(msgs func(yield func(jsonstream.Message, error) bool), fn func(jsonstream.Message)) error {
	for m, err := range msgs {
		if err != nil {
			return fmt.Errorf("read progress: %w", err)
		}
		if m.Error != nil {
			return errors.New(m.Error.Message)
		}
		if fn != nil {
			fn(m)
		}
	}
	return nil
}

func newImagesCmd(e *env, use string, aliases ...string) *cobra.Command {
	var quiet, noTrunc, all, digests bool
	var filters []string
	var format string
	c := &cobra.Command{
		Use:     use,
		Aliases: aliases,
		Short:   "List images",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := parseFilters(filters)
			if err != nil {
				return err
			}
			cl, err := e.client()
			if err != nil {
				return err
			}
			defer cl.Close()
			res, err := cl.ImageList(cmd.Context(), docker.ImageListOptions{All: all, Filters: f})
			if err != nil {
				return err
			}
			if quiet {
				for _, im := range res.Items {
					fmt.Fprintln(e.io.Out, imageRows(im, noTrunc)[0]["ID"])
				}
				return nil
			}
			if isDefaultFormat(format) {
				format = imagesTable
				if digests {
					format = imagesDigestsTable
				}
			}
			var rows []map[string]string
			for _, im := range res.Items {
				rows = append(rows, imageRows(im, noTrunc)...)
			}
			return printFormat(e.io.Out, format, rows, imageHeaders)
		},
	}
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	c.Flags().BoolVar(&noTrunc, "no-trunc", false, "show full image IDs")
	c.Flags().BoolVar(&digests, "digests", false, "show digests")
	c.Flags().BoolVarP(&all, "all", "a", false, "show all images (Berth keeps no intermediate images: the same list)")
	c.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter (reference=PATTERN, dangling=true|false, label=KEY[=VALUE])")
	c.Flags().StringVar(&format, "format", "", "docker's format: table, table TEMPLATE, json or a Go TEMPLATE of .ID .Repository .Tag .Digest .CreatedSince .CreatedAt .Size .Labels")
	return c
}

// imagesTable is images's own table, as a docker --format.
const (
	imagesTable        = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	imagesDigestsTable = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
)

func newImageInspectCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect IMAGE...",
		Short: "Show an image's details as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			var out []any
			for _, a := range args {
				res, err := cl.ImageInspect(cmd.Context(), a)
				if err != nil {
					return err
				}
				out = append(out, res.InspectResponse)
			}
			enc := json.NewEncoder(e.io.Out)
			enc.SetIndent("", "    ")
			return enc.Encode(out)
		}),
	}
}

func newRmiCmd(e *env, use string, aliases ...string) *cobra.Command {
	var force, noPrune bool
	c := &cobra.Command{
		Use:     use + " [flags] IMAGE...",
		Aliases: aliases,
		Short:   "Remove images (refused for an image a container uses, unless --force)",
		Args:    cobra.MinimumNArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			var errs []error
			for _, a := range args {
				res, err := cl.ImageRemove(cmd.Context(), a, docker.ImageRemoveOptions{Force: force, PruneChildren: !noPrune})
				if err != nil {
					errs = append(errs, err)
					continue
				}
				for _, it := range res.Items {
					if it.Untagged != "" {
						fmt.Fprintf(e.io.Out, "Untagged: %s\n", it.Untagged)
					}
					if it.Deleted != "" {
						fmt.Fprintf(e.io.Out, "Deleted: %s\n", it.Deleted)
					}
				}
			}
			return errors.Join(errs...)
		}),
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "remove even if a container uses it, and every tag of an image named by ID")
	c.Flags().BoolVar(&noPrune, "no-prune", false, "do not delete untagged parents (Berth's images have none)")
	return c
}

func newTagCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE TARGET",
		Short: "Give an image another reference",
		Args:  cobra.ExactArgs(2),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			_, err := cl.ImageTag(cmd.Context(), docker.ImageTagOptions{Source: args[0], Target: args[1]})
			return err
		}),
	}
}

func newImagePruneCmd(e *env) *cobra.Command {
	var all, force bool
	c := &cobra.Command{
		Use:   "prune [flags]",
		Short: "Remove dangling images (all unused ones with --all) and unreferenced blobs",
		Args:  cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, _ []string, cl *client.Client) error {
			f := docker.Filters{}
			if all {
				f = f.Add("dangling", "false")
			}
			res, err := cl.ImagePrune(cmd.Context(), docker.ImagePruneOptions{Filters: f})
			if err != nil {
				return err
			}
			for _, it := range res.Report.ImagesDeleted {
				if it.Untagged != "" {
					fmt.Fprintf(e.io.Out, "untagged: %s\n", it.Untagged)
				}
				if it.Deleted != "" {
					fmt.Fprintf(e.io.Out, "deleted: %s\n", it.Deleted)
				}
			}
			fmt.Fprintf(e.io.Out, "Total reclaimed space: %s\n", human.Bytes(int64(res.Report.SpaceReclaimed)))
			return nil
		}),
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "remove all images no container uses, not only dangling ones")
	forceFlag(c, &force)
	return c
}

// forceFlag adds docker's -f/--force of prune commands: docker asks for
// confirmation without it; berth never asks, so it changes nothing.
func forceFlag(c *cobra.Command, force *bool) {
	c.Flags().BoolVarP(force, "force", "f", false, "do not prompt for confirmation (berth never prompts)")
}

func newLoadCmd(e *env, use string, aliases ...string) *cobra.Command {
	var input string
	var quiet bool
	c := &cobra.Command{
		Use:     use + " [flags] [FILE]",
		Aliases: aliases,
		Short:   "Load images from a docker save or OCI layout tarball (no network needed)",
		Args:    cobra.MaximumNArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			if len(args) == 1 {
				input = args[0]
			}
			var r io.Reader = e.io.In
			if input != "" && input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return fmt.Errorf("load: %w", err)
				}
				defer f.Close()
				r = f
			}
			res, err := cl.ImageLoad(cmd.Context(), r, docker.ImageLoadWithQuiet(quiet))
			if err != nil {
				return err
			}
			defer res.Close()
			return eachMessage(jsonMessages(res), func(m jsonstream.Message) {
				fmt.Fprint(e.io.Out, m.Stream)
			})
		}),
	}
	c.Flags().StringVarP(&input, "input", "i", "", "tarball to read (default stdin)")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "suppress progress output (berth prints none; the loaded images are still listed)")
	return c
}

// jsonMessages decodes a Docker JSON message stream from r.
func jsonMessages(r io.Reader) func(yield func(jsonstream.Message, error) bool) {
	return func(yield func(jsonstream.Message, error) bool) {
		dec := json.NewDecoder(r)
		for {
			var m jsonstream.Message
			err := dec.Decode(&m)
			if errors.Is(err, io.EOF) {
				return
			}
			if !yield(m, err) || err != nil {
				return
			}
		}
	}
}

func newSaveCmd(e *env, use string, aliases ...string) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:     use + " [flags] IMAGE...",
		Aliases: aliases,
		Short:   "Save images to a docker save tarball",
		Args:    cobra.MinimumNArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			rc, err := cl.ImageSave(cmd.Context(), args)
			if err != nil {
				return err
			}
			defer rc.Close()
			if output != "" && output != "-" {
				return atomicfile.Write(output, func(w io.Writer) error { _, err := io.Copy(w, rc); return err })
			}
			if f, ok := e.io.Out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				return fmt.Errorf("save: refusing to write a tarball to a terminal: use -o FILE or redirect")
			}
			_, err = io.Copy(e.io.Out, rc)
			return err
		}),
	}
	c.Flags().StringVarP(&output, "output", "o", "", "file to write (default stdout)")
	return c
}

func newUnpackCmd(e *env) *cobra.Command {
	var output, size string
	c := &cobra.Command{
		Use:   "unpack IMAGE -o FILE.ext4",
		Short: "Write an image's root filesystem as a standalone ext4 image",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return fmt.Errorf("unpack: -o FILE.ext4 is required")
			}
			abs, err := filepath.Abs(output)
			if err != nil {
				return err
			}
			var n int64
			if size != "" {
				if n, err = units.RAMInBytes(size); err != nil {
					return fmt.Errorf("unpack: invalid --size %q: %w", size, err)
				}
			}
			cl, err := e.client()
			if err != nil {
				return err
			}
			defer cl.Close()
			if err := cl.UnpackImage(cmd.Context(), args[0], abs, n); err != nil {
				return err
			}
			fmt.Fprintln(e.io.Out, abs)
			return nil
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "ext4 image file to write (must not exist)")
	c.Flags().StringVar(&size, "size", "", "image size (e.g. 2g); default: the content plus free space")
	return c
}

// parseFilters turns docker's repeated --filter KEY=VALUE into Docker's
// filter set.
func parseFilters(in []string) (docker.Filters, error) {
	f := docker.Filters{}
	for _, s := range in {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid filter %q: want KEY=VALUE", s)
		}
		f.Add(k, v)
	}
	return f, nil
}

// showProgress shows a pull's or push's progress messages on w as each
// delivers them (layer bars on a terminal, lines otherwise); on a
// terminal the status lines keep picks are printed again once the bars
// are done, as docker does.
func showProgress(w io.Writer, each func(func(jsonstream.Message)) error, keep func(status string) bool) error {
	pp := newPullProgress(w)
	var last string
	err := each(func(m jsonstream.Message) {
		pp.handle(m)
		if keep(m.Status) {
			last += m.Status + "\n"
		}
	})
	pp.done()
	if err != nil {
		return err
	}
	if pp.tty {
		fmt.Fprint(w, last)
	}
	return nil
}
