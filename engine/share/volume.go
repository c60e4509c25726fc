package share

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/internal/atomicfile"
)

// Volume is a named volume: a directory under the Berth home that
// containers mount, which outlives them.
type Volume struct {
	// Name is the volume's name ([a-zA-Z0-9][a-zA-Z0-9_.-]+).
	Name string `json:"name"`
	// Labels are the user's (compose keys on them), returned exactly.
	Labels map[string]string `json:"labels,omitempty"`
	// Options are the driver options given at create (kept and shown; the
	// local driver here takes none).
	Options map[string]string `json:"options,omitempty"`
	// CreatedAt is when the volume was made.
	CreatedAt time.Time `json:"createdAt"`
	// Anonymous says a container made it without a name.
	Anonymous bool `json:"anonymous,omitempty"`
	// Mountpoint is the host directory holding the data; not stored
	// (derived from the store's directory).
	Mountpoint string `json:"-"`
}

// CreateOptions is what Store.Create takes.
type CreateOptions struct {
	// Name is the volume's name; "" generates one (64 hex digits, as
	// Docker's anonymous volumes).
	Name string
	// Driver must be "" or "local".
	Driver string
	// DriverOpts are kept and shown; the local driver here takes none.
	DriverOpts map[string]string
	// Labels are stored with the volume.
	Labels map[string]string
	// Anonymous marks a volume a container made for itself.
	Anonymous bool
}

// UsersFunc reports, for each volume in use, the IDs of the containers
// (running or not) whose mounts name it.
type UsersFunc func() map[string][]string

