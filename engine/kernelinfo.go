package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/kernel"
	"github.com/berthvm/berth/engine/launcher"
)

// Kernel describes the kernel the engine would boot now. It downloads
// nothing: a kernel still to be fetched is reported with its URL.
func (e *Engine) Kernel(ctx context.Context) types.KernelInfo {
	k, err := kernel.Resolve(ctx, kernel.Options{Home: e.home.Dir, CacheDir: launcher.KernelCacheDir(), Offline: true})
	if err != nil {
		var nf *kernel.NotFetchedError
		if errors.As(err, &nf) {
			return types.KernelInfo{Arch: runtime.GOARCH, Source: string(nf.Origin), Error: err.Error()}
		}
		return types.KernelInfo{Arch: runtime.GOARCH, Error: fmt.Sprintf("%v (on Linux run `make kernel`; anywhere: `berth system kernel set --path PATH`)", err)}
	}
	info := types.KernelInfo{Path: k.Path, Version: k.Version, Arch: k.Arch, Format: string(k.Format), Source: string(k.Origin)}
	for _, need := range kernel.GuestConfigs() {
		if k.Support(need.Option) == kernel.Missing {
			info.Missing = append(info.Missing, need.Option+": "+need.For)
		}
	}
	return info
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// SetKernel persists the user's kernel choice in the home: a kernel file
// or unpacked kernel package directory (checked now: it must open and be
// for this machine's architecture), or a .deb URL with its SHA-256
// (downloaded and verified on first use).
func (e *Engine) SetKernel(ctx context.Context, choice types.KernelChoice) (types.KernelInfo, error) {
	c := kernel.Choice{Path: choice.Path, Source: kernel.Source{URL: choice.URL, SHA256: choice.SHA256}}
	switch {
	case c.Path != "" && c.URL != "":
		return types.KernelInfo{}, errdefs.InvalidArgument(errors.New("set kernel: give a path or a URL, not both"))
	case c.Path != "":
		k, err := kernel.Open(c.Path)
		if err != nil {
			return types.KernelInfo{}, errdefs.InvalidArgument(fmt.Errorf("set kernel %s: %w", c.Path, err))
		}
		if k.Arch != runtime.GOARCH {
			return types.KernelInfo{}, errdefs.InvalidArgument(fmt.Errorf("set kernel %s: it is a %s kernel; this machine's guests are %s", c.Path, k.Arch, runtime.GOARCH))
		}
		abs, err := filepath.Abs(c.Path)
		if err != nil {
			return types.KernelInfo{}, fmt.Errorf("set kernel %s: %w", c.Path, err)
		}
		c = kernel.Choice{Path: abs}
	case c.URL != "":
		c.SHA256 = strings.ToLower(c.SHA256)
		if !strings.HasPrefix(c.URL, "https://") && !strings.HasPrefix(c.URL, "http://") {
			return types.KernelInfo{}, errdefs.InvalidArgument(fmt.Errorf("set kernel: URL %q is not http(s)", c.URL))
		}
		if !sha256Hex.MatchString(c.SHA256) {
			return types.KernelInfo{}, errdefs.InvalidArgument(fmt.Errorf("set kernel %s: --sha256 must be 64 hex digits", c.URL))
		}
	default:
		return types.KernelInfo{}, errdefs.InvalidArgument(errors.New("set kernel: give --path PATH, or --url URL with --sha256 HEX"))
	}
	if err := kernel.WriteChoice(e.home.Dir, c); err != nil {
		return types.KernelInfo{}, err
	}
	return e.Kernel(ctx), nil
}
