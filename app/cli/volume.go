package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/berthvm/berth/app/internal/human"
	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/engine/share"
	mobycontainer "github.com/moby/moby/api/types/container"
	mobymount "github.com/moby/moby/api/types/mount"
	docker "github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// newVolumeCmd is `berth volume`: named volumes, as `docker volume`.
func newVolumeCmd(e *env) *cobra.Command {
	v := newGroupCmd("volume", "Manage named volumes (folders under the Berth home that outlive containers)")
	v.AddCommand(newVolumeCreateCmd(e), newVolumeLsCmd(e), newVolumeInspectCmd(e), newVolumeRmCmd(e), newVolumePruneCmd(e))
	return v
}

func newVolumeCreateCmd(e *env) *cobra.Command {
	var driver string
	var labels, opts []string
	c := &cobra.Command{
		Use:   "create [flags] [NAME]",
		Short: "Create a volume (a generated name when none is given)",
		Args:  cobra.MaximumNArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			req := docker.VolumeCreateOptions{Driver: driver, Labels: map[string]string{}, DriverOpts: map[string]string{}}
			if len(args) == 1 {
				req.Name = args[0]
			}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				req.Labels[k] = v
			}
			for _, o := range opts {
				k, v, _ := strings.Cut(o, "=")
				req.DriverOpts[k] = v
			}
			res, err := cl.VolumeCreate(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.io.Out, res.Volume.Name)
			return nil
		}),
	}
	c.Flags().StringVarP(&driver, "driver", "d", "local", "volume driver (Berth has local)")
	c.Flags().StringArrayVarP(&labels, "label", "l", nil, "set a label (KEY=VALUE)")
	c.Flags().StringArrayVarP(&opts, "opt", "o", nil, "driver option (KEY=VALUE)")
	return c
}

func newVolumeLsCmd(e *env) *cobra.Command {
	var quiet bool
	var filterFlags []string
	c := &cobra.Command{
		Use:     "ls [flags]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, _ []string, cl *client.Client) error {
			f, err := parseFilters(filterFlags)
			if err != nil {
				return err
			}
			res, err := cl.VolumeList(cmd.Context(), docker.VolumeListOptions{Filters: f})
			if err != nil {
				return err
			}
			if quiet {
				for _, v := range res.Items {
					fmt.Fprintln(e.io.Out, v.Name)
				}
				return nil
			}
			w := tabwriter.NewWriter(e.io.Out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(w, "DRIVER\tVOLUME NAME")
			for _, v := range res.Items {
				fmt.Fprintf(w, "%s\t%s\n", v.Driver, v.Name)
			}
			return w.Flush()
		}),
	}
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print names only")
	c.Flags().StringArrayVarP(&filterFlags, "filter", "f", nil, "filter (dangling=true|false, name=NAME, label=KEY[=VALUE], driver=local)")
	return c
}

func newVolumeInspectCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect VOLUME...",
		Short: "Show volumes' details as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			var out []any
			for _, a := range args {
				res, err := cl.VolumeInspect(cmd.Context(), a, docker.VolumeInspectOptions{})
				if err != nil {
					return err
				}
				out = append(out, res.Volume)
			}
			enc := json.NewEncoder(e.io.Out)
			enc.SetIndent("", "    ")
			return enc.Encode(out)
		}),
	}
}

func newVolumeRmCmd(e *env) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:     "rm [flags] VOLUME...",
		Aliases: []string{"remove"},
		Short:   "Remove volumes and their data (refused for a volume a container uses)",
		Args:    cobra.MinimumNArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			var errs []error
			for _, a := range args {
				if _, err := cl.VolumeRemove(cmd.Context(), a, docker.VolumeRemoveOptions{Force: force}); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(e.io.Out, a)
			}
			return errors.Join(errs...)
		}),
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "no error for a volume that does not exist")
	return c
}

func newVolumePruneCmd(e *env) *cobra.Command {
	var all, force bool
	var filterFlags []string
	c := &cobra.Command{
		Use:   "prune [flags]",
		Short: "Remove unused anonymous volumes (every unused volume with --all)",
		Args:  cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, _ []string, cl *client.Client) error {
			f, err := parseFilters(filterFlags)
			if err != nil {
				return err
			}
			res, err := cl.VolumePrune(cmd.Context(), docker.VolumePruneOptions{All: all, Filters: f})
			if err != nil {
				return err
			}
			if len(res.Report.VolumesDeleted) > 0 {
				fmt.Fprintln(e.io.Out, "Deleted Volumes:")
				for _, v := range res.Report.VolumesDeleted {
					fmt.Fprintln(e.io.Out, v)
				}
				fmt.Fprintln(e.io.Out)
			}
			fmt.Fprintf(e.io.Out, "Total reclaimed space: %s\n", human.Bytes(int64(res.Report.SpaceReclaimed)))
			return nil
		}),
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "remove every unused volume, named ones too")
	forceFlag(c, &force)
	c.Flags().StringArrayVar(&filterFlags, "filter", nil, "filter (label=KEY[=VALUE])")
	return c
}

// mountFlags turns -v and --mount values into Docker's create request
// fields, as the docker CLI does: "-v /path" alone is an anonymous
// volume (Config.Volumes), other -v values go to HostConfig.Binds and
// --mount values to HostConfig.Mounts; a host path starting with "."
// is made absolute against the working directory. The daemon checks the
// rest (engine/share).
func mountFlags(volumes, mounts []string, cfg *mobycontainer.Config, hc *mobycontainer.HostConfig) error {
	for _, v := range volumes {
		parts := strings.SplitN(v, ":", 2)
		if len(parts) == 1 {
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			cfg.Volumes[v] = struct{}{}
			continue
		}
		if strings.HasPrefix(parts[0], ".") || parts[0] == "~" || strings.HasPrefix(parts[0], "~/") {
			abs, err := absHostPath(parts[0])
			if err != nil {
				return fmt.Errorf("invalid --volume %q: %w", v, err)
			}
			v = abs + ":" + parts[1]
		}
		hc.Binds = append(hc.Binds, v)
	}
	for _, m := range mounts {
		mt, err := share.ParseMountFlag(m)
		if err != nil {
			return fmt.Errorf("invalid argument %q for \"--mount\" flag: %w", m, err)
		}
		if mt.Type == mobymount.TypeBind && !filepath.IsAbs(mt.Source) {
			if mt.Source, err = absHostPath(mt.Source); err != nil {
				return fmt.Errorf("invalid --mount %q: %w", m, err)
			}
		}
		hc.Mounts = append(hc.Mounts, mt)
	}
	return nil
}

// absHostPath makes a host path absolute ("~" is the home directory).
func absHostPath(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		p = filepath.Join(home, strings.TrimPrefix(p, "~"))
	}
	return filepath.Abs(p)
}
