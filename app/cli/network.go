package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/berthvm/berth/engine/api/client"
	mobynetwork "github.com/moby/moby/api/types/network"
	docker "github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// newNetworkCmd is `berth network`: Berth's networks, as `docker network`.
func newNetworkCmd(e *env) *cobra.Command {
	n := newGroupCmd("network", "Manage networks (each its own switch: containers on different networks cannot reach each other)")
	n.AddCommand(newNetworkCreateCmd(e), newNetworkLsCmd(e), newNetworkInspectCmd(e), newNetworkRmCmd(e), newNetworkPruneCmd(e),
		newNetworkConnectCmd(e), newNetworkDisconnectCmd(e))
	return n
}

func newNetworkCreateCmd(e *env) *cobra.Command {
	var subnet string
	var internal bool
	var labels []string
	c := &cobra.Command{
		Use:   "create [flags] NAME",
		Short: "Create a network (a free 192.168.x.0/24 unless --subnet is given)",
		Args:  cobra.ExactArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			opts := docker.NetworkCreateOptions{Labels: map[string]string{}, Internal: internal}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				opts.Labels[k] = v
			}
			if subnet != "" {
				p, err := netip.ParsePrefix(subnet)
				if err != nil {
					return fmt.Errorf("invalid --subnet %q: want an IPv4 subnet in CIDR form (192.168.200.0/24)", subnet)
				}
				opts.IPAM = &mobynetwork.IPAM{Config: []mobynetwork.IPAMConfig{{Subnet: p}}}
			}
			res, err := cl.NetworkCreate(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.io.Out, res.ID)
			return nil
		}),
	}
	c.Flags().BoolVar(&internal, "internal", false, "no outbound access: containers reach each other, not the host's networks")
	c.Flags().StringVar(&subnet, "subnet", "", "the network's IPv4 subnet in CIDR form (must not overlap another network's)")
	c.Flags().StringArrayVarP(&labels, "label", "l", nil, "set a label (KEY=VALUE)")
	return c
}

func newNetworkLsCmd(e *env) *cobra.Command {
	var quiet bool
	var filterFlags []string
	c := &cobra.Command{
		Use:     "ls [flags]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, _ []string, cl *client.Client) error {
			f, err := parseFilters(filterFlags)
			if err != nil {
				return err
			}
			res, err := cl.NetworkList(cmd.Context(), docker.NetworkListOptions{Filters: f})
			if err != nil {
				return err
			}
			if quiet {
				for _, n := range res.Items {
					fmt.Fprintln(e.io.Out, n.ID[:12])
				}
				return nil
			}
			w := tabwriter.NewWriter(e.io.Out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(w, "NETWORK ID\tNAME\tSUBNET")
			for _, n := range res.Items {
				subnet := ""
				if len(n.IPAM.Config) > 0 {
					subnet = n.IPAM.Config[0].Subnet.String()
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", n.ID[:12], n.Name, subnet)
			}
			return w.Flush()
		}),
	}
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print IDs only")
	c.Flags().StringArrayVarP(&filterFlags, "filter", "f", nil, "filter (name=NAME, id=ID, label=KEY[=VALUE], type=builtin|custom, dangling=true|false)")
	return c
}

func newNetworkInspectCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NETWORK...",
		Short: "Show networks' details as JSON (subnet, gateway, the containers running on them)",
		Args:  cobra.MinimumNArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			var out []any
			for _, a := range args {
				res, err := cl.NetworkInspect(cmd.Context(), a, docker.NetworkInspectOptions{})
				if err != nil {
					return err
				}
				out = append(out, res.Network)
			}
			enc := json.NewEncoder(e.io.Out)
			enc.SetIndent("", "    ")
			return enc.Encode(out)
		}),
	}
}

func newNetworkRmCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK...",
		Aliases: []string{"remove"},
		Short:   "Remove networks (refused for one a container runs on)",
		Args:    cobra.MinimumNArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			var errs []error
			for _, a := range args {
				if _, err := cl.NetworkRemove(cmd.Context(), a, docker.NetworkRemoveOptions{}); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(e.io.Out, a)
			}
			return errors.Join(errs...)
		}),
	}
}

func newNetworkConnectCmd(e *env) *cobra.Command {
	var aliases []string
	var ip string
	c := &cobra.Command{
		Use:   "connect [flags] NETWORK CONTAINER",
		Short: "Put a stopped container on a network from its next start (disconnect it from its own first)",
		Args:  cobra.ExactArgs(2),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			ep := &mobynetwork.EndpointSettings{Aliases: aliases}
			if ip != "" {
				a, err := netip.ParseAddr(ip)
				if err != nil || !a.Is4() {
					return fmt.Errorf("invalid --ip %q: want an IPv4 address", ip)
				}
				ep.IPAMConfig = &mobynetwork.EndpointIPAMConfig{IPv4Address: a}
			}
			_, err := cl.NetworkConnect(cmd.Context(), args[0], docker.NetworkConnectOptions{Container: args[1], EndpointConfig: ep})
			return err
		}),
	}
	c.Flags().StringArrayVar(&aliases, "alias", nil, "another name the container resolves by on the network")
	c.Flags().StringVar(&ip, "ip", "", "the container's IPv4 address on the network")
	return c
}

func newNetworkDisconnectCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "disconnect NETWORK CONTAINER",
		Short: "Take a stopped container off its network from its next start (it then has loopback only)",
		Args:  cobra.ExactArgs(2),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			_, err := cl.NetworkDisconnect(cmd.Context(), args[0], docker.NetworkDisconnectOptions{Container: args[1]})
			return err
		}),
	}
}

func newNetworkPruneCmd(e *env) *cobra.Command {
	var force bool
	var filterFlags []string
	c := &cobra.Command{
		Use:   "prune [flags]",
		Short: "Remove the networks you created that no container runs on",
		Args:  cobra.NoArgs,
		RunE: e.withClient(func(cmd *cobra.Command, _ []string, cl *client.Client) error {
			f, err := parseFilters(filterFlags)
			if err != nil {
				return err
			}
			res, err := cl.NetworkPrune(cmd.Context(), docker.NetworkPruneOptions{Filters: f})
			if err != nil {
				return err
			}
			if len(res.Report.NetworksDeleted) > 0 {
				fmt.Fprintln(e.io.Out, "Deleted Networks:")
				for _, n := range res.Report.NetworksDeleted {
					fmt.Fprintln(e.io.Out, n)
				}
			}
			return nil
		}),
	}
	forceFlag(c, &force)
	c.Flags().StringArrayVar(&filterFlags, "filter", nil, "filter (label=KEY[=VALUE], until=DURATION|TIME)")
	return c
}
