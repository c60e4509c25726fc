package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	bnet "github.com/berthvm/berth/engine/network"
	mobynetwork "github.com/moby/moby/api/types/network"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/berthvm/berth/engine/container"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/go-units"
	mobycontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	docker "github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// createFlags are the flags of run and create (docker's names).
type createFlags struct {
	tty, interactive, detach, rm, readOnly bool
	init, quiet, cold                      bool
	name, workdir, user, entrypoint        string
	hostname, pull, cidfile                string
	stopSignal                             string
	stopTimeout                            int
	env, envFiles, labels, labelFiles      []string
	cpus                                   float64
	memory                                 string
	volumes, mounts, publish, expose       []string
	publishAll                             bool
	network, ip                            string
	aliases, dns, dnsSearch, addHosts      []string
	dnsOptions                             []string
}

func (f *createFlags) register(c *cobra.Command, run bool) {
	fl := c.Flags()
	fl.SetInterspersed(false) // flags after the image belong to the command
	fl.BoolVarP(&f.tty, "tty", "t", false, "allocate a pseudo-terminal")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open")
	if run {
		fl.BoolVarP(&f.detach, "detach", "d", false, "run in the background and print the container ID")
	}
	fl.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	fl.BoolVar(&f.readOnly, "read-only", false, "mount the container's root filesystem read-only")
	fl.BoolVar(&f.init, "init", false, "run an init as the container's PID 1 that reaps orphans and forwards signals")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "suppress the pull output")
	fl.BoolVar(&f.cold, "cold", false, "boot the container's VM cold instead of restoring it from a fast-start template (sets the label "+container.ColdBootLabel+"=true)")
	fl.StringVar(&f.name, "name", "", "name the container")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fl.StringVarP(&f.user, "user", "u", "", "user (name|uid[:group|gid])")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "override the image's entrypoint")
	// -h is the host name, as in docker's run and create; help is --help.
	fl.StringVarP(&f.hostname, "hostname", "h", "", "container host name")
	fl.Bool("help", false, "help for "+c.Name())
	fl.StringVar(&f.pull, "pull", "missing", "pull the image: missing, always or never")
	fl.StringVar(&f.cidfile, "cidfile", "", "write the container ID to this file (refused if it exists)")
	fl.StringVar(&f.stopSignal, "stop-signal", "", "signal that stops the container (default SIGTERM)")
	fl.IntVar(&f.stopTimeout, "stop-timeout", 0, "seconds stop waits before killing the container")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable (KEY=VALUE, or KEY to pass the local value)")
	fl.StringArrayVar(&f.envFiles, "env-file", nil, "read environment variables from a file")
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "set a label (KEY=VALUE)")
	fl.StringArrayVar(&f.labelFiles, "label-file", nil, "read labels (KEY=VALUE lines) from a file")
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "share a host folder (HOST:CONTAINER[:ro]) or mount a named volume (NAME:CONTAINER[:ro])")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a container's port on the host ([IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|/udp]; IP defaults to 127.0.0.1)")
	fl.BoolVarP(&f.publishAll, "publish-all", "P", false, "publish every exposed port (the image's EXPOSE and --expose) on a free host port of 127.0.0.1")
	fl.StringArrayVar(&f.expose, "expose", nil, "expose a port or a range of ports (80, 53/udp, 8000-8002) for -P")
	fl.StringVar(&f.network, "network", "", "the network to run on: a network's name (berth network ls), or none (default: the default network)")
	fl.StringArrayVar(&f.aliases, "network-alias", nil, "another name the container resolves by on its network")
	fl.StringVar(&f.ip, "ip", "", "the container's IPv4 address on its (user-defined) network")
	fl.StringArrayVar(&f.dns, "dns", nil, "DNS server for names outside Berth's (asked through the network's resolver)")
	fl.StringArrayVar(&f.dnsSearch, "dns-search", nil, "DNS search domain")
	fl.StringArrayVar(&f.dnsOptions, "dns-option", nil, "resolv.conf option (ndots:2, ...)")
	fl.StringArrayVar(&f.addHosts, "add-host", nil, "add a line to /etc/hosts (HOST:IP, or HOST:host-gateway for the host)")
	fl.StringArrayVar(&f.mounts, "mount", nil, "mount a folder or volume (type=bind|volume,source=...,target=...[,readonly])")
	fl.Float64Var(&f.cpus, "cpus", 0, "number of vCPUs of the container's VM (default 2)")
	fl.StringVarP(&f.memory, "memory", "m", "", "memory of the container's VM (e.g. 512m, 2g; default 1g)")
}

