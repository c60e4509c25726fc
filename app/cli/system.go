package cli

import (
	"errors"
	"fmt"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/berthvm/berth/engine"
	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/builder"
	"github.com/berthvm/berth/engine/daemon"
	"github.com/berthvm/berth/engine/launcher"
	"github.com/berthvm/berth/engine/version"
	docker "github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the client's and, when it runs, the daemon's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := e.io.Out
			fmt.Fprintf(out, "Client:\n Version:     %s\n API version: %s\n Go version:  %s\n OS/Arch:     %s/%s\n",
				version.Version, version.APIVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			c, err := e.client()
			if err != nil {
				return err
			}
			defer c.Close()
			v, err := c.ServerVersion(cmd.Context(), docker.ServerVersionOptions{})
			if errors.Is(err, client.ErrNotRunning) {
				fmt.Fprintf(out, "\nServer: not running (start it with `berth daemon` or open Berth.app)\n")
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "\nServer: %s\n Version:     %s\n API version: %s (minimum %s)\n Go version:  %s\n OS/Arch:     %s/%s\n",
				v.Platform.Name, v.Version, v.APIVersion, v.MinAPIVersion, componentDetail(v, "GoVersion"), v.Os, v.Arch)
			return nil
		},
	}
}

// componentDetail is a detail of the server's components (the Go
// version, which Docker's version answer carries only there).
func componentDetail(v docker.ServerVersionResult, key string) string {
	for _, c := range v.Components {
		if d, ok := c.Details[key]; ok {
			return d
		}
	}
	return ""
}

func newSystemCmd(e *env) *cobra.Command {
	sys := newGroupCmd("system", "Manage and inspect the Berth engine")
	sys.AddCommand(newStatusCmd(e), newKernelCmd(e), newVersionCmd(e))
	return sys
}

func newStatusCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show whether the daemon runs, its versions, home, backend and kernel",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := e.home()
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.Status(cmd.Context())
			w := tabwriter.NewWriter(e.io.Out, 0, 4, 2, ' ', 0)
			defer w.Flush()
			if errors.Is(err, client.ErrNotRunning) {
				fmt.Fprintf(w, "Daemon:\tnot running\n")
				fmt.Fprintf(w, "Home:\t%s\n", h.Dir)
				fmt.Fprintf(w, "Socket:\t%s (absent or not answering)\n", h.Socket())
				fmt.Fprintf(w, "Client:\t%s\n", version.Version)
				w.Flush()
				fmt.Fprintf(e.io.Err, "%v\n", client.ErrNotRunning)
				return &ExitError{Code: 1}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "Daemon:\trunning (pid %d, up %s)\n", st.PID, time.Since(st.StartedAt).Round(time.Second))
			fmt.Fprintf(w, "Version:\t%s (API %s, minimum %s; client %s)\n", st.Version, st.APIVersion, st.MinAPIVersion, version.Version)
			fmt.Fprintf(w, "Home:\t%s\n", st.Home)
			fmt.Fprintf(w, "Socket:\t%s\n", st.Socket)
			fmt.Fprintf(w, "Backend:\t%s on %s/%s\n", st.Backend, st.OS, st.Arch)
			fmt.Fprintf(w, "Kernel:\t%s\n", kernelLine(st.Kernel))
			if st.Setup != "" {
				fmt.Fprintf(w, "Setup:\t%s\n", st.Setup)
			}
			fmt.Fprintf(w, "Containers:\t%d (%d running)\n", st.Containers, st.ContainersRunning)
			fmt.Fprintf(w, "Images:\t%d\n", st.Images)
			if st.NetworkMode != "" {
				fmt.Fprintf(w, "Network:\t%s: %s\n", st.NetworkMode, st.NetworkReason)
			}
			fmt.Fprintf(w, "Fast start:\t%s\n", fastStartLine(st.FastStart, st.NetworkMode))
			for _, t := range st.FastStart.Templates {
				fmt.Fprintf(w, "  template %s: %d MiB, last used %s ago\n", t.Key, t.Size>>20, time.Since(t.LastUsed).Round(time.Second))
			}
			if f := st.FastStart; f.Enabled {
				fmt.Fprintf(w, "  %s\n", spareLine(f))
			}
			return nil
		},
	}
}

// fastStartLine is one line about fast start under the engine's network
// mode; the templates follow it.
func fastStartLine(f types.FastStartStatus, networkMode string) string {
	if !f.Enabled {
		return "off: every container's VM boots cold (berth daemon --fast-start=false)"
	}
	var b strings.Builder
	switch n := len(f.Templates); n {
	case 0:
		b.WriteString("on: no VM template yet (the second container of each VM size builds one)")
	case 1:
		b.WriteString("on: 1 VM template in " + f.Dir)
	default:
		fmt.Fprintf(&b, "on: %d VM templates in %s", n, f.Dir)
	}
	if f.Building > 0 {
		fmt.Fprintf(&b, "; building %d", f.Building)
	}
	if f.Failed != "" {
		fmt.Fprintf(&b, "; a build failed: %s", f.Failed)
	}
	if networkMode == "bridge" {
		b.WriteString("; containers on bridge networks boot cold (a TAP NIC is not restored from templates yet: berth daemon --network-mode user restores them)")
	}
	return b.String()
}

