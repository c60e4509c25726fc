package guest

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/errdefs"
)

// service implements agentpb.AgentService on a Server.
type service struct {
	s *Server
}

var empty = &agentpb.Empty{}

func (v *service) Ping(ctx context.Context, _ *agentpb.PingRequest) (*agentpb.PingResponse, error) {
	return &agentpb.PingResponse{Version: v.s.cfg.Version}, nil
}

func (v *service) Info(ctx context.Context, _ *agentpb.InfoRequest) (*agentpb.InfoResponse, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return nil, fmt.Errorf("info: uname: %w", err)
	}
	b := v.s.cfg.Boot
	return &agentpb.InfoResponse{
		KernelRelease: unix.ByteSliceToString(u.Release[:]),
		KernelVersion: unix.ByteSliceToString(u.Version[:]),
		Machine:       unix.ByteSliceToString(u.Machine[:]),
		Addresses:     interfaceAddresses(),
		Version:       v.s.cfg.Version,
		NowBoottimeNs: int64(bootTime()),
		AgentRssBytes: selfRSS(),
		Boot: &agentpb.BootTimes{
			InitStartNs:     int64(b.InitStart),
			ModulesLoadedNs: int64(b.ModulesLoaded),
			RootfsMountedNs: int64(b.RootfsMounted),
			AgentServingNs:  int64(v.s.servingAt),
		},
	}, nil
}

// interfaceAddresses lists the addresses of every interface but loopback,
// IPv4 first, link-local ones left out.
func interfaceAddresses() []string {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var v4, v6 []string
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLinkLocalUnicast() {
				continue
			}
			if ipn.IP.To4() != nil {
				v4 = append(v4, a.String())
			} else {
				v6 = append(v6, a.String())
			}
		}
	}
	return append(v4, v6...)
}

func (v *service) Mount(ctx context.Context, r *agentpb.MountRequest) (*agentpb.Empty, error) {
	return empty, v.s.mount(r)
}

func (v *service) Unmount(ctx context.Context, r *agentpb.UnmountRequest) (*agentpb.Empty, error) {
	return empty, v.s.unmount(r)
}

func (v *service) ConfigureNetwork(ctx context.Context, r *agentpb.ConfigureNetworkRequest) (*agentpb.Empty, error) {
	return empty, v.s.configureNetwork(r)
}

func (v *service) CreateProcess(ctx context.Context, r *agentpb.CreateProcessRequest) (*agentpb.CreateProcessResponse, error) {
	return &agentpb.CreateProcessResponse{}, v.s.createProcess(r)
}

func (v *service) StartProcess(ctx context.Context, r *agentpb.StartProcessRequest) (*agentpb.StartProcessResponse, error) {
	pid, err := v.s.startProcess(ctx, r.Id)
	if err != nil {
		return nil, err
	}
	return &agentpb.StartProcessResponse{Pid: int32(pid)}, nil
}

func (v *service) WaitProcess(ctx context.Context, r *agentpb.WaitProcessRequest) (*agentpb.WaitProcessResponse, error) {
	p, err := v.s.lookup(r.Id)
	if err != nil {
		return nil, err
	}
	return p.wait(ctx)
}

func (v *service) SignalProcess(ctx context.Context, r *agentpb.SignalProcessRequest) (*agentpb.Empty, error) {
	p, err := v.s.lookup(r.Id)
	if err != nil {
		return nil, err
	}
	return empty, p.signal(int(r.Signal))
}

func (v *service) ResizePty(ctx context.Context, r *agentpb.ResizePtyRequest) (*agentpb.Empty, error) {
	p, err := v.s.lookup(r.Id)
	if err != nil {
		return nil, err
	}
	return empty, p.resize(r.Rows, r.Cols)
}

func (v *service) CloseStdin(ctx context.Context, r *agentpb.CloseStdinRequest) (*agentpb.Empty, error) {
	p, err := v.s.lookup(r.Id)
	if err != nil {
		return nil, err
	}
	p.closeStdin(r.StdinBytes)
	return empty, nil
}

func (v *service) DeleteProcess(ctx context.Context, r *agentpb.DeleteProcessRequest) (*agentpb.Empty, error) {
	p, err := v.s.lookup(r.Id)
	if err != nil {
		return nil, err
	}
	return empty, p.delete()
}

func (v *service) Stats(ctx context.Context, _ *agentpb.StatsRequest) (*agentpb.StatsResponse, error) {
	return readStats()
}

func (v *service) ListProcesses(ctx context.Context, _ *agentpb.ListProcessesRequest) (*agentpb.ListProcessesResponse, error) {
	return v.s.listProcesses()
}

// Events streams exit and OOM events until the host goes away. ttrpc has
// no stream interceptor, so it recovers from panics itself.
func (v *service) Events(ctx context.Context, _ *agentpb.EventsRequest, srv agentpb.Agent_EventsServer) (err error) {
	defer func() {
		if r := recover(); r != nil {
			v.s.logger.Printf("panic in Events: %v\n%s", r, debug.Stack())
			err = fmt.Errorf("events: internal error in guestinit: %v", r)
		}
	}()
	ch, cancel := v.s.subscribe()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-ch:
			if err := srv.Send(ev); err != nil {
				return err
			}
			if ev.Kind == agentpb.Event_EXIT {
				if p, err := v.s.lookup(ev.Id); err == nil {
					p.markReported()
				}
			}
		}
	}
}

func (v *service) SetTime(ctx context.Context, r *agentpb.SetTimeRequest) (*agentpb.Empty, error) {
	if r.UnixNs <= 0 {
		return nil, errdefs.InvalidArgument(fmt.Errorf("set time: %d is not a time after 1970", r.UnixNs))
	}
	if !v.s.cfg.SetClock {
		return nil, errdefs.NotImplemented(fmt.Errorf("set time: this agent does not own the clock"))
	}
	ts := unix.NsecToTimespec(r.UnixNs)
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return nil, fmt.Errorf("set time to %s: %w", time.Unix(0, r.UnixNs).UTC(), err)
	}
	return empty, nil
}

func (v *service) Shutdown(ctx context.Context, r *agentpb.ShutdownRequest) (*agentpb.Empty, error) {
	v.s.logger.Printf("shutdown requested by the host (reboot=%v)", r.Reboot)
	v.s.requestShutdown(r.Reboot)
	return empty, nil
}

// selfRSS is this process's resident memory (VmRSS), 0 if unknown.
func selfRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