// request builds Docker's create options from the flags, the image and
// the command.
func (f *createFlags) request(c *cobra.Command, img string, cmd []string) (docker.ContainerCreateOptions, error) {
	cfg := &mobycontainer.Config{
		Image: img, Cmd: cmd, Tty: f.tty, OpenStdin: f.interactive, StdinOnce: f.interactive,
		AttachStdin: f.interactive, AttachStdout: !f.detach, AttachStderr: !f.detach,
		WorkingDir: f.workdir, User: f.user, Hostname: f.hostname, StopSignal: f.stopSignal,
	}
	if c.Flags().Changed("entrypoint") {
		cfg.Entrypoint = []string{}
		if f.entrypoint != "" {
			cfg.Entrypoint = []string{f.entrypoint}
		}
	}
	if c.Flags().Changed("stop-timeout") {
		cfg.StopTimeout = &f.stopTimeout
	}
	var err error
	if cfg.Env, err = readEnv(f.envFiles, f.env); err != nil {
		return docker.ContainerCreateOptions{}, err
	}
	if cfg.Labels, err = readLabels(f.labelFiles, f.labels); err != nil {
		return docker.ContainerCreateOptions{}, err
	}
	if f.cold {
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		cfg.Labels[container.ColdBootLabel] = "true"
	}
	if cfg.ExposedPorts, err = exposedPorts(f.expose); err != nil {
		return docker.ContainerCreateOptions{}, err
	}
	hc, err := f.hostConfig(c)
	if err != nil {
		return docker.ContainerCreateOptions{}, err
	}
	hc.PublishAllPorts = f.publishAll
	if err := mountFlags(f.volumes, f.mounts, cfg, hc); err != nil {
		return docker.ContainerCreateOptions{}, err
	}
	switch f.pull {
	case "missing", "always", "never":
	default:
		return docker.ContainerCreateOptions{}, fmt.Errorf("invalid --pull %q: use missing, always or never", f.pull)
	}
	opts := docker.ContainerCreateOptions{Name: f.name, Config: cfg, HostConfig: hc}
	if len(f.aliases) > 0 || f.ip != "" {
		mode := f.network
		if mode == "" {
			mode = "default"
		}
		ep := &mobynetwork.EndpointSettings{Aliases: f.aliases}
		if f.ip != "" {
			ip, err := netip.ParseAddr(f.ip)
			if err != nil || !ip.Is4() {
				return docker.ContainerCreateOptions{}, fmt.Errorf("invalid --ip %q: want an IPv4 address", f.ip)
			}
			ep.IPAMConfig = &mobynetwork.EndpointIPAMConfig{IPv4Address: ip}
		}
		opts.NetworkingConfig = &mobynetwork.NetworkingConfig{EndpointsConfig: map[string]*mobynetwork.EndpointSettings{mode: ep}}
	}
	return opts, nil
}

// hostConfig is the part of the request about the container's VM.
func (f *createFlags) hostConfig(c *cobra.Command) (*mobycontainer.HostConfig, error) {
	hc := &mobycontainer.HostConfig{AutoRemove: f.rm, ReadonlyRootfs: f.readOnly, NetworkMode: mobycontainer.NetworkMode(f.network),
		DNSSearch: f.dnsSearch, DNSOptions: f.dnsOptions, ExtraHosts: f.addHosts}
	for _, d := range f.dns {
		ip, err := netip.ParseAddr(d)
		if err != nil {
			return nil, fmt.Errorf("invalid --dns %q: want an IP address", d)
		}
		hc.DNS = append(hc.DNS, ip)
	}
	if c.Flags().Changed("init") {
		hc.Init = &f.init
	}
	if f.cpus < 0 {
		return nil, fmt.Errorf("invalid --cpus %g: must be positive", f.cpus)
	}
	hc.NanoCPUs = int64(f.cpus * 1e9)
	if f.memory != "" {
		n, err := units.RAMInBytes(f.memory)
		if err != nil {
			return nil, fmt.Errorf("invalid --memory %q: %w", f.memory, err)
		}
		hc.Memory = n
	}
	for _, p := range f.publish {
		specs, err := bnet.ParsePortSpec(p)
		if err != nil {
			return nil, err
		}
		if hc.PortBindings == nil {
			hc.PortBindings = mobynetwork.PortMap{}
		}
		for _, spec := range specs {
			port, _ := mobynetwork.PortFrom(spec.ContainerPort, mobynetwork.IPProtocol(spec.Proto))
			b := mobynetwork.PortBinding{HostIP: spec.HostIP}
			if spec.HostPort != 0 {
				b.HostPort = strconv.Itoa(int(spec.HostPort))
			}
			if spec.HostPortEnd != 0 {
				b.HostPort += "-" + strconv.Itoa(int(spec.HostPortEnd))
			}
			hc.PortBindings[port] = append(hc.PortBindings[port], b)
		}
	}
	return hc, nil
}

