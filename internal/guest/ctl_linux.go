package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	"github.com/berthvm/berth/engine/errdefs/errgrpc"
)

// ctlMsg is one message between guestinit and a container init.
type ctlMsg struct {
	Op string `json:"op"`
	ID string `json:"id,omitempty"`

	Init *initSpec `json:"init,omitempty"` // opInit
	Proc *procSpec `json:"proc,omitempty"` // opStart

	Sig      int    `json:"sig,omitempty"`  // opSignal, opExit
	Pid      int    `json:"pid,omitempty"`  // opStarted
	ExitCode int    `json:"code,omitempty"` // opExit
	Err      string `json:"err,omitempty"`  // opError
	// ErrCode is Err's errdefs class as a gRPC code (errgrpc.Code).
	ErrCode codes.Code `json:"errcode,omitempty"`
}

// errorMsg is the opError answer for process id failing with err: its
// message and class.
func errorMsg(id string, err error) *ctlMsg {
	return &ctlMsg{Op: opError, ID: id, Err: err.Error(), ErrCode: errgrpc.Code(err)}
}

// err is an opError message's error, with its class.
func (m *ctlMsg) err() error {
	return errgrpc.WithCode(m.ErrCode, errors.New(m.Err))
}

// Control operations. guestinit sends opInit, opStart and opSignal; the
// container init answers opReady, opStarted or opError, and sends opExit
// on its own.
const (
	opInit    = "init"
	opStart   = "start"
	opSignal  = "signal"
	opReady   = "ready"
	opStarted = "started"
	opError   = "error"
	opExit    = "exit"
)

// initSpec sets up a container's namespaces.
type initSpec struct {
	Rootfs   string `json:"rootfs"`
	Hostname string `json:"hostname,omitempty"`
	// StageExe is the static executable the main process starts as
	// (Config.StageExe); empty: the init's own.
	StageExe string `json:"stageExe,omitempty"`
	// Privileged mounts sysfs and cgroup2 read-write
	// (CreateProcessRequest.privileged).
	Privileged bool `json:"privileged,omitempty"`
}

// procSpec is a process for the container init to start. Its stdio
// descriptors travel with the message: stdin, stdout, stderr in order.
type procSpec struct {
	Args           []string    `json:"args"`
	Env            []string    `json:"env,omitempty"`
	Cwd            string      `json:"cwd,omitempty"`
	User           string      `json:"user,omitempty"`
	AdditionalGids []uint32    `json:"gids,omitempty"`
	Tty            bool        `json:"tty,omitempty"`
	Rlimits        []rlimitReq `json:"rlimits,omitempty"`
	Main           bool        `json:"main,omitempty"`
	// Init puts a reaping init in front of the main process (Main only).
	Init bool `json:"init,omitempty"`
}

type rlimitReq struct {
	Type string `json:"type"`
	Soft uint64 `json:"soft"`
	Hard uint64 `json:"hard"`
}

const ctlMaxMsg = 1 << 20

// ctlConn is one end of the control socketpair.
type ctlConn struct {
	c *net.UnixConn
}

// newCtlPair returns a connected SOCK_SEQPACKET pair: the local end, and
// the file to hand to the container init.
func newCtlPair() (*ctlConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("create control socketpair: %w", err)
	}
	local, err := fileCtl(os.NewFile(uintptr(fds[0]), "ctl"))
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return local, os.NewFile(uintptr(fds[1]), "ctl-child"), nil
}

// fileCtl wraps f (closed here) as a ctlConn.
func fileCtl(f *os.File) (*ctlConn, error) {
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("use control socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("use control socket: not a unix socket (%T)", c)
	}
	return &ctlConn{c: uc}, nil
}

// send writes m with files attached. The files stay open.
func (c *ctlConn) send(m *ctlMsg, files ...*os.File) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode control message %s: %w", m.Op, err)
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := c.c.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("send control message %s: %w", m.Op, err)
	}
	return nil
}

// recv reads one message and the files attached to it.
func (c *ctlConn) recv() (*ctlMsg, []*os.File, error) {
	buf := make([]byte, ctlMaxMsg)
	oob := make([]byte, unix.CmsgSpace(3*4))
	n, oobn, flags, _, err := c.c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, nil, err
	}
	if n == 0 && oobn == 0 {
		return nil, nil, fmt.Errorf("receive control message: %w", net.ErrClosed)
	}
	files, err := parseRights(oob[:oobn])
	if err != nil {
		return nil, nil, err
	}
	if flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0 {
		closeAll(files)
		return nil, nil, fmt.Errorf("receive control message: truncated")
	}
	var m ctlMsg
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		closeAll(files)
		return nil, nil, fmt.Errorf("decode control message: %w", err)
	}
	return &m, files, nil
}

func (c *ctlConn) close() error { return c.c.Close() }

func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	scms, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message descriptors: %w", err)
	}
	var files []*os.File
	for _, scm := range scms {
		fds, err := unix.ParseUnixRights(&scm)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			files = append(files, os.NewFile(uintptr(fd), "stdio"))
		}
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}
