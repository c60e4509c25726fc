package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	kernelasset "github.com/berthvm/berth/assets/kernel"
	"github.com/berthvm/berth/engine/errdefs"
)

// EnvKernel names the environment variable that overrides every other
// kernel choice: a kernel file or an unpacked kernel package directory.
const EnvKernel = "BERTH_KERNEL"

// ChoiceFile is the name of the file in the Berth home that records the
// user's kernel choice.
const ChoiceFile = "kernel.json"

// Choice is the persisted kernel choice (HOME/kernel.json): either a local
// Path, or a package to fetch (URL and SHA256).
type Choice struct {
	// Path is a kernel file or unpacked kernel package directory.
	Path string `json:"path,omitempty"`
	Source
}

// Options say where Resolve looks.
type Options struct {
	// Home is the Berth home holding kernel.json; "" skips the persisted
	// choice.
	Home string
	// CacheDir holds fetched and unpacked kernels (on Linux also the trees
	// fetch-debian-kernel.sh leaves in CacheDir/ARCH); usually
	// ~/.cache/berth/kernel.
	CacheDir string
	// Arch is the guest architecture (GOARCH); default runtime.GOARCH.
	Arch string
	// Getenv reads the environment; default os.Getenv.
	Getenv func(string) string
	// Progress receives the progress of a download Resolve starts.
	Progress Progress
	// GOOS decides the platform defaults; default runtime.GOOS.
	GOOS string
	// Client downloads kernel packages; default http.DefaultClient.
	Client *http.Client
	// Offline makes Resolve download nothing: where it would fetch a
	// kernel that is not in the cache yet, it fails with ErrNotFetched
	// naming the URL (for status displays).
	Offline bool
}

// ErrNotFetched is the class of Resolve's error with Offline when the
// kernel it would boot has not been downloaded yet; the error is a
// *NotFetchedError.
var ErrNotFetched = errors.New("kernel not downloaded yet")

// NotFetchedError is Resolve's error with Offline when the kernel it
// would boot is still to be downloaded.
type NotFetchedError struct {
	// Origin is the step of Resolve that chose the kernel.
	Origin Origin
	// URL is where it will be fetched from.
	URL string
}

func (e *NotFetchedError) Error() string {
	return fmt.Sprintf("%v: it is fetched on first use from %s", ErrNotFetched, e.URL)
}

// Is makes errors.Is(err, ErrNotFetched) hold.
func (e *NotFetchedError) Is(target error) bool { return target == ErrNotFetched }

// Origin says which step of Resolve found a kernel. Its values are the
// words `berth system kernel` shows.
type Origin string

// The origins of a resolved kernel, in Resolve's order.
const (
	// OriginEnv: $BERTH_KERNEL.
	OriginEnv Origin = "$" + EnvKernel
	// OriginChoice: the choice persisted in HOME/kernel.json.
	OriginChoice Origin = ChoiceFile
	// OriginCache: the Debian kernel tree in CACHE/ARCH.
	OriginCache Origin = "kernel cache"
	// OriginHost: the host's own /boot/vmlinuz-VERSION.
	OriginHost Origin = "/boot"
	// OriginDefault: the pinned default package.
	OriginDefault Origin = "pinned default"
)

// fetch is Fetch, or with Offline the cached tree only.
func (o Options) fetch(ctx context.Context, src Source, dest string, origin Origin) (*Kernel, error) {
	if o.Offline {
		if k, err := Open(dest); err == nil && k.ModulesDir != "" {
			return k, nil
		}
		return nil, &NotFetchedError{Origin: origin, URL: src.URL}
	}
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	return fetch(ctx, client, src, dest, o.Progress)
}

