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
	// HostPortEnd, when set, makes HostPort..HostPortEnd a range: the
	// port is published on the first free host port in it. A bound
	// spec has none.
	HostPortEnd uint16 `json:"hostPortEnd,omitempty"`
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
	host := netip.AddrPortFrom(ip, p.HostPort).String()
	if p.HostPortEnd != 0 {
		host += fmt.Sprintf("-%d", p.HostPortEnd)
	}
	return fmt.Sprintf("%s->%d/%s", host, p.ContainerPort, p.Proto)
}

// hostIP is the host address p listens on.
func (p PortSpec) hostIP() netip.Addr {
	if !p.HostIP.IsValid() {
		return DefaultHostIP
	}
	return p.HostIP
}

// listenAddr is where the host listens for p.
func (p PortSpec) listenAddr() string {
	return netip.AddrPortFrom(p.hostIP(), p.HostPort).String()
}

// ParsePortSpec parses one -p value as Docker writes it:
// [ip:][hostPort]:containerPort[/tcp|/udp], or containerPort[/proto]
// alone (any free host port). An IPv6 host address goes in brackets
// ([::1]:8080:80). Either port may be a range (8000-8002:80-82), by
// Docker's rules: a host range as long as the container range pairs
// their ports in order; a host range for one container port publishes it
// on the first free host port of the range; a container range alone
// publishes each port on a free host port. sctp is refused.
func ParsePortSpec(s string) ([]PortSpec, error) {
	bad := func(why string) ([]PortSpec, error) {
		return nil, errdefs.InvalidArgument(fmt.Errorf("invalid port spec %q: %s (want [IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|/udp])", s, why))
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
	var hostIP netip.Addr
	if ipPart != "" {
		ip, err := netip.ParseAddr(ipPart)
		if err != nil {
			return bad(strconv.Quote(ipPart) + " is not an IP address")
		}
		hostIP = ip
	}
	clo, chi, err := parsePortRange(ctrPart)
	if err != nil {
		return bad("container port " + err.Error())
	}
	if clo == 0 {
		return bad("container port 0")
	}
	var hlo, hhi uint16
	if hostPart != "" {
		if hlo, hhi, err = parsePortRange(hostPart); err != nil {
			return bad("host port " + err.Error())
		}
		if hlo == 0 && hhi != 0 {
			return bad("host port range " + strconv.Quote(hostPart) + " starts at 0")
		}
	}
	var out []PortSpec
	switch {
	case hostPart == "" || hlo == 0:
		for c := int(clo); c <= int(chi); c++ {
			out = append(out, PortSpec{HostIP: hostIP, ContainerPort: uint16(c), Proto: proto})
		}
	case hhi-hlo == chi-clo:
		for i := 0; i <= int(chi-clo); i++ {
			out = append(out, PortSpec{HostIP: hostIP, HostPort: hlo + uint16(i), ContainerPort: clo + uint16(i), Proto: proto})
		}
	case clo == chi:
		out = append(out, PortSpec{HostIP: hostIP, HostPort: hlo, HostPortEnd: hhi, ContainerPort: clo, Proto: proto})
	default:
		return bad(fmt.Sprintf("host range %s has %d ports, container range %s has %d: give ranges of equal length, or a host range for one container port", hostPart, hhi-hlo+1, ctrPart, chi-clo+1))
	}
	return out, nil
}

// parsePortRange parses "N" or "LO-HI" (LO <= HI); "N" is N-N.
func parsePortRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = parsePort(a); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = parsePort(b); err != nil {
		return 0, 0, fmt.Errorf("range %q: end %w", s, err)
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("range %q ends before it starts", s)
	}
	return lo, hi, nil
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
// stable order, refusing what is not published (sctp) and malformed
// host ports. A HostPort of "LO-HI" is a range (the first free port in
// it), as the docker CLI sends for -p 8000-8010:80.
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
				lo, hi, err := parsePortRange(b.HostPort)
				if err != nil {
					return nil, errdefs.InvalidArgument(fmt.Errorf("invalid port binding %s: host port %w", port, err))
				}
				if lo == 0 && hi != 0 {
					return nil, errdefs.InvalidArgument(fmt.Errorf("invalid port binding %s: host port range %q starts at 0", port, b.HostPort))
				}
				spec.HostPort = lo
				if hi != lo {
					spec.HostPortEnd = hi
				}
			}
			out = append(out, spec)
		}
	}
	sortSpecs(out)
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

// PublishAll is what -P (HostConfig.PublishAllPorts) adds to bindings:
// each exposed tcp or udp port that bindings do not already publish, on
// a free host port of DefaultHostIP. (sctp ports are not published.)
func PublishAll(exposed mobynetwork.PortSet, bindings mobynetwork.PortMap) []PortSpec {
	var out []PortSpec
	for port := range exposed {
		if _, ok := bindings[port]; ok || port.Num() == 0 {
			continue
		}
		if proto := string(port.Proto()); proto == "tcp" || proto == "udp" {
			out = append(out, PortSpec{ContainerPort: port.Num(), Proto: proto})
		}
	}
	sortSpecs(out)
	return out
}

// sortSpecs orders specs by container port, protocol, host port.
func sortSpecs(specs []PortSpec) {
	sort.Slice(specs, func(i, j int) bool {
		a, b := specs[i], specs[j]
		if a.ContainerPort != b.ContainerPort {
			return a.ContainerPort < b.ContainerPort
		}
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		return a.HostPort < b.HostPort
	})
}
