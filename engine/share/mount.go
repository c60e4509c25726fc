package share

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
	mobymount "github.com/moby/moby/api/types/mount"
)

// Mount is one of a container's mounts, resolved: what Resolve returns,
// what the container's spec records, and what Plan gives the VM.
type Mount struct {
	// Type is mobymount.TypeBind or mobymount.TypeVolume.
	Type mobymount.Type `json:"type"`
	// Source is a bind's absolute host path, or a volume's name.
	Source string `json:"source"`
	// Target is the absolute path inside the container.
	Target string `json:"target"`
	// ReadOnly forbids writes from the container.
	ReadOnly bool `json:"readOnly,omitempty"`
	// HostPath is the host directory the VM is given: a bind's source, a
	// volume's data directory.
	HostPath string `json:"hostPath"`
	// Anonymous says the volume was made for this container alone (-v
	// /path, --mount type=volume without a source).
	Anonymous bool `json:"anonymous,omitempty"`
	// Spec is how the user wrote it in Binds ("/h:/c:ro"); "" for one
	// from HostConfig.Mounts.
	Spec string `json:"spec,omitempty"`
	// NoCopy turns off a volume's copy-up (-v NAME:/c:nocopy,
	// --mount volume-nocopy): see CopyUp.
	NoCopy bool `json:"noCopy,omitempty"`
}

// CopyUp says whether m starts with the image's content at its target
// when its directory is empty, as Docker's volumes do: a writable volume
// without nocopy. (Docker also fills read-only volumes; here the guest
// copies through the mount, which a read-only one refuses.)
func (m Mount) CopyUp() bool {
	return m.Type == mobymount.TypeVolume && !m.NoCopy && !m.ReadOnly
}

// namePattern is Docker's rule for local volume names.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidateName checks a volume name against Docker's rule for local
// volumes, which also keeps it a single path element under the volumes
// directory.
func ValidateName(name string) error {
	if !namePattern.MatchString(name) || len(name) > 255 {
		return errdefs.InvalidArgument(fmt.Errorf("%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", name))
	}
	return nil
}

// ParseBind parses one -v / HostConfig.Binds entry as Docker's daemon
// does on Linux: "SOURCE:TARGET[:MODE]" where an absolute SOURCE is a
// bind and anything else a volume name, or "TARGET" alone for an
// anonymous volume. MODE is a comma-separated list of ro, rw, z, Z
// (SELinux relabelling: there is no SELinux on the host side of a VM
// share, so they are accepted and ignored), nocopy (a volume's
// Mount.NoCopy), and the propagation
// and consistency modes (accepted; a VM share has no propagation to
// choose). Relative host paths are the client's to make absolute (the
// CLIs do); here "./x" is an invalid volume name, as with Docker.
func ParseBind(spec string) (mobymount.Mount, error) {
	bad := func(why string) error {
		if why == "" {
			return errdefs.InvalidArgument(fmt.Errorf("invalid volume specification: '%s'", spec))
		}
		return errdefs.InvalidArgument(fmt.Errorf("invalid volume specification: '%s': %s", spec, why))
	}
	parts := strings.Split(spec, ":")
	var m mobymount.Mount
	var mode string
	switch len(parts) {
	case 1:
		m = mobymount.Mount{Type: mobymount.TypeVolume, Target: parts[0]}
	case 2, 3:
		m = mobymount.Mount{Source: parts[0], Target: parts[1]}
		if len(parts) == 3 {
			mode = parts[2]
		}
		if m.Source == "" {
			return m, bad("")
		}
		m.Type = mobymount.TypeVolume
		if filepath.IsAbs(m.Source) {
			m.Type = mobymount.TypeBind
		}
	default:
		return m, bad("")
	}
	if m.Target == "" {
		return m, bad("")
	}
	if mode != "" {
		for _, o := range strings.Split(mode, ",") {
			switch o {
			case "ro":
				m.ReadOnly = true
			case "rw":
				m.ReadOnly = false
			case "nocopy":
				if m.Type != mobymount.TypeVolume {
					return m, bad("nocopy applies to volumes only")
				}
				m.VolumeOptions = &mobymount.VolumeOptions{NoCopy: true}
			case "z", "Z", "consistent", "cached", "delegated",
				"private", "rprivate", "shared", "rshared", "slave", "rslave":
				// Accepted and ignored: see the doc comment.
			default:
				return m, errdefs.InvalidArgument(fmt.Errorf("invalid mode: %s", mode))
			}
		}
	}
	if err := checkMount(m); err != nil {
		return m, bad(err.Error())
	}
	return m, nil
}

