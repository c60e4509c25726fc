package network

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
	mobynetwork "github.com/moby/moby/api/types/network"
)

// DefaultHostIP is where a published port listens when the spec names
// no address: the host's loopback, so a port is not opened to the
// network unless asked for (0.0.0.0:8080:80).
var DefaultHostIP = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// PortSpec is one published port: connections to HostIP:HostPort on the
// host reach ContainerPort on the container's address.
type PortSpec struct {
	// HostIP is the host address the port listens on; the zero value is
	// DefaultHostIP.
	HostIP netip.Addr `json:"hostIP,omitzero"`
	// HostPort is the host port; 0: one the kernel picks.
	HostPort uint16 `json:"hostPort,omitempty"`
	// ContainerPort is the port in the container.
	ContainerPort uint16 `json:"containerPort"`
	// Proto is "tcp" or "udp".
	Proto string `json:"proto"`
}

func (p PortSpec) String() string {
	ip := p.HostIP
	if !ip.IsValid() {
		ip = DefaultHostIP
	}
	return fmt.Sprintf("%s->%d/%s", netip.AddrPortFrom(ip, p.HostPort), p.ContainerPort, p.Proto)
}

// listenAddr is where the host listens for p.
func (p PortSpec) listenAddr() string {
	ip := p.HostIP
	if !ip.IsValid() {
		ip = DefaultHostIP
	}
	return netip.AddrPortFrom(ip, p.HostPort).String()
}

// ParsePortSpec parses one -p value as Docker writes it:
// [ip:][hostPort]:containerPort[/tcp|/udp], or containerPort[/proto]
// alone (any free host port). An IPv6 host address goes in brackets
// ([::1]:8080:80). Ranges and sctp are refused with what to do instead.
func ParsePortSpec(s string) (PortSpec, error) {
	bad := func(why string) (PortSpec, error) {
		return PortSpec{}, errdefs.InvalidArgument(fmt.Errorf("invalid port spec %q: %s (want [IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp])", s, why))
	}
	rest, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	switch proto {
	case "tcp", "udp":
	case "sctp":
		return bad("sctp ports are not published; only tcp and udp are")
	default:
		return bad("unknown protocol " + strconv.Quote(proto))
	}
	var ipPart, hostPart, ctrPart string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 || end+1 >= len(rest) || rest[end+1] != ':' {
			return bad("an IPv6 address in brackets must be followed by :HOST_PORT:CONTAINER_PORT")
		}
		ipPart = rest[1:end]
		var ok bool
		hostPart, ctrPart, ok = strings.Cut(rest[end+2:], ":")
		if !ok {
			return bad("no container port")
		}
	} else {
		parts := strings.Split(rest, ":")
		switch len(parts) {
		case 1:
			ctrPart = parts[0]
		case 2:
			hostPart, ctrPart = parts[0], parts[1]
		case 3:
			ipPart, hostPart, ctrPart = parts[0], parts[1], parts[2]
		default:
			return bad("too many colons (put an IPv6 address in brackets)")
		}
	}
	var spec PortSpec
	spec.Proto = proto
	if ipPart != "" {
		ip, err := netip.ParseAddr(ipPart)
		if err != nil {
			return bad(strconv.Quote(ipPart) + " is not an IP address")
		}
		spec.HostIP = ip
	}
	if strings.Contains(hostPart, "-") || strings.Contains(ctrPart, "-") {
		return bad("port ranges are not published yet; publish each port with its own -p")
	}
	if hostPart != "" {
		n, err := parsePort(hostPart)
		if err != nil {
			return bad("host port " + err.Error())
		}
		spec.HostPort = n
	}
	n, err := parsePort(ctrPart)
	if err != nil {
		return bad("container port " + err.Error())
	}
	if n == 0 {
		return bad("container port 0")
	}
	spec.ContainerPort = n
	return spec, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, errors.New("is missing")
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number from 0 to 65535", s)
	}
	return uint16(n), nil
}

// FromPortMap turns the Docker API's PortBindings into specs, in a
// stable order, refusing what is not published (sctp, ranges) and
// malformed host ports.
func FromPortMap(pm mobynetwork.PortMap) ([]PortSpec, error) {
	var out []PortSpec
	for port, bindings := range pm {
		proto := string(port.Proto())
		if proto != "tcp" && proto != "udp" {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid port binding %s: %s ports are not published; only tcp and udp are", port, proto))
		}
		if port.Num() == 0 {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid port binding %s: container port 0", port))
		}
		if len(bindings) == 0 {
			bindings = []mobynetwork.PortBinding{{}}
		}
		for _, b := range bindings {
			spec := PortSpec{HostIP: b.HostIP, ContainerPort: port.Num(), Proto: proto}
			if b.HostPort != "" {
				if strings.Contains(b.HostPort, "-") {
					return nil, errdefs.InvalidArgument(fmt.Errorf("invalid port binding %s: host port range %q: port ranges are not published yet", port, b.HostPort))
				}
				n, err := parsePort(b.HostPort)
				if err != nil {
					return nil, errdefs.InvalidArgument(fmt.Errorf("invalid port binding %s: host port %w", port, err))
				}
				spec.HostPort = n
			}
			out = append(out, spec)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ContainerPort != out[j].ContainerPort {
			return out[i].ContainerPort < out[j].ContainerPort
		}
		if out[i].Proto != out[j].Proto {
			return out[i].Proto < out[j].Proto
		}
		return out[i].HostPort < out[j].HostPort
	})
	return out, nil
}

// ToPortMap is specs as the Docker API's PortMap (inspect's
// NetworkSettings.Ports, HostConfig.PortBindings).
func ToPortMap(specs []PortSpec) mobynetwork.PortMap {
	if len(specs) == 0 {
		return nil
	}
	pm := mobynetwork.PortMap{}
	for _, s := range specs {
		port, ok := mobynetwork.PortFrom(s.ContainerPort, s.proto())
		if !ok {
			continue
		}
		ip := s.HostIP
		if !ip.IsValid() {
			ip = DefaultHostIP
		}
		pm[port] = append(pm[port], mobynetwork.PortBinding{HostIP: ip, HostPort: strconv.Itoa(int(s.HostPort))})
	}
	return pm
}

// proto is the spec's protocol as the Docker API types name it (tcp
// when unset, as in specs stored before udp was published).
func (p PortSpec) proto() mobynetwork.IPProtocol {
	if p.Proto == "udp" {
		return mobynetwork.UDP
	}
	return mobynetwork.TCP
}
