package cli

import (
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/engine/errdefs"
	mobynetwork "github.com/moby/moby/api/types/network"
	docker "github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func newPortCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PORT[/PROTO]]",
		Short: "List a container's published ports, or the host addresses of one",
		Long: "Without PORT, each published port and the host address it is on (80/tcp -> 127.0.0.1:8080), as docker port prints them.\n" +
			"With PORT (80, 80/tcp, 53/udp), the host addresses of that port alone.",
		Args: cobra.RangeArgs(1, 2),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			res, err := cl.ContainerInspect(cmd.Context(), args[0], docker.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			var pm mobynetwork.PortMap
			if ns := res.Container.NetworkSettings; ns != nil {
				pm = ns.Ports
			}
			filter := ""
			if len(args) == 2 {
				filter = args[1]
			}
			lines, err := portLines(pm, strings.TrimPrefix(res.Container.Name, "/"), filter)
			if err != nil {
				return err
			}
			for _, l := range lines {
				if _, err := fmt.Fprintln(e.io.Out, l); err != nil {
					return err
				}
			}
			return nil
		}),
	}
}

// portLines are pm's bindings as docker port prints them: all of them
// ("80/tcp -> 127.0.0.1:8080", ordered by port), or with filter
// ("80", "80/udp") that port's host addresses alone, an error naming
// container when it has none.
func portLines(pm mobynetwork.PortMap, container, filter string) ([]string, error) {
	if filter != "" {
		port, err := mobynetwork.ParsePort(filter)
		if err != nil || port.Num() == 0 {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid port %q: want PORT or PORT/PROTO (80, 53/udp)", filter))
		}
		var out []string
		for _, b := range pm[port] {
			out = append(out, net.JoinHostPort(b.HostIP.String(), b.HostPort))
		}
		if len(out) == 0 {
			return nil, errdefs.NotFound(fmt.Errorf("no public port '%s' published for %s", port, container))
		}
		return out, nil
	}
	ports := make([]mobynetwork.Port, 0, len(pm))
	for p := range pm {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool {
		if ports[i].Num() != ports[j].Num() {
			return ports[i].Num() < ports[j].Num()
		}
		return ports[i].Proto() < ports[j].Proto()
	})
	var out []string
	for _, p := range ports {
		for _, b := range pm[p] {
			out = append(out, fmt.Sprintf("%s -> %s", p, net.JoinHostPort(b.HostIP.String(), b.HostPort)))
		}
	}
	return out, nil
}
