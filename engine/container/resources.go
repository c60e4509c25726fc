package container

import (
	"fmt"
	"runtime"

	"github.com/berthvm/berth/engine/errdefs"
	mobycontainer "github.com/moby/moby/api/types/container"
)

// HostLimits is what this host can give one container's VM.
type HostLimits struct {
	// CPUs is the number of CPUs the engine may use.
	CPUs int
	// MemoryBytes is the host's physical memory; 0 when it is not known
	// (then memory is not checked against it).
	MemoryBytes uint64
}

// DetectHostLimits returns this host's limits: the CPUs this process may
// run on and the machine's physical memory. When the memory cannot be
// read it returns the CPUs and the error.
func DetectHostLimits() (HostLimits, error) {
	l := HostLimits{CPUs: runtime.NumCPU()}
	mem, err := physicalMemory()
	if err != nil {
		return l, fmt.Errorf("read the host's physical memory: %w", err)
	}
	l.MemoryBytes = mem
	return l, nil
}

// vmSize is the CPUs and memory a container's VM gets: what it asked for
// (--cpus rounded up to whole CPUs, --memory), else the defaults.
func vmSize(hc *mobycontainer.HostConfig) (cpus int, mem uint64) {
	cpus, mem = DefaultCPUs, DefaultMemory
	if hc.NanoCPUs > 0 {
		cpus = int((hc.NanoCPUs + 1e9 - 1) / 1e9)
	}
	if hc.Memory > 0 {
		mem = uint64(hc.Memory)
	}
	return cpus, mem
}

// validateResources checks the CPUs and memory a container asks for
// against the VM's minimums and what the host has, naming the flag and
// the limit.
func validateResources(hc *mobycontainer.HostConfig, host HostLimits) error {
	if hc.NanoCPUs < 0 {
		return errdefs.InvalidArgument(fmt.Errorf("invalid --cpus: %g must be positive", float64(hc.NanoCPUs)/1e9))
	}
	if hc.Memory < 0 || hc.Memory != 0 && hc.Memory < minMemory {
		return errdefs.InvalidArgument(fmt.Errorf("invalid memory %d bytes: a container's VM needs at least %d MiB", hc.Memory, minMemory>>20))
	}
	cpus, mem := vmSize(hc)
	if hc.NanoCPUs > 0 && host.CPUs > 0 && cpus > host.CPUs {
		return errdefs.InvalidArgument(fmt.Errorf("--cpus %g: this machine has %d CPUs", float64(hc.NanoCPUs)/1e9, host.CPUs))
	}
	if hc.Memory > 0 && host.MemoryBytes > 0 && mem > host.MemoryBytes {
		return errdefs.InvalidArgument(fmt.Errorf("--memory %s: this machine has %s of memory", formatBytes(mem), formatBytes(host.MemoryBytes)))
	}
	return nil
}

// formatBytes writes n in the largest binary unit that divides it
// ("100000 GiB", as the user typed 100000g), else with one decimal in the
// largest unit below it ("15.5 GiB").
func formatBytes(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for i < len(units)-1 && n>>(10*(i+1)) > 0 {
		i++
	}
	for j := i; j > 0; j-- {
		if n%(1<<(10*j)) == 0 {
			if n>>(10*j) < 1<<20 {
				return fmt.Sprintf("%d %s", n>>(10*j), units[j])
			}
			break
		}
	}
	return fmt.Sprintf("%.1f %s", float64(n)/float64(uint64(1)<<(10*i)), units[i])
}