// Store keeps named volumes in a directory, one directory per volume:
//
//	DIR/NAME/volume.json   the volume's metadata (written atomically)
//	DIR/NAME/_data/        its data: what containers mount
//
// A volume appears whole or not at all: it is assembled under a
// temporary name (".tmp-*", which no valid name can take) and renamed
// into place. Names are validated (ValidateName) before they touch the
// filesystem, so none escapes DIR.
type Store struct {
	dir   string
	users UsersFunc

	mu sync.Mutex // serialises create and remove
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithUsers tells the store which containers use which volumes, for
// Remove (a volume in use is refused), Prune and the dangling filter.
func WithUsers(f UsersFunc) StoreOption { return func(s *Store) { s.users = f } }

// NewStore opens (creating) the volume store in dir and removes what a
// crash left half-made.
func NewStore(dir string, opts ...StoreOption) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("volume store %s: %w", dir, err)
	}
	s := &Store{dir: dir}
	for _, o := range opts {
		o(s)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("volume store %s: %w", dir, err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") || strings.HasPrefix(e.Name(), ".rm-") {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	return s, nil
}

// SetUsers sets the store's UsersFunc after construction (the daemon
// builds the container manager after the store it uses).
func (s *Store) SetUsers(f UsersFunc) {
	s.mu.Lock()
	s.users = f
	s.mu.Unlock()
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func notFound(name string) error {
	return errdefs.NotFound(fmt.Errorf("get %s: no such volume", name))
}

// Create makes a volume; creating one that exists returns it unchanged,
// as Docker's local driver does.
func (s *Store) Create(opts CreateOptions) (Volume, error) {
	switch opts.Driver {
	case "", "local":
	default:
		return Volume{}, errdefs.InvalidArgument(fmt.Errorf("create %s: volume driver %q is not supported by Berth (use local)", opts.Name, opts.Driver))
	}
	if opts.Name == "" {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return Volume{}, err
		}
		opts.Name = hex.EncodeToString(b[:])
	}
	if err := ValidateName(opts.Name); err != nil {
		return Volume{}, fmt.Errorf("create %s: %w", opts.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, err := s.get(opts.Name); err == nil {
		return v, nil
	}
	v := Volume{Name: opts.Name, Labels: opts.Labels, Options: opts.DriverOpts, CreatedAt: time.Now().UTC().Truncate(time.Second), Anonymous: opts.Anonymous}
	tmp, err := os.MkdirTemp(s.dir, ".tmp-")
	if err != nil {
		return Volume{}, fmt.Errorf("create volume %s: %w", v.Name, err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := os.Mkdir(filepath.Join(tmp, "_data"), 0o755); err != nil {
		return Volume{}, fmt.Errorf("create volume %s: %w", v.Name, err)
	}
	if err := atomicfile.WriteJSON(filepath.Join(tmp, "volume.json"), v); err != nil {
		return Volume{}, fmt.Errorf("create volume %s: %w", v.Name, err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, v.Name)); err != nil {
		return Volume{}, fmt.Errorf("create volume %s: %w", v.Name, err)
	}
	v.Mountpoint = s.dataDir(v.Name)
	return v, nil
}

// Ensure is VolumeCreator's: the volume name (created with labels when
// missing; "" makes an anonymous one) and its data directory.
func (s *Store) Ensure(name string, labels map[string]string) (string, string, error) {
	v, err := s.Create(CreateOptions{Name: name, Labels: labels, Anonymous: name == ""})
	if err != nil {
		return "", "", err
	}
	return v.Name, v.Mountpoint, nil
}

func (s *Store) dataDir(name string) string { return filepath.Join(s.dir, name, "_data") }

// Get returns the volume name; a missing one is Docker's "get NAME: no
// such volume" (not found).
func (s *Store) Get(name string) (Volume, error) {
	if ValidateName(name) != nil {
		return Volume{}, notFound(name)
	}
	return s.get(name)
}

func (s *Store) get(name string) (Volume, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, name, "volume.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return Volume{}, notFound(name)
	}
	if err != nil {
		return Volume{}, fmt.Errorf("get volume %s: %w", name, err)
	}
	var v Volume
	if err := json.Unmarshal(b, &v); err != nil {
		return Volume{}, fmt.Errorf("get volume %s: volume.json: %w", name, err)
	}
	v.Name = name
	v.Mountpoint = s.dataDir(name)
	return v, nil
}

// List returns every volume, by name.
func (s *Store) List() ([]Volume, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []Volume
	for _, e := range ents {
		if !e.IsDir() || ValidateName(e.Name()) != nil {
			continue
		}
		v, err := s.get(e.Name())
		if errors.Is(err, errdefs.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Users returns the IDs of the containers that use the volume name.
func (s *Store) Users(name string) []string {
	s.mu.Lock()
	f := s.users
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	return f()[name]
}

// Remove deletes a volume and its data. One in use by a container
// (running or stopped) is Docker's conflict, "remove NAME: volume is in
// use - [ID, ...]"; a missing one is not found, or nothing with force.
func (s *Store) Remove(name string, force bool) error {
	if _, err := s.Get(name); err != nil {
		if force && errors.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		return err
	}
	if ids := s.Users(name); len(ids) > 0 {
		return errdefs.Conflict(fmt.Errorf("remove %s: volume is in use - [%s]", name, strings.Join(ids, ", ")))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.removeLocked(name)
}

// removeLocked renames the volume out of the namespace first (so it is
// gone at once, whole) and then deletes its files.
func (s *Store) removeLocked(name string) error {
	gone := filepath.Join(s.dir, ".rm-"+name)
	if err := os.Rename(filepath.Join(s.dir, name), gone); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return notFound(name)
		}
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// PruneReport says what Prune removed.
type PruneReport struct {
	// Deleted are the removed volumes' names.
	Deleted []string
	// SpaceReclaimed is the bytes their files held.
	SpaceReclaimed uint64
}

// Prune removes the volumes no container uses that match picks (nil:
// every such one). Docker's API (1.42+) prunes only anonymous volumes
// unless asked for all; the caller's match says so.
func (s *Store) Prune(match func(Volume) bool) (PruneReport, error) {
	vols, err := s.List()
	if err != nil {
		return PruneReport{}, err
	}
	s.mu.Lock()
	f := s.users
	s.mu.Unlock()
	used := map[string][]string{}
	if f != nil {
		used = f()
	}
	var rep PruneReport
	for _, v := range vols {
		if len(used[v.Name]) > 0 || (match != nil && !match(v)) {
			continue
		}
		size := dirSize(v.Mountpoint)
		s.mu.Lock()
		err := s.removeLocked(v.Name)
		s.mu.Unlock()
		if err != nil {
			return rep, err
		}
		rep.Deleted = append(rep.Deleted, v.Name)
		rep.SpaceReclaimed += size
	}
	return rep, nil
}

// dirSize is the bytes of the regular files under dir.
func dirSize(dir string) uint64 {
	var n uint64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += uint64(fi.Size())
			}
		}
		return nil
	})
	return n
}
