// Package bad is a darwincheck fixture: calls into vz and darwinkit that
// do not type-check. The test expects each marked line to be reported.
package bad

import (
	"github.com/Code-Hex/vz/v3"
	"github.com/progrium/darwinkit/macos/appkit"
)

// Config misuses vz.
func Config(kernel string) (*vz.VirtualMachineConfiguration, error) {
	boot, err := vz.NewLinuxBootLoader(kernel)
	if err != nil {
		return nil, err
	}
	// want: the memory size is a uint64, not a string.
	cfg, err := vz.NewVirtualMachineConfiguration(boot, 2, "1GiB")
	if err != nil {
		return nil, err
	}
	// want: there is no such method.
	cfg.SetBalloonDevices(nil)
	return cfg, nil
}

// StatusItem misuses darwinkit.
func StatusItem() {
	bar := appkit.StatusBar_SystemStatusBar()
	// want: no such method on StatusBar.
	bar.AddStatusItemNamed("Berth")
}
