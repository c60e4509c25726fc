package engine

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/network"
)

// openNetworks opens Berth's networks (h/networks) in the mode o asks
// for: every container's VM joins its network's user-space switch (user
// mode) or Linux bridge (bridge mode).
func openNetworks(h home.Home, o options) (*network.Manager, error) {
	cfg := network.Config{Dir: h.Path("networks"), HostLoopback: o.hostLoopback, Log: o.log.With("part", "network")}
	switch o.networkMode {
	case "", NetworkModeUser:
		cfg.Mode = network.ModeUser
		if o.networkMode != "" {
			cfg.ModeReason = "asked for with --network-mode user"
		}
	case NetworkModeBridge:
		cfg.Mode, cfg.ModeReason = network.ModeBridge, "asked for with --network-mode bridge"
	case NetworkModeAuto:
		ok, why := bridgePrivileged()
		switch {
		case !ok:
			cfg.Mode, cfg.ModeReason = network.ModeUser, "chosen: bridge mode needs "+why
		case o.hostLoopback:
			cfg.Mode, cfg.ModeReason = network.ModeUser, "chosen: --host-loopback needs user mode"
		default:
			cfg.Mode, cfg.ModeReason = network.ModeBridge, "chosen: the engine runs with "+why
			m, err := network.New(cfg)
			if err == nil {
				return m, nil
			}
			o.log.Warn("bridge mode could not be set up; using user mode", "err", err)
			cfg.Mode, cfg.ModeReason = network.ModeUser, fmt.Sprintf("chosen: bridge mode could not be set up: %v", err)
		}
	default:
		return nil, errdefs.InvalidArgument(fmt.Errorf("network mode %q: it is %s, %s or %s", o.networkMode, NetworkModeAuto, NetworkModeUser, NetworkModeBridge))
	}
	return network.New(cfg)
}

// capNetAdmin is CAP_NET_ADMIN's bit in /proc/self/status's CapEff.
const capNetAdmin = 12

// bridgePrivileged reports whether this process may make bridges, TAP
// devices and nftables rules (CAP_NET_ADMIN in effect: root has it
// unless it was dropped, as in a container run without NET_ADMIN) and
// says whether as root, or what is missing.
func bridgePrivileged() (bool, string) {
	eff, err := effectiveCaps("/proc/self/status")
	switch root := os.Geteuid() == 0; {
	case err != nil:
		return false, fmt.Sprintf("CAP_NET_ADMIN, which the engine could not look for: %v", err)
	case eff&(1<<capNetAdmin) != 0 && root:
		return true, "root"
	case eff&(1<<capNetAdmin) != 0:
		return true, "CAP_NET_ADMIN"
	case root:
		return false, "CAP_NET_ADMIN, which the engine runs without (as root, with the capability dropped)"
	default:
		return false, "root or CAP_NET_ADMIN, which the engine has not got"
	}
}

// effectiveCaps reads the CapEff bits of a /proc/PID/status file.
func effectiveCaps(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no CapEff in " + path)
}