// readEnv reads env files then -e values; "KEY" alone takes the local
// value, as Docker does.
func readEnv(files, vals []string) ([]string, error) {
	lines, err := readKVFiles("env", files)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range append(lines, vals...) {
		out = append(out, envValue(v)...)
	}
	return out, nil
}

func envValue(kv string) []string {
	if strings.Contains(kv, "=") {
		return []string{kv}
	}
	if v, ok := os.LookupEnv(kv); ok {
		return []string{kv + "=" + v}
	}
	return nil
}

// readLabels reads label files then -l values (KEY=VALUE, or KEY for an
// empty value, as Docker does).
func readLabels(files, vals []string) (map[string]string, error) {
	lines, err := readKVFiles("label", files)
	if err != nil {
		return nil, err
	}
	lines = append(lines, vals...)
	if len(lines) == 0 {
		return nil, nil
	}
	labels := map[string]string{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return nil, fmt.Errorf("invalid label %q: want KEY=VALUE", l)
		}
		labels[k] = v
	}
	return labels, nil
}

// readKVFiles returns the lines of docker's env and label files, less
// blank lines and # comments.
func readKVFiles(what string, files []string) ([]string, error) {
	var out []string
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read %s file %s: %w", what, p, err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			out = append(out, line)
		}
	}
	return out, nil
}

// createContainer creates the container, pulling the image first per
// policy (progress on stderr unless --quiet), as `docker run` does.
func (e *env) createContainer(ctx context.Context, cl *client.Client, f *createFlags, opts docker.ContainerCreateOptions) (string, error) {
	pull := func() error {
		var out io.Writer = e.io.Err
		if f.quiet {
			out = io.Discard
		}
		pp := newPullProgress(out)
		err := pullImage(ctx, cl, opts.Config.Image, docker.ImagePullOptions{}, func(m jsonstream.Message) { pp.handle(m) })
		pp.done()
		return err
	}
	if f.pull == "always" {
		if err := pull(); err != nil {
			return "", err
		}
	}
	res, err := cl.ContainerCreate(ctx, opts)
	if err != nil && cerrdefs.IsNotFound(err) && strings.Contains(err.Error(), "No such image") && f.pull == "missing" {
		if !f.quiet {
			fmt.Fprintf(e.io.Err, "Unable to find image '%s' locally\n", opts.Config.Image)
		}
		if perr := pull(); perr != nil {
			return "", perr
		}
		res, err = cl.ContainerCreate(ctx, opts)
	}
	if err != nil {
		return "", err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.io.Err, "WARNING: %s\n", w)
	}
	return res.ID, nil
}

// startError maps a start failure to Docker's exit codes: 127 for a
// command not found, 126 for one that cannot run, else 125.
func startError(err error) error {
	msg := err.Error()
	// The daemon words a command that cannot run as Docker does:
	// `exec: "CMD": executable file not found in $PATH` / `…: permission denied`.
	switch {
	case strings.Contains(msg, "executable file not found"):
		return &exitWithMessage{code: 127, err: err}
	case strings.Contains(msg, "exec: ") && strings.Contains(msg, "permission denied"):
		return &exitWithMessage{code: 126, err: err}
	}
	return &exitWithMessage{code: 125, err: err}
}

