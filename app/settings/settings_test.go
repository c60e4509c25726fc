package settings

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/home"
)

func testStore(t *testing.T) *Store {
	t.Helper()
	h, err := home.Resolve(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return NewStore(h)
}

func TestStore(t *testing.T) {
	s := testStore(t)
	if st, err := s.Load(); err != nil || st != (Settings{}) {
		t.Fatalf("no file: %+v, %v; want the defaults", st, err)
	}
	// A newer Berth's key survives this one's write.
	if err := os.WriteFile(s.Path(), []byte(`{"launchAtLogin": false, "theme": "dark"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(func(st *Settings) { st.LaunchAtLogin = true }); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"theme": "dark"`) || !strings.Contains(string(b), `"launchAtLogin": true`) {
		t.Errorf("file after update: %s", b)
	}
	if st, err := s.Load(); err != nil || !st.LaunchAtLogin {
		t.Errorf("load after update: %+v, %v", st, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(s.Path()), ".tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	for _, bad := range []string{`[1]`, `{"launchAtLogin": "yes"}`, `{`} {
		if err := os.WriteFile(s.Path(), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := s.Load()
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), s.Path()) || !strings.Contains(err.Error(), "fix or delete it") {
			t.Errorf("settings %s: %v, want an invalid argument naming the file and what to do", bad, err)
		}
		if _, err := s.Update(func(*Settings) {}); err == nil {
			t.Errorf("update over %s: no error (the file would be overwritten)", bad)
		}
	}
}

// fakeLoginItem stands in for SMAppService.mainApp, which exists only on
// macOS: it keeps a status as the system would, and can fail.
type fakeLoginItem struct {
	status        LoginStatus
	fail          error
	registered    int
	unregistered  int
	needsApproval bool
}

func (f *fakeLoginItem) Status() LoginStatus { return f.status }

func (f *fakeLoginItem) Register() error {
	if f.fail != nil {
		return f.fail
	}
	f.registered++
	f.status = LoginEnabled
	if f.needsApproval {
		f.status = LoginRequiresApproval
	}
	return nil
}

func (f *fakeLoginItem) Unregister() error {
	if f.fail != nil {
		return f.fail
	}
	f.unregistered++
	f.status = LoginNotRegistered
	return nil
}

func TestLaunchAtLoginSet(t *testing.T) {
	s := testStore(t)
	item := &fakeLoginItem{}
	l := NewLaunchAtLogin(s, item)
	if st := l.State(); st != (LoginState{Available: true}) {
		t.Errorf("initial state %+v", st)
	}
	st, err := l.Set(true)
	if err != nil || st != (LoginState{Available: true, On: true}) || item.registered != 1 {
		t.Fatalf("turn on: %+v, %v (registered %d)", st, err, item.registered)
	}
	if saved, _ := s.Load(); !saved.LaunchAtLogin {
		t.Error("turning on was not recorded")
	}
	st, err = l.Set(false)
	if err != nil || st.On || item.unregistered != 1 {
		t.Fatalf("turn off: %+v, %v", st, err)
	}
	if saved, _ := s.Load(); saved.LaunchAtLogin {
		t.Error("turning off was not recorded")
	}

	// The system refuses: the choice is not recorded, the error says so.
	item.fail = errors.New("Operation not permitted")
	if _, err := l.Set(true); err == nil || err.Error() != "launch at login: turn on: Operation not permitted" {
		t.Errorf("a refused registration: %v", err)
	}
	if saved, _ := s.Load(); saved.LaunchAtLogin {
		t.Error("a refused registration was recorded as on")
	}

	// The user has to allow it: pending, with where to do so.
	item.fail, item.needsApproval = nil, true
	if st, err := l.Set(true); err != nil || !st.Pending || st.On || st.Reason != ReasonApproval {
		t.Errorf("registration that needs approval: %+v, %v", st, err)
	}

	// Outside Berth.app, and on systems without login items: unavailable.
	item.status = LoginNotFound
	if st, err := l.Set(true); !errors.Is(err, errdefs.ErrUnavailable) || st.Available || st.Reason != ReasonNotFound {
		t.Errorf("outside the app bundle: %+v, %v", st, err)
	}
	none := NewLaunchAtLogin(s, nil)
	if st, err := none.Set(true); !errors.Is(err, errdefs.ErrUnavailable) || st.Available || st.Reason != ReasonNoSystem {
		t.Errorf("no login items: %+v, %v", st, err)
	}
}

func TestLaunchAtLoginReconcile(t *testing.T) {
	for _, c := range []struct {
		name         string
		saved        bool
		status       LoginStatus
		wantSaved    bool
		wantRegister int
		wantOn       bool
	}{
		{"turned on in System Settings: the file learns it", false, LoginEnabled, true, 0, true},
		{"chosen, but the app was moved: registered again", true, LoginNotRegistered, true, 1, true},
		{"off and off: nothing", false, LoginNotRegistered, false, 0, false},
		{"on and on: nothing", true, LoginEnabled, true, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := testStore(t)
			if _, err := s.Update(func(st *Settings) { st.LaunchAtLogin = c.saved }); err != nil {
				t.Fatal(err)
			}
			item := &fakeLoginItem{status: c.status}
			st, err := NewLaunchAtLogin(s, item).Reconcile()
			if err != nil {
				t.Fatal(err)
			}
			saved, _ := s.Load()
			if saved.LaunchAtLogin != c.wantSaved || item.registered != c.wantRegister || item.unregistered != 0 || st.On != c.wantOn {
				t.Errorf("saved %v, registered %d, unregistered %d, state %+v", saved.LaunchAtLogin, item.registered, item.unregistered, st)
			}
		})
	}
	s := testStore(t)
	if err := os.WriteFile(s.Path(), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLaunchAtLogin(s, &fakeLoginItem{}).Reconcile(); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("reconcile over a broken file: %v", err)
	}
}
