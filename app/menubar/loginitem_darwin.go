//go:build darwin && cgo

package menubar

// darwinkit v0.5.0 has no binding for the ServiceManagement framework,
// so SMAppService (macOS 13+) is called through objc, and the framework
// is linked here. Type-checked on Linux (app/darwincheck); not run here.

// #cgo LDFLAGS: -framework ServiceManagement
import "C"

import (
	"errors"
	"unsafe"

	"github.com/berthvm/berth/app/settings"
	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/objc"
)

// appLoginItem is SMAppService.mainApp: Berth.app itself as a login
// item (settings.LoginItem).
type appLoginItem struct{}

var _ settings.LoginItem = appLoginItem{}

// mainApp is [SMAppService mainApp], or a nil object before macOS 13
// (no such class).
func (appLoginItem) mainApp() objc.Object {
	cls := objc.GetClass("SMAppService")
	if cls.Ptr() == nil {
		return objc.Object{}
	}
	return objc.Call[objc.Object](cls, objc.Sel("mainApp"))
}

// Status is the service's status (SMAppServiceStatus has the same values
// as settings.LoginStatus); NotFound before macOS 13.
func (l appLoginItem) Status() settings.LoginStatus {
	svc := l.mainApp()
	if svc.IsNil() {
		return settings.LoginNotFound
	}
	return settings.LoginStatus(objc.Call[int](svc, objc.Sel("status")))
}

// Register is [mainApp registerAndReturnError:].
func (l appLoginItem) Register() error { return l.call("registerAndReturnError:") }

// Unregister is [mainApp unregisterAndReturnError:].
func (l appLoginItem) Unregister() error { return l.call("unregisterAndReturnError:") }

// call sends sel, a BOOL method with an NSError** out-parameter, to the
// service and returns its error's description when it answers NO.
func (l appLoginItem) call(sel string) error {
	svc := l.mainApp()
	if svc.IsNil() {
		return errors.New("SMAppService needs macOS 13 or later")
	}
	var nsErr unsafe.Pointer
	if objc.Call[bool](svc, objc.Sel(sel), unsafe.Pointer(&nsErr)) {
		return nil
	}
	if nsErr == nil {
		return errors.New("the system refused without saying why")
	}
	return errors.New(foundation.ErrorFrom(nsErr).LocalizedDescription())
}
