// Command testinit is a tiny PID 1 for the QEMU backend's tests: enough of
// a guest to prove kernel + initramfs + modules + QEMU + agent transport,
// and to misbehave on purpose (hang, panic) in ways the real guestinit
// never would.
//
// It mounts /dev, /proc and /sys; prints "testinit: start" on the
// console; loads /lib/modules/load.order and late.order with finit_module; mounts
// /dev/vda (ext4) on /mnt when there is one and prints /mnt/marker;
// mounts 9p share "share0" on /share when there is one; then serves the
// agent transport (yamux over the virtio-serial port berth.agent, or
// vsock) on port 1024: each connection sends one command line —
//
//	echo      echoes everything that follows until EOF
//	read P    sends the contents of file P
//	poweroff  syncs and powers the VM off (ignored in berth.test=hang)
//	panic     exits PID 1, which panics the kernel
//
// Kernel command line: berth.test=hang makes poweroff a no-op.
package main

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthvm/berth/engine/agent/transport"
)

func main() {
	start := time.Now()
	log.SetFlags(0)
	log.SetPrefix("testinit: ")
	mount("devtmpfs", "/dev", "devtmpfs", "")
	mount("proc", "/proc", "proc", "")
	mount("sysfs", "/sys", "sysfs", "")
	log.Printf("start")
	cmdline, _ := os.ReadFile("/proc/cmdline")
	hang := strings.Contains(string(cmdline), "berth.test=hang")

	n := loadModules()
	log.Printf("loaded %d modules in %v", n, time.Since(start).Round(time.Millisecond))
	waitFor("/dev/vda", time.Second)
	if _, err := os.Stat("/dev/vda"); err == nil {
		os.MkdirAll("/mnt", 0o755)
		mount("/dev/vda", "/mnt", "ext4", "")
		if b, err := os.ReadFile("/mnt/marker"); err == nil {
			log.Printf("marker %s", strings.TrimSpace(string(b)))
		}
	}
	os.MkdirAll("/share", 0o755)
	if err := unix.Mount("share0", "/share", "9p", 0, "trans=virtio,version=9p2000.L"); err == nil {
		log.Printf("mounted share0")
	}

	l, err := listener()
	if err != nil {
		log.Printf("agent transport: %v", err)
		select {}
	}
	ln, err := l.ListenPort(transport.AgentPort)
	if err != nil {
		log.Printf("listen: %v", err)
		select {}
	}
	log.Printf("serving after %v", time.Since(start).Round(time.Millisecond))
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Printf("accept: %v", err)
			select {}
		}
		go serve(c, hang)
	}
}

func mount(src, dst, fstype, data string) {
	os.MkdirAll(dst, 0o755)
	if err := unix.Mount(src, dst, fstype, 0, data); err != nil {
		log.Printf("mount %s on %s: %v", src, dst, err)
	}
}

func waitFor(path string, d time.Duration) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
}

// loadModules loads the boot modules and then the late ones (this init
// mounts a 9p share at once, so it does not defer them as guestinit does).
func loadModules() int {
	var paths []string
	for _, order := range []string{"/lib/modules/load.order", "/lib/modules/late.order"} {
		if b, err := os.ReadFile(order); err == nil {
			paths = append(paths, strings.Fields(string(b))...)
		}
	}
	n := 0
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			log.Printf("module %s: %v", p, err)
			continue
		}
		if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST {
			log.Printf("load %s: %v", p, err)
		} else {
			n++
		}
		f.Close()
	}
	return n
}

// listener picks the transport: the virtio-serial port when QEMU gave
// one, vsock otherwise.
func listener() (transport.Listener, error) {
	var port io.ReadWriteCloser
	var err error
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if port, err = transport.OpenVirtioPort(transport.SerialPortName); err == nil {
			return transport.NewMuxListener(port, log.Default())
		}
		if _, verr := os.Stat("/dev/vsock"); verr == nil {
			return transport.Vsock{}, nil
		}
	}
	return nil, err
}

func serve(c net.Conn, hang bool) {
	defer c.Close()
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	switch cmd {
	case "echo":
		io.Copy(c, r)
	case "read":
		b, err := os.ReadFile(arg)
		if err != nil {
			fmt.Fprintf(c, "error: %v", err)
			return
		}
		c.Write(b)
	case "poweroff":
		if hang {
			log.Printf("ignoring poweroff")
			return
		}
		unix.Sync()
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
			log.Printf("poweroff: %v", err)
		}
	case "panic":
		log.Printf("exiting PID 1")
		os.Exit(3)
	default:
		fmt.Fprintf(c, "unknown command %q\n", cmd)
	}
}
