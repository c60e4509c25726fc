package settings

import (
	"errors"
	"fmt"
	"sync"

	"github.com/berthvm/berth/engine/errdefs"
)

// LoginStatus is the system's word on the app's login item, as
// SMAppService.Status says it.
type LoginStatus int

// The statuses, with SMAppServiceStatus's values.
const (
	// LoginNotRegistered: Berth does not open at login.
	LoginNotRegistered LoginStatus = 0
	// LoginEnabled: Berth opens at login.
	LoginEnabled LoginStatus = 1
	// LoginRequiresApproval: registered, but the user has to allow it in
	// System Settings › General › Login Items.
	LoginRequiresApproval LoginStatus = 2
	// LoginNotFound: the system cannot find the app to register (a
	// berth binary outside Berth.app, or any OS but macOS).
	LoginNotFound LoginStatus = 3
)

// LoginItem is the system's login item for the app: SMAppService.mainApp
// on macOS (app/menubar's darwin glue).
type LoginItem interface {
	Status() LoginStatus
	Register() error
	Unregister() error
}

// LoginState is what the menu shows for Launch at Login.
type LoginState struct {
	// Available is false where the system cannot launch Berth at login
	// (Reason says why); the item is then disabled.
	Available bool
	// On: Berth opens at login; Pending: it will once the user allows it
	// in System Settings (Reason says where).
	On, Pending bool
	Reason      string
}

// The reasons LoginState gives.
const (
	ReasonNotFound = "Launch at Login needs Berth.app: this berth is not inside the app bundle (make app)."
	ReasonApproval = "Allow Berth in System Settings › General › Login Items."
	ReasonNoSystem = "Launch at Login is set by Berth.app on macOS."
)

// LaunchAtLogin keeps the user's choice (the settings file) and the
// system's login item in step. Its methods are safe for concurrent use.
type LaunchAtLogin struct {
	store *Store
	item  LoginItem // nil: no login items on this system
	mu    sync.Mutex
}

// NewLaunchAtLogin returns the Launch at Login setting of store, acted
// out by item (nil where the system has none).
func NewLaunchAtLogin(store *Store, item LoginItem) *LaunchAtLogin {
	return &LaunchAtLogin{store: store, item: item}
}

// State is the menu's view: the system's status when it has one (the
// user may change it in System Settings), else unavailable.
func (l *LaunchAtLogin) State() LoginState {
	if l.item == nil {
		return LoginState{Reason: ReasonNoSystem}
	}
	return stateOf(l.item.Status())
}

func stateOf(st LoginStatus) LoginState {
	switch st {
	case LoginEnabled:
		return LoginState{Available: true, On: true}
	case LoginRequiresApproval:
		return LoginState{Available: true, Pending: true, Reason: ReasonApproval}
	case LoginNotFound:
		return LoginState{Reason: ReasonNotFound}
	}
	return LoginState{Available: true}
}

// Set turns Launch at Login on or off: the login item is registered or
// unregistered first, and the choice recorded only when that worked.
func (l *LaunchAtLogin) Set(on bool) (LoginState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	verb := "turn off"
	if on {
		verb = "turn on"
	}
	if l.item == nil {
		return l.State(), errdefs.Unavailable(fmt.Errorf("launch at login: %s: %s", verb, ReasonNoSystem))
	}
	if l.item.Status() == LoginNotFound {
		return l.State(), errdefs.Unavailable(fmt.Errorf("launch at login: %s: %s", verb, ReasonNotFound))
	}
	var err error
	if on {
		err = l.item.Register()
	} else {
		err = l.item.Unregister()
	}
	if err != nil {
		return l.State(), fmt.Errorf("launch at login: %s: %w", verb, err)
	}
	if _, err := l.store.Update(func(s *Settings) { s.LaunchAtLogin = on }); err != nil {
		return l.State(), fmt.Errorf("launch at login: %s: %w", verb, err)
	}
	return l.State(), nil
}

// Reconcile, at the app's start, brings the choice and the system
// together:
//  1. the system says Berth opens at login (the user turned it on in
//     System Settings, or a former Berth did) but the file says no: the
//     file learns yes;
//  2. the file says yes but the system has no login item (Berth.app was
//     moved or reinstalled, which drops it): it is registered again;
//  3. otherwise nothing changes. A choice of "no" is never forced on a
//     login item the user allowed.
//
// It returns the resulting state.
func (l *LaunchAtLogin) Reconcile() (LoginState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.item == nil {
		return l.State(), nil
	}
	want, err := l.store.Load()
	if err != nil {
		return l.State(), err
	}
	var errs []error
	switch st := l.item.Status(); {
	case (st == LoginEnabled || st == LoginRequiresApproval) && !want.LaunchAtLogin:
		_, err = l.store.Update(func(s *Settings) { s.LaunchAtLogin = true })
		errs = append(errs, err)
	case st == LoginNotRegistered && want.LaunchAtLogin:
		if err := l.item.Register(); err != nil {
			errs = append(errs, fmt.Errorf("launch at login: register again: %w", err))
		}
	}
	return l.State(), errors.Join(errs...)
}
