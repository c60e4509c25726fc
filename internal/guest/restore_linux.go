package guest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
)

// minRestoreEntropy is the fewest host random bytes FinishRestore takes:
// 256 bits, a full CRNG seed.
const minRestoreEntropy = 32

// entropyHeadSize is the header of struct rand_pool_info (random(4)):
// int entropy_count (bits); int buf_size (bytes).
const entropyHeadSize = 8

// restoreState makes FinishRestore run once per restored guest.
type restoreState struct {
	mu   sync.Mutex
	done bool
}

// FinishRestore completes a guest resumed from a template: clock,
// entropy and CRNG reseed, MAC address, then the root disk
// (Config.MountRoot). Everything a container process could observe is in
// place before the call returns, and it refuses a second call.
func (v *service) FinishRestore(ctx context.Context, r *agentpb.FinishRestoreRequest) (*agentpb.Empty, error) {
	if v.s.cfg.MountRoot == nil {
		return nil, errdefs.Conflict(errors.New("finish restore: this guest was not booted as a template (berth.template=1)"))
	}
	if len(r.Entropy) < minRestoreEntropy {
		return nil, errdefs.InvalidArgument(fmt.Errorf("finish restore: %d bytes of entropy, want at least %d", len(r.Entropy), minRestoreEntropy))
	}
	if r.UnixNs <= 0 {
		return nil, errdefs.InvalidArgument(fmt.Errorf("finish restore: time %d is not after 1970", r.UnixNs))
	}
	st := &v.s.restore
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		return nil, errdefs.Conflict(errors.New("finish restore: already finished"))
	}
	start := time.Now()
	ts := unix.NsecToTimespec(r.UnixNs)
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return nil, fmt.Errorf("finish restore: set time: %w", err)
	}
	// The NIC's MAC is set while the CRNG is reseeded and the root
	// mounted: on 2 vCPUs these overlap.
	macDone := make(chan error, 1)
	go func() {
		var err error
		if r.Mac != "" {
			err = setMAC(r.Mac)
		}
		macDone <- err
	}()
	if err := reseedRandom(r.Entropy); err != nil {
		<-macDone
		return nil, fmt.Errorf("finish restore: %w", err)
	}
	reseeded := time.Since(start)
	if err := v.s.cfg.MountRoot(ctx, r.RootSize); err != nil {
		<-macDone
		return nil, fmt.Errorf("finish restore: %w", err)
	}
	mounted := time.Since(start)
	if err := <-macDone; err != nil {
		return nil, fmt.Errorf("finish restore: %w", err)
	}
	st.done = true
	v.s.logger.Printf("restored from a template: clock set, CRNG reseeded with %d host bytes (%v), root mounted (%v), MAC set (%v)",
		len(r.Entropy), reseeded.Round(time.Microsecond), mounted.Round(time.Microsecond), time.Since(start).Round(time.Microsecond))
	return empty, nil
}

// reseedRandom credits b to the kernel's input pool (RNDADDENTROPY,
// counted as full entropy: it comes from the host's CSPRNG) and forces
// the CRNG to reseed from it (RNDRESEEDCRNG), so the next read of
// /dev/urandom in this guest differs from every other guest restored
// from the same template.
func reseedRandom(b []byte) error {
	f, err := unix.Open("/dev/urandom", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/urandom: %w", err)
	}
	defer unix.Close(f)
	buf := make([]byte, entropyHeadSize+len(b))
	*(*int32)(unsafe.Pointer(&buf[0])) = int32(8 * len(b))
	*(*int32)(unsafe.Pointer(&buf[4])) = int32(len(b))
	copy(buf[entropyHeadSize:], b)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(f), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
		return fmt.Errorf("add host entropy (RNDADDENTROPY): %w", errno)
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(f), unix.RNDRESEEDCRNG, 0); errno != 0 {
		return fmt.Errorf("reseed the CRNG (RNDRESEEDCRNG): %w", errno)
	}
	return nil
}

// setMAC gives the first NIC the address mac (down, set, and up again
// only if it was up: the host's ConfigureNetwork brings it up).
func setMAC(mac string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return errdefs.InvalidArgument(fmt.Errorf("MAC address %q: %w", mac, err))
	}
	link, err := findNIC("")
	if err != nil {
		return err
	}
	name := link.Attrs().Name
	up := link.Attrs().Flags&net.FlagUp != 0
	if up {
		if err := netlink.LinkSetDown(link); err != nil {
			return fmt.Errorf("set MAC: bring %s down: %w", name, err)
		}
	}
	if err := netlink.LinkSetHardwareAddr(link, hw); err != nil {
		return fmt.Errorf("set MAC %s on %s: %w", mac, name, err)
	}
	if up {
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("set MAC: bring %s up: %w", name, err)
		}
	}
	return nil
}

// WaitBlockSize waits until the block device dev (/dev/vda) reports size
// bytes (a restored guest sees a resized disk once the host's resize
// notification is handled), then drops its buffer cache (BLKFLSBUF): the
// cache may hold blocks of the template's disk, read at the template's
// boot. size 0 only drops the cache.
func WaitBlockSize(ctx context.Context, dev string, size uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var got uint64
	for size != 0 {
		fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", dev, err)
		}
		var n uint64
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&n)))
		unix.Close(fd)
		if errno != 0 {
			return fmt.Errorf("size of %s: %w", dev, errno)
		}
		got = n
		if got == size {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still has %d bytes after %v, want %d (the host's resize did not arrive)", dev, got, timeout, size)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to have %d bytes: %w", dev, size, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetInt(fd, unix.BLKFLSBUF, 0); err != nil {
		return fmt.Errorf("drop the buffer cache of %s: %w", dev, err)
	}
	return nil
}