// spareLine is one line about fast start's spare VMs.
func spareLine(f types.FastStartStatus) string {
	if f.SparesOff != "" {
		return "spare VMs: none kept: " + f.SparesOff
	}
	if len(f.Spares) == 0 {
		return "spare VMs: none now (one is restored ahead for each template a container was restored from)"
	}
	var parts []string
	for _, s := range f.Spares {
		p := fmt.Sprintf("template %s %s for %s", s.Template, s.State, time.Since(s.Since).Round(time.Second))
		if s.Pid > 0 {
			p += fmt.Sprintf(" (pid %d)", s.Pid)
		}
		parts = append(parts, p)
	}
	return "spare VMs: " + strings.Join(parts, "; ")
}

// kernelLine is one line about the guest kernel.
func kernelLine(k types.KernelInfo) string {
	if k.Path == "" {
		return "none usable yet: " + k.Error
	}
	return fmt.Sprintf("%s %s (%s, %s, from %s)", k.Version, k.Path, k.Arch, k.Format, k.Source)
}

func newKernelCmd(e *env) *cobra.Command {
	show := func(k types.KernelInfo) {
		fmt.Fprintf(e.io.Out, "Kernel: %s\n", kernelLine(k))
		for _, m := range k.Missing {
			fmt.Fprintf(e.io.Out, "  lacks %s\n", m)
		}
	}
	k := &cobra.Command{
		Use:   "kernel",
		Short: "Show the guest kernel every container's VM boots",
		Args:  noSubcommand,
		RunE: e.withClient(func(cmd *cobra.Command, _ []string, cl *client.Client) error {
			info, err := cl.Kernel(cmd.Context())
			if err != nil {
				return err
			}
			show(info)
			return nil
		}),
	}
	var path, url, sum string
	set := &cobra.Command{
		Use:   "set (--path PATH | --url URL --sha256 HEX)",
		Short: "Choose the guest kernel: a kernel file or unpacked package directory, or a .deb to download",
		Args:  cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, _ []string, cl *client.Client) error {
			if path != "" {
				abs, err := filepath.Abs(path)
				if err != nil {
					return err
				}
				path = abs
			}
			info, err := cl.SetKernel(cmd.Context(), types.KernelChoice{Path: path, URL: url, SHA256: sum})
			if err != nil {
				return err
			}
			show(info)
			return nil
		}),
	}
	set.Flags().StringVar(&path, "path", "", "kernel image, or a directory unpacked from a kernel package (boot/vmlinuz-*, lib/modules/VERSION)")
	set.Flags().StringVar(&url, "url", "", "URL of a Debian linux-image .deb")
	set.Flags().StringVar(&sum, "sha256", "", "SHA-256 of the .deb at --url")
	k.AddCommand(set)
	return k
}

func newDaemonCmd(e *env) *cobra.Command {
	var hostLoopback, fastStart bool
	var builderIdle, spareIdle time.Duration
	var networkMode string
	c := &cobra.Command{
		Use:   "daemon",
		Short: "Run the Berth engine in the foreground (logs to stderr and $BERTH_HOME/daemon.log)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := e.home()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return daemon.Run(ctx, daemon.Config{Home: h, LogOutput: e.io.Err,
				Plugins: daemon.PluginOptions{Discovery: PluginConfig(h.Dir)},
				EngineOptions: []engine.Option{engine.WithHostLoopback(hostLoopback), engine.WithFastStart(fastStart), engine.WithSpareIdle(spareIdle),
					engine.WithBuilderIdleTimeout(builderIdle), engine.WithNetworkMode(networkMode)}})
		},
	}
	c.Flags().BoolVar(&fastStart, "fast-start", true, "restore containers' VMs from a saved template instead of booting them; --fast-start=false boots every VM cold (`run --cold` boots one cold)")
	c.Flags().DurationVar(&spareIdle, "spare-idle", launcher.DefaultSpareIdle, "with fast start, keep a VM restored ahead for each VM layout restored before, stopped when no container claimed it for this long (0: keep none)")
	c.Flags().DurationVar(&builderIdle, "builder-idle", builder.DefaultIdleTimeout, "stop the image builder's VM after it served no BuildKit client for this long (negative: never)")
	c.Flags().StringVar(&networkMode, "network-mode", engine.NetworkModeAuto, "Linux networking: auto (bridge when run as root or with CAP_NET_ADMIN, else user), user (user-space networks, no privileges) or bridge (a Linux bridge per network, the host reaches containers' addresses)")
	c.Flags().BoolVar(&hostLoopback, "host-loopback", false, "let containers reach the host's loopback services (127.0.0.1) at the network's host address (192.168.127.254); off by default")
	return c
}