// ParseMountFlag parses one --mount flag value as the docker CLI does:
// comma-separated key=value fields (type, source|src, target|destination|dst,
// readonly|ro[=true|false], volume-label=K=V, volume-nocopy, bind-propagation,
// consistency). type defaults to volume; bind and volume are supported.
func ParseMountFlag(value string) (mobymount.Mount, error) {
	m := mobymount.Mount{Type: mobymount.TypeVolume}
	for _, field := range strings.Split(value, ",") {
		if field == "" {
			continue
		}
		key, val, hasVal := strings.Cut(field, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		boolVal := func() (bool, error) {
			if !hasVal {
				return true, nil
			}
			b, err := strconv.ParseBool(val)
			if err != nil {
				return false, errdefs.InvalidArgument(fmt.Errorf("invalid value for %s: %s", key, val))
			}
			return b, nil
		}
		switch key {
		case "readonly", "ro":
			b, err := boolVal()
			if err != nil {
				return m, err
			}
			m.ReadOnly = b
			continue
		case "volume-nocopy":
			b, err := boolVal()
			if err != nil {
				return m, err
			}
			if m.VolumeOptions == nil {
				m.VolumeOptions = &mobymount.VolumeOptions{}
			}
			m.VolumeOptions.NoCopy = b
			continue
		}
		if !hasVal {
			return m, errdefs.InvalidArgument(fmt.Errorf("invalid field '%s' must be a key=value pair", field))
		}
		switch key {
		case "type":
			m.Type = mobymount.Type(strings.ToLower(val))
		case "source", "src":
			m.Source = val
		case "target", "dst", "destination":
			m.Target = val
		case "volume-label":
			k, v, _ := strings.Cut(val, "=")
			if m.VolumeOptions == nil {
				m.VolumeOptions = &mobymount.VolumeOptions{}
			}
			if m.VolumeOptions.Labels == nil {
				m.VolumeOptions.Labels = map[string]string{}
			}
			m.VolumeOptions.Labels[k] = v
		case "bind-propagation", "consistency":
			// Accepted and ignored, as in ParseBind.
		default:
			return m, errdefs.InvalidArgument(fmt.Errorf("unexpected key '%s' in '%s'", key, field))
		}
	}
	switch m.Type {
	case mobymount.TypeBind, mobymount.TypeVolume:
	case "":
		return m, errdefs.InvalidArgument(errors.New("type is required"))
	default:
		return m, errdefs.InvalidArgument(fmt.Errorf("mount type %q is not supported by Berth (use bind or volume)", m.Type))
	}
	if m.Target == "" {
		return m, errdefs.InvalidArgument(errors.New("target is required"))
	}
	if m.Type == mobymount.TypeBind && m.Source == "" {
		return m, errdefs.InvalidArgument(errors.New("source is required for a bind mount"))
	}
	return m, nil
}

// checkMount is the daemon's validation of one mount, Binds and Mounts
// alike (the bind source's existence is Resolve's, which has the
// filesystem).
func checkMount(m mobymount.Mount) error {
	invalid := func(format string, a ...any) error {
		return errdefs.InvalidArgument(fmt.Errorf("invalid mount config for type %q: "+format, append([]any{m.Type}, a...)...))
	}
	if !path.IsAbs(m.Target) {
		return invalid("invalid mount path: '%s' mount path must be absolute", m.Target)
	}
	if path.Clean(m.Target) == "/" {
		return errdefs.InvalidArgument(errors.New("invalid specification: destination can't be '/'"))
	}
	switch m.Type {
	case mobymount.TypeBind:
		if m.Source == "" {
			return invalid("field Source must not be empty")
		}
		if !filepath.IsAbs(m.Source) {
			return invalid("invalid mount path: '%s' mount path must be absolute", m.Source)
		}
		if m.VolumeOptions != nil {
			return invalid("field VolumeOptions must not be specified")
		}
	case mobymount.TypeVolume:
		if m.Source != "" {
			if err := ValidateName(m.Source); err != nil {
				return err
			}
		}
		if m.BindOptions != nil {
			return invalid("field BindOptions must not be specified")
		}
		if o := m.VolumeOptions; o != nil && (o.Subpath != "" || o.DriverConfig != nil && o.DriverConfig.Name != "" && o.DriverConfig.Name != "local") {
			return invalid("volume subpaths and drivers other than local are not supported by Berth")
		}
	default:
		return errdefs.InvalidArgument(fmt.Errorf("mount type %q is not supported by Berth (use bind or volume)", m.Type))
	}
	return nil
}

// VolumeCreator makes the named volumes a container uses for the first
// time (Store.Ensure).
type VolumeCreator interface {
	// Ensure returns the volume name's data directory, creating the
	// volume with labels when it does not exist; name "" makes an
	// anonymous volume and returns its generated name.
	Ensure(name string, labels map[string]string) (volumeName, dataDir string, err error)
}

// Resolve checks a create request's mounts — binds (HostConfig.Binds),
// mounts (HostConfig.Mounts) and the container paths of anonymous
// volumes (Config.Volumes, which the docker CLI sends for "-v /path") —
// the way Docker's daemon does, creates the named volumes used for the
// first time through vols, and returns them in order: binds, then mounts,
// then anonymous volumes. A bind source that does not exist is an error
// naming it (nothing is created), as is one that is not a directory.
// Two mounts on one target are Docker's "Duplicate mount point".
func Resolve(binds []string, mounts []mobymount.Mount, anonymous []string, vols VolumeCreator) ([]Mount, error) {
	type item struct {
		m    mobymount.Mount
		spec string
	}
	var items []item
	for _, b := range binds {
		m, err := ParseBind(b)
		if err != nil {
			return nil, err
		}
		items = append(items, item{m, b})
	}
	for _, m := range mounts {
		if err := checkMount(m); err != nil {
			return nil, err
		}
		items = append(items, item{m, ""})
	}
	seen := map[string]bool{}
	for _, it := range items {
		t := path.Clean(it.m.Target)
		if seen[t] {
			return nil, errdefs.InvalidArgument(fmt.Errorf("Duplicate mount point: %s", t))
		}
		seen[t] = true
	}
	for _, a := range anonymous {
		// Docker: an anonymous volume on a target a bind or mount already
		// covers is dropped.
		if !path.IsAbs(a) {
			return nil, errdefs.InvalidArgument(fmt.Errorf("invalid mount config for type \"volume\": invalid mount path: '%s' mount path must be absolute", a))
		}
		if !seen[path.Clean(a)] {
			seen[path.Clean(a)] = true
			items = append(items, item{mobymount.Mount{Type: mobymount.TypeVolume, Target: a}, ""})
		}
	}
	out := make([]Mount, 0, len(items))
	for _, it := range items {
		m := Mount{Type: it.m.Type, Source: it.m.Source, Target: path.Clean(it.m.Target), ReadOnly: it.m.ReadOnly, Spec: it.spec,
			NoCopy: it.m.VolumeOptions != nil && it.m.VolumeOptions.NoCopy}
		switch m.Type {
		case mobymount.TypeBind:
			src := filepath.Clean(m.Source)
			fi, err := os.Stat(src)
			switch {
			case errors.Is(err, os.ErrNotExist):
				return nil, errdefs.InvalidArgument(fmt.Errorf("invalid mount config for type \"bind\": bind source path does not exist: %s (Berth does not create it: create the folder, or fix the path)", src))
			case errors.Is(err, os.ErrPermission):
				return nil, errdefs.PermissionDenied(fmt.Errorf("bind source %s: the user running Berth cannot reach it (%v)", src, err))
			case err != nil:
				return nil, fmt.Errorf("bind source %s: %w", src, err)
			case !fi.IsDir():
				return nil, errdefs.InvalidArgument(fmt.Errorf("bind source %s is not a directory: Berth shares folders only (share the folder that holds it)", src))
			}
			m.Source, m.HostPath = src, src
		}
		out = append(out, m)
	}
	// Volumes last, once every bind is known good: a failed create makes
	// no volume.
	for i, it := range items {
		m := &out[i]
		if m.Type != mobymount.TypeVolume {
			continue
		}
		if vols == nil {
			return nil, errdefs.Unavailable(errors.New("this engine has no volume store"))
		}
		var labels map[string]string
		if it.m.VolumeOptions != nil {
			labels = it.m.VolumeOptions.Labels
		}
		m.Anonymous = m.Source == ""
		name, dir, err := vols.Ensure(m.Source, labels)
		if err != nil {
			return nil, err
		}
		m.Source, m.HostPath = name, dir
	}
	return out, nil
}
