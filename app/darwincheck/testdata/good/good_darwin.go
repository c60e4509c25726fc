// Package good is a darwincheck fixture: correct calls into vz and
// darwinkit that the check must accept.
package good

import (
	"github.com/Code-Hex/vz/v3"
	"github.com/progrium/darwinkit/macos/appkit"
)

// Config builds a VM configuration the way the vz examples do.
func Config(kernel string) (*vz.VirtualMachineConfiguration, error) {
	boot, err := vz.NewLinuxBootLoader(kernel, vz.WithCommandLine("console=hvc0"))
	if err != nil {
		return nil, err
	}
	return vz.NewVirtualMachineConfiguration(boot, 2, 1<<30)
}

// StatusItem makes a menu-bar item.
func StatusItem() appkit.StatusItem {
	return appkit.StatusBar_SystemStatusBar().StatusItemWithLength(appkit.VariableStatusItemLength)
}
