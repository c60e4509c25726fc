// Package settings keeps the menu-bar app's own settings in the Berth
// home (settings.json, written atomically: temp file, fsync, rename) and
// decides Launch at Login against the system's login item, which the
// darwin glue reaches through SMAppService (loginitem_darwin.go in
// app/menubar). Everything here is platform-neutral and tested on any
// OS; the LoginItem it drives is the only part that needs macOS.
//
// The file holds one JSON object. Keys this version does not know are
// kept when it writes the file, so an older Berth does not erase a
// newer one's settings.
package settings

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/internal/atomicfile"
)

// FileName is the settings file's name in the Berth home.
const FileName = "settings.json"

// Settings are the app's settings. The zero value is the default.
type Settings struct {
	// LaunchAtLogin is the user's choice to open Berth at login.
	LaunchAtLogin bool `json:"launchAtLogin"`
}

// Store reads and writes the settings file. Its methods are safe for
// concurrent use.
type Store struct {
	path string
	mu   sync.Mutex
}

// NewStore returns the Store of h's settings file (nothing is read or
// created yet).
func NewStore(h home.Home) *Store { return &Store{path: h.Path(FileName)} }

// Path is the settings file.
func (s *Store) Path() string { return s.path }

// Load reads the settings; a missing file is the defaults. A file that
// is not a JSON object of settings is an error naming it.
func (s *Store) Load() (Settings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, _, err := s.read()
	return st, err
}

// Update reads the settings, applies change and writes them back
// atomically, keeping keys it does not know. It returns the settings
// written.
func (s *Store) Update(change func(*Settings)) (Settings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, raw, err := s.read()
	if err != nil {
		return Settings{}, err
	}
	change(&st)
	known, err := json.Marshal(st)
	if err != nil {
		return Settings{}, fmt.Errorf("settings: encode: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(known, &fields); err != nil {
		return Settings{}, fmt.Errorf("settings: encode: %w", err)
	}
	for k, v := range fields {
		raw[k] = v
	}
	if err := atomicfile.WriteJSON(s.path, raw); err != nil {
		return Settings{}, fmt.Errorf("settings: write %s: %w", s.path, err)
	}
	return st, nil
}

// read decodes the file into the settings and every key it holds.
func (s *Store) read() (Settings, map[string]json.RawMessage, error) {
	raw := map[string]json.RawMessage{}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return Settings{}, raw, nil
	}
	if err != nil {
		return Settings{}, nil, fmt.Errorf("settings: read %s: %w", s.path, err)
	}
	var st Settings
	if err := json.Unmarshal(b, &raw); err != nil {
		return Settings{}, nil, errdefs.InvalidArgument(fmt.Errorf("settings: %s is not a JSON object (%v): fix or delete it; Berth then uses its defaults", s.path, err))
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return Settings{}, nil, errdefs.InvalidArgument(fmt.Errorf("settings: %s: %v: fix or delete it; Berth then uses its defaults", s.path, err))
	}
	return st, raw, nil
}
