package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthvm/berth/engine/api"
	"github.com/docker/go-units"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// newImageCmd builds `berth image …` and returns the top-level aliases
// (pull, images, rmi) Docker users type.
func newImageCmd(e *env) (*cobra.Command, []*cobra.Command) {
	img := &cobra.Command{
		Use:     "image",
		Aliases: []string{"i"},
		Short:   "Manage images",
	}
	pull := func() *cobra.Command {
		var platform string
		c := &cobra.Command{
			Use:   "pull REFERENCE",
			Short: "Pull an image from a registry",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				cl, err := e.client()
				if err != nil {
					return err
				}
				pp := newPullProgress(e.io.Out)
				var last string
				err = cl.PullImage(cmd.Context(), args[0], platform, func(m api.JSONMessage) {
					pp.handle(m)
					if strings.HasPrefix(m.Status, "Status: ") || strings.HasPrefix(m.Status, "Digest: ") {
						last += m.Status + "\n"
					}
				})
				pp.done()
				if err != nil {
					return err
				}
				if pp.tty {
					fmt.Fprint(e.io.Out, last)
				}
				return nil
			},
		}
		c.Flags().StringVar(&platform, "platform", "", "platform to pull (os/arch[/variant]; default: this machine's linux/ARCH)")
		return c
	}
	ls := func(use string, aliases ...string) *cobra.Command {
		var quiet bool
		c := &cobra.Command{
			Use:     use,
			Aliases: aliases,
			Short:   "List images",
			Args:    cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cl, err := e.client()
				if err != nil {
					return err
				}
				imgs, err := cl.Images(cmd.Context())
				if err != nil {
					return err
				}
				if quiet {
					for _, im := range imgs {
						fmt.Fprintln(e.io.Out, shortID(im.ID))
					}
					return nil
				}
				w := tabwriter.NewWriter(e.io.Out, 0, 4, 3, ' ', 0)
				fmt.Fprintln(w, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
				for _, im := range imgs {
					tags := im.RepoTags
					if len(tags) == 0 {
						tags = []string{"<none>:<none>"}
					}
					for _, t := range tags {
						i := strings.LastIndex(t, ":")
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t[:i], t[i+1:], shortID(im.ID), ago(time.Unix(im.Created, 0)), humanBytes(im.Size))
					}
				}
				return w.Flush()
			},
		}
		c.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
		return c
	}
	inspect := &cobra.Command{
		Use:   "inspect IMAGE...",
		Short: "Show an image's details as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := e.client()
			if err != nil {
				return err
			}
			var out []any
			for _, a := range args {
				v, err := cl.InspectImage(cmd.Context(), a)
				if err != nil {
					return err
				}
				out = append(out, v)
			}
			enc := json.NewEncoder(e.io.Out)
			enc.SetIndent("", "    ")
			return enc.Encode(out)
		},
	}
	rm := func(use string, aliases ...string) *cobra.Command {
		var force bool
		c := &cobra.Command{
			Use:     use,
			Aliases: aliases,
			Short:   "Remove images (refused for an image a container uses, unless --force)",
			Args:    cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				cl, err := e.client()
				if err != nil {
					return err
				}
				var errs []string
				for _, a := range args {
					items, err := cl.RemoveImage(cmd.Context(), a, force)
					if err != nil {
						errs = append(errs, err.Error())
						continue
					}
					for _, it := range items {
						if it.Untagged != "" {
							fmt.Fprintf(e.io.Out, "Untagged: %s\n", it.Untagged)
						}
						if it.Deleted != "" {
							fmt.Fprintf(e.io.Out, "Deleted: %s\n", it.Deleted)
						}
					}
				}
				if len(errs) > 0 {
					return fmt.Errorf("%s", strings.Join(errs, "\n"))
				}
				return nil
			},
		}
		c.Flags().BoolVarP(&force, "force", "f", false, "remove even if a container uses it, and every tag of an image named by ID")
		return c
	}
	tag := &cobra.Command{
		Use:   "tag SOURCE TARGET",
		Short: "Give an image another reference",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := e.client()
			if err != nil {
				return err
			}
			return cl.TagImage(cmd.Context(), args[0], args[1])
		},
	}
	prune := func() *cobra.Command {
		var all bool
		c := &cobra.Command{
			Use:   "prune",
			Short: "Remove dangling images (all unused ones with --all) and unreferenced blobs",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cl, err := e.client()
				if err != nil {
					return err
				}
				rep, err := cl.PruneImages(cmd.Context(), all)
				if err != nil {
					return err
				}
				for _, it := range rep.ImagesDeleted {
					if it.Untagged != "" {
						fmt.Fprintf(e.io.Out, "untagged: %s\n", it.Untagged)
					}
					if it.Deleted != "" {
						fmt.Fprintf(e.io.Out, "deleted: %s\n", it.Deleted)
					}
				}
				fmt.Fprintf(e.io.Out, "Total reclaimed space: %s\n", humanBytes(int64(rep.SpaceReclaimed)))
				return nil
			},
		}
		c.Flags().BoolVarP(&all, "all", "a", false, "remove all images no container uses, not only dangling ones")
		return c
	}
	load := func(use string, aliases ...string) *cobra.Command {
		var input string
		c := &cobra.Command{
			Use:     use,
			Aliases: aliases,
			Short:   "Load images from a docker save or OCI layout tarball (no network needed)",
			Args:    cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				cl, err := e.client()
				if err != nil {
					return err
				}
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
				lines, err := cl.LoadImages(cmd.Context(), r)
				for _, l := range lines {
					fmt.Fprint(e.io.Out, l)
				}
				return err
			},
		}
		c.Flags().StringVarP(&input, "input", "i", "", "tarball to read (default stdin)")
		return c
	}
	save := func(use string, aliases ...string) *cobra.Command {
		var output string
		c := &cobra.Command{
			Use:     use,
			Aliases: aliases,
			Short:   "Save images to a docker save tarball",
			Args:    cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				cl, err := e.client()
				if err != nil {
					return err
				}
				rc, err := cl.SaveImages(cmd.Context(), args)
				if err != nil {
					return err
				}
				defer rc.Close()
				var w io.Writer = e.io.Out
				if output != "" && output != "-" {
					f, err := os.CreateTemp(filepath.Dir(output), ".berth-save-*")
					if err != nil {
						return fmt.Errorf("save: %w", err)
					}
					defer os.Remove(f.Name())
					if _, err := io.Copy(f, rc); err != nil {
						f.Close()
						return fmt.Errorf("save to %s: %w", output, err)
					}
					if err := f.Close(); err != nil {
						return fmt.Errorf("save to %s: %w", output, err)
					}
					return os.Rename(f.Name(), output)
				}
				if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					return fmt.Errorf("save: refusing to write a tarball to a terminal: use -o FILE or redirect")
				}
				_, err = io.Copy(w, rc)
				return err
			},
		}
		c.Flags().StringVarP(&output, "output", "o", "", "file to write (default stdout)")
		return c
	}
	unpack := func() *cobra.Command {
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
	img.AddCommand(unpack(), pull(), ls("ls", "list"), inspect, rm("rm", "remove"), tag, prune(), load("load", "import"), save("save", "export"))
	return img, []*cobra.Command{pull(), ls("images"), rm("rmi"), load("load"), save("save")}
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// humanBytes formats a size in decimal units as Docker does.
func humanBytes(n int64) string { return units.HumanSizeWithPrecision(float64(n), 3) }

// ago renders a time the way `docker ps` and `docker images` do.
func ago(t time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "N/A"
	}
	return units.HumanDuration(time.Since(t)) + " ago"
}