// Resolve finds the active kernel, trying in order:
//
//  1. $BERTH_KERNEL (a kernel file or unpacked package directory);
//  2. the choice persisted in HOME/kernel.json: a path, or a package URL
//     and SHA-256, fetched into CACHE/sha256-PREFIX on first use;
//  3. on Linux, the Debian kernel tree in CACHE/ARCH that
//     assets/kernel/fetch-debian-kernel.sh leaves;
//  4. on Linux, the newest /boot/vmlinuz-VERSION that has
//     /lib/modules/VERSION (the host's own kernel, guest arch = host arch);
//  5. the pinned default package for ARCH (assets/kernel/default.json),
//     fetched into CACHE/default-ARCH — on Linux only when 3 and 4 found
//     nothing.
//
// A kernel for another architecture than ARCH is an error. The error when
// nothing is found lists every place tried. The kernel's Origin names the
// step that found it.
func Resolve(ctx context.Context, o Options) (*Kernel, error) {
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.GOOS == "" {
		o.GOOS = runtime.GOOS
	}
	check := func(k *Kernel, origin Origin, from string) (*Kernel, error) {
		if k.Arch != o.Arch {
			return nil, errdefs.InvalidArgument(fmt.Errorf("kernel from %s is %s, the guest needs %s: %s", from, k.Arch, o.Arch, k))
		}
		k.Origin = origin
		return k, nil
	}
	if p := o.Getenv(EnvKernel); p != "" {
		k, err := Open(p)
		if err != nil {
			return nil, fmt.Errorf("kernel from $%s: %w", EnvKernel, err)
		}
		return check(k, OriginEnv, "$"+EnvKernel)
	}
	var tried []string
	if o.Home != "" {
		c, err := ReadChoice(o.Home)
		switch {
		case err != nil:
			return nil, err
		case c == nil:
			tried = append(tried, filepath.Join(o.Home, ChoiceFile)+" (absent)")
		case c.Path != "":
			k, err := Open(c.Path)
			if err != nil {
				return nil, fmt.Errorf("kernel chosen in %s: %w", filepath.Join(o.Home, ChoiceFile), err)
			}
			return check(k, OriginChoice, filepath.Join(o.Home, ChoiceFile))
		default:
			k, err := o.fetch(ctx, c.Source, filepath.Join(o.CacheDir, "sha256-"+prefix(c.SHA256)), OriginChoice)
			if err != nil {
				return nil, fmt.Errorf("kernel chosen in %s: %w", filepath.Join(o.Home, ChoiceFile), err)
			}
			return check(k, OriginChoice, c.URL)
		}
	}
	if o.GOOS == "linux" {
		if o.CacheDir != "" {
			dir := filepath.Join(o.CacheDir, o.Arch)
			if k, err := Open(dir); err == nil && k.ModulesDir != "" {
				return check(k, OriginCache, dir)
			}
			tried = append(tried, dir+" (no boot/vmlinuz-* with lib/modules; run assets/kernel/fetch-debian-kernel.sh "+o.Arch+")")
		}
		if o.Arch == runtime.GOARCH {
			if k, err := hostKernel(); err == nil {
				k.Origin = OriginHost
				return k, nil
			}
			tried = append(tried, "/boot/vmlinuz-* (none with its /lib/modules/VERSION)")
		}
	}
	src, err := DefaultSource(o.Arch)
	if err != nil {
		return nil, errdefs.NotFound(fmt.Errorf("no kernel for %s: tried $%s (unset), %s; %w", o.Arch, EnvKernel, strings.Join(tried, ", "), err))
	}
	if o.CacheDir == "" {
		return nil, errdefs.NotFound(fmt.Errorf("no kernel for %s: tried $%s (unset), %s; no cache directory to fetch the default into", o.Arch, EnvKernel, strings.Join(tried, ", ")))
	}
	k, err := o.fetch(ctx, src, filepath.Join(o.CacheDir, "default-"+o.Arch), OriginDefault)
	if err != nil {
		return nil, fmt.Errorf("default kernel: %w", err)
	}
	return check(k, OriginDefault, src.URL)
}

func prefix(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

// hostKernel is the newest /boot/vmlinuz-VERSION with /lib/modules/VERSION.
func hostKernel() (*Kernel, error) {
	m, _ := filepath.Glob("/boot/vmlinuz-*")
	return openNewestOf(m)
}

// openNewestOf opens the newest of paths that has its modules directory.
func openNewestOf(paths []string) (*Kernel, error) {
	ps := append([]string(nil), paths...)
	for len(ps) > 0 {
		best := 0
		for i := range ps {
			if versionLess(ps[best], ps[i]) {
				best = i
			}
		}
		if k, err := Open(ps[best]); err == nil && k.ModulesDir != "" {
			return k, nil
		}
		ps = append(ps[:best], ps[best+1:]...)
	}
	return nil, errdefs.NotFound(errors.New("no /boot/vmlinuz-* with /lib/modules"))
}

// ReadChoice reads HOME/kernel.json; it returns nil, nil when there is
// none.
func ReadChoice(home string) (*Choice, error) {
	p := filepath.Join(home, ChoiceFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read kernel choice: %w", err)
	}
	var c Choice
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, errdefs.InvalidArgument(fmt.Errorf("read kernel choice %s: %w", p, err))
	}
	if c.Path == "" && (c.URL == "" || c.SHA256 == "") {
		return nil, errdefs.InvalidArgument(fmt.Errorf("read kernel choice %s: needs \"path\", or \"url\" and \"sha256\"", p))
	}
	return &c, nil
}

// WriteChoice persists c as HOME/kernel.json.
func WriteChoice(home string, c Choice) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(home, ChoiceFile), append(b, '\n')); err != nil {
		return fmt.Errorf("write kernel choice: %w", err)
	}
	return nil
}

// DefaultSource is the pinned default kernel package for arch, from
// assets/kernel/default.json.
func DefaultSource(arch string) (Source, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(kernelasset.DefaultJSON, &all); err != nil {
		return Source{}, fmt.Errorf("read pinned default kernel: %w", err)
	}
	raw, ok := all[arch]
	if !ok {
		return Source{}, errdefs.NotFound(fmt.Errorf("no pinned default kernel for %s", arch))
	}
	var s Source
	if err := json.Unmarshal(raw, &s); err != nil {
		return Source{}, fmt.Errorf("read pinned default kernel for %s: %w", arch, err)
	}
	return s, nil
}
