//go:build darwin && cgo && !no_vz

package vz

import (
	"fmt"
	"os"
	"strings"

	"github.com/Code-Hex/vz/v3"

	"github.com/berthvm/berth/engine/vmm"
)

// kernelCmdline is the guest kernel's command line under
// Virtualization.framework: the console is the virtio console (hvc0, live
// once guestinit has loaded virtio_console when it is a module), the agent
// is on vsock.
func kernelCmdline(cfg vmm.Config) string {
	args := []string{"console=hvc0", "panic=-1", "quiet", "mitigations=off", "cryptomgr.notests", "rcupdate.rcu_expedited=1",
		vmm.RootParam, "berth.transport=vsock"}
	if cfg.Cmdline != "" {
		args = append(args, cfg.Cmdline)
	}
	return strings.Join(args, " ")
}

// buildConfig turns a validated vmm.Config into a Virtualization.framework
// configuration. console receives what the guest writes on its console;
// consoleIn is what the guest reads (nothing is ever written to it).
// sharePorts are the framework's ends of the spare share ports
// (cfg.SharePorts); none on macOS before 13.
func buildConfig(cfg vmm.Config, consoleIn, console *os.File, sharePorts []*os.File) (*vz.VirtualMachineConfiguration, error) {
	boot, err := vz.NewLinuxBootLoader(cfg.Kernel,
		vz.WithInitrd(cfg.Initramfs),
		vz.WithCommandLine(kernelCmdline(cfg)),
	)
	if err != nil {
		return nil, fmt.Errorf("boot loader: %w", err)
	}
	vc, err := vz.NewVirtualMachineConfiguration(boot, uint(cfg.CPUs), uint64(cfg.MemoryMiB)<<20)
	if err != nil {
		return nil, fmt.Errorf("vm configuration: %w", err)
	}
	for _, add := range []func(*vz.VirtualMachineConfiguration, vmm.Config) error{
		addDisks, addNetwork, addVsock, addEntropy, addBalloon, addShares,
	} {
		if err := add(vc, cfg); err != nil {
			return nil, err
		}
	}
	if err := addConsole(vc, consoleIn, console); err != nil {
		return nil, err
	}
	if err := addSharePorts(vc, sharePorts); err != nil {
		return nil, err
	}
	if ok, err := vc.Validate(); err != nil {
		return nil, fmt.Errorf("invalid vm configuration: %w", err)
	} else if !ok {
		return nil, fmt.Errorf("invalid vm configuration")
	}
	return vc, nil
}

// addDisks attaches the disks, the root disk first, so the guest sees it
// as /dev/vda.
func addDisks(vc *vz.VirtualMachineConfiguration, cfg vmm.Config) error {
	var disks []vz.StorageDeviceConfiguration
	for _, d := range append([]vmm.Disk{cfg.Root}, cfg.Disks...) {
		att, err := vz.NewDiskImageStorageDeviceAttachmentWithCacheAndSync(d.Path, d.ReadOnly,
			vz.DiskImageCachingModeCached, vz.DiskImageSynchronizationModeFsync)
		if err != nil {
			return fmt.Errorf("disk %s: %w", d.Path, err)
		}
		blk, err := vz.NewVirtioBlockDeviceConfiguration(att)
		if err != nil {
			return fmt.Errorf("disk %s: %w", d.Path, err)
		}
		disks = append(disks, blk)
	}
	vc.SetStorageDevicesVirtualMachineConfiguration(disks)
	return nil
}

// addNetwork gives the VM a virtio-net NIC behind the framework's NAT.
func addNetwork(vc *vz.VirtualMachineConfiguration, cfg vmm.Config) error {
	if cfg.Network == nil {
		return nil
	}
	nat, err := vz.NewNATNetworkDeviceAttachment()
	if err != nil {
		return fmt.Errorf("nat: %w", err)
	}
	nic, err := vz.NewVirtioNetworkDeviceConfiguration(nat)
	if err != nil {
		return fmt.Errorf("nic: %w", err)
	}
	mac, err := vz.NewMACAddress(cfg.Network.MAC)
	if err != nil {
		return fmt.Errorf("nic mac %s: %w", cfg.Network.MAC, err)
	}
	nic.SetMACAddress(mac)
	vc.SetNetworkDevicesVirtualMachineConfiguration([]*vz.VirtioNetworkDeviceConfiguration{nic})
	return nil
}