// createFromArgs builds the create request from the flags and
// IMAGE [COMMAND] [ARG...], creates the container (pulling per policy)
// and writes its ID to --cidfile; consoleSize, when set, is the
// terminal's (rows, cols). Failures are Docker's exit code 125. The
// caller closes the client.
func (e *env) createFromArgs(cmd *cobra.Command, f *createFlags, args []string, consoleSize [2]uint) (*client.Client, string, error) {
	opts, err := f.request(cmd, args[0], args[1:])
	if err != nil {
		return nil, "", &exitWithMessage{code: 125, err: err}
	}
	opts.HostConfig.ConsoleSize = consoleSize
	cid, err := newCIDFile(f.cidfile)
	if err != nil {
		return nil, "", &exitWithMessage{code: 125, err: err}
	}
	cl, err := e.client()
	if err != nil {
		cid.abandon()
		return nil, "", err
	}
	id, err := e.createContainer(cmd.Context(), cl, f, opts)
	if err == nil {
		err = cid.write(id)
	} else {
		cid.abandon()
	}
	if err != nil {
		cl.Close()
		return nil, "", &exitWithMessage{code: 125, err: err}
	}
	return cl, id, nil
}

// cidFile is docker's --cidfile: created (and refused if it exists)
// before the container, so a script never finds a stale ID; it receives
// the ID once the container exists and is removed if creation fails.
type cidFile struct {
	path string
	f    *os.File
}

// newCIDFile creates path exclusively; "" is no cidfile.
func newCIDFile(path string) (*cidFile, error) {
	if path == "" {
		return &cidFile{}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("container ID file found, make sure the other container isn't running or delete %s", path)
	}
	if err != nil {
		return nil, fmt.Errorf("create --cidfile %s: %w", path, err)
	}
	return &cidFile{path: path, f: f}, nil
}

func (c *cidFile) write(id string) error {
	if c.f == nil {
		return nil
	}
	_, err := c.f.WriteString(id)
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(c.path)
		return fmt.Errorf("write --cidfile %s: %w", c.path, err)
	}
	return nil
}

// abandon removes the file of a container that was not created.
func (c *cidFile) abandon() {
	if c.f != nil {
		c.f.Close()
		os.Remove(c.path)
	}
}

func newRunCmd(e *env) *cobra.Command {
	f := &createFlags{}
	c := &cobra.Command{
		Use:   "run [flags] IMAGE [COMMAND] [ARG...]",
		Short: "Create and start a container, each in its own micro-VM",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t := openTerminal(e.io.In)
			var size [2]uint
			if f.tty && t != nil {
				if r, c := t.size(); r > 0 {
					size = [2]uint{r, c}
				}
			}
			cl, id, err := e.createFromArgs(cmd, f, args, size)
			if err != nil {
				return err
			}
			defer cl.Close()
			if f.detach {
				if _, err := cl.ContainerStart(cmd.Context(), id, docker.ContainerStartOptions{}); err != nil {
					return startError(err)
				}
				fmt.Fprintln(e.io.Out, id)
				return nil
			}
			return e.runAttached(cmd.Context(), cl, id, f, t)
		},
	}
	f.register(c, true)
	return c
}

func newCreateCmd(e *env) *cobra.Command {
	f := &createFlags{}
	c := &cobra.Command{
		Use:   "create [flags] IMAGE [COMMAND] [ARG...]",
		Short: "Create a container without starting it",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, id, err := e.createFromArgs(cmd, f, args, [2]uint{})
			if err != nil {
				return err
			}
			cl.Close()
			fmt.Fprintln(e.io.Out, id)
			return nil
		},
	}
	f.register(c, false)
	return c
}

// exposedPorts reads --expose values: PORT[-END][/PROTO].
func exposedPorts(vals []string) (mobynetwork.PortSet, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	set := mobynetwork.PortSet{}
	for _, v := range vals {
		pr, err := mobynetwork.ParsePortRange(v)
		if err != nil || pr.Start() == 0 {
			return nil, fmt.Errorf("invalid --expose %q: want PORT[-END][/tcp|/udp] (80, 8000-8002, 53/udp)", v)
		}
		if p := pr.Proto(); p != mobynetwork.TCP && p != mobynetwork.UDP {
			return nil, fmt.Errorf("invalid --expose %q: only tcp and udp ports are published", v)
		}
		for p := range pr.All() {
			set[p] = struct{}{}
		}
	}
	return set, nil
}