// addVsock gives the VM the virtio-vsock device the agent listens on.
func addVsock(vc *vz.VirtualMachineConfiguration, _ vmm.Config) error {
	sock, err := vz.NewVirtioSocketDeviceConfiguration()
	if err != nil {
		return fmt.Errorf("vsock: %w", err)
	}
	vc.SetSocketDevicesVirtualMachineConfiguration([]vz.SocketDeviceConfiguration{sock})
	return nil
}

// addConsole gives the VM a virtio console on the two pipe ends.
func addConsole(vc *vz.VirtualMachineConfiguration, consoleIn, console *os.File) error {
	serial, err := vz.NewFileHandleSerialPortAttachment(consoleIn, console)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	con, err := vz.NewVirtioConsoleDeviceSerialPortConfiguration(serial)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	vc.SetSerialPortsVirtualMachineConfiguration([]*vz.VirtioConsoleDeviceSerialPortConfiguration{con})
	return nil
}

// addSharePorts gives the VM one virtio console device whose ports are
// the spare share ports, named vmm.SharePortName(i), each attached to
// the framework's end of a socket pair (both directions on one socket).
func addSharePorts(vc *vz.VirtualMachineConfiguration, files []*os.File) error {
	if len(files) == 0 {
		return nil
	}
	dev, err := vz.NewVirtioConsoleDeviceConfiguration()
	if err != nil {
		return fmt.Errorf("share ports: %w", err)
	}
	for i, f := range files {
		att, err := vz.NewFileHandleSerialPortAttachment(f, f)
		if err != nil {
			return fmt.Errorf("share port %d: %w", i, err)
		}
		port, err := vz.NewVirtioConsolePortConfiguration(
			vz.WithVirtioConsolePortConfigurationName(vmm.SharePortName(i)),
			vz.WithVirtioConsolePortConfigurationAttachment(att),
		)
		if err != nil {
			return fmt.Errorf("share port %d: %w", i, err)
		}
		dev.SetVirtioConsolePortConfiguration(i, port)
	}
	vc.SetConsoleDevicesVirtualMachineConfiguration([]vz.ConsoleDeviceConfiguration{dev})
	return nil
}

// addEntropy gives the guest an entropy device.
func addEntropy(vc *vz.VirtualMachineConfiguration, _ vmm.Config) error {
	entropy, err := vz.NewVirtioEntropyDeviceConfiguration()
	if err != nil {
		return fmt.Errorf("entropy: %w", err)
	}
	vc.SetEntropyDevicesVirtualMachineConfiguration([]*vz.VirtioEntropyDeviceConfiguration{entropy})
	return nil
}

// addBalloon gives the VM a traditional memory balloon.
func addBalloon(vc *vz.VirtualMachineConfiguration, _ vmm.Config) error {
	balloon, err := vz.NewVirtioTraditionalMemoryBalloonDeviceConfiguration()
	if err != nil {
		return fmt.Errorf("memory balloon: %w", err)
	}
	vc.SetMemoryBalloonDevicesVirtualMachineConfiguration([]vz.MemoryBalloonDeviceConfiguration{balloon})
	return nil
}

// addShares gives the guest every boot-time share as a directory of one
// virtio-fs device (tag vmm.VirtioFSSharesTag) backed by a
// multiple-directory share, each directory named by the share's tag and
// read-only where the share is: one device however many mounts a
// container has.
func addShares(vc *vz.VirtualMachineConfiguration, cfg vmm.Config) error {
	if len(cfg.Shares) == 0 {
		return nil
	}
	dirs := map[string]*vz.SharedDirectory{}
	for _, s := range cfg.Shares {
		dir, err := vz.NewSharedDirectory(s.HostPath, s.ReadOnly)
		if err != nil {
			return fmt.Errorf("share %s: %w", s.HostPath, err)
		}
		dirs[s.Tag] = dir
	}
	multi, err := vz.NewMultipleDirectoryShare(dirs)
	if err != nil {
		return fmt.Errorf("shares: %w", err)
	}
	fsdev, err := vz.NewVirtioFileSystemDeviceConfiguration(vmm.VirtioFSSharesTag)
	if err != nil {
		return fmt.Errorf("shares (tag %q): %w", vmm.VirtioFSSharesTag, err)
	}
	fsdev.SetDirectoryShare(multi)
	vc.SetDirectorySharingDevicesVirtualMachineConfiguration([]vz.DirectorySharingDeviceConfiguration{fsdev})
	return nil
}
