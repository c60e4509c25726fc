// Package daemon runs Berth's engine behind its API socket: the process
// `berth daemon` starts on Linux and the menu-bar app hosts in-process on
// macOS.
//
// Start takes these steps, in order:
//   - creates the Berth home (mode 0700) if needed;
//   - takes an exclusive lock on daemon.lock, so a second daemon on the same
//     home exits with an error naming the first one's pid;
//   - removes a stale berth.sock left by a daemon that died (a socket that
//     still answers is never removed);
//   - starts the terminal sessions' loopback web server (engine/webui) on
//     127.0.0.1, on a port it picks;
//   - listens on berth.sock with mode 0600 and serves the API;
//   - in the background, discovers and starts the service plugins
//     (engine/plugin), without waiting for them.
//
// Shutdown stops the service plugins, ends every terminal session (each is told engine-stopping),
// stops the web server, stops accepting API requests, lets those in
// flight finish, removes the socket and releases the lock.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/berthvm/berth/engine"
	"github.com/berthvm/berth/engine/api"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/home"
	"github.com/berthvm/berth/engine/plugin"
	"github.com/berthvm/berth/engine/terminal"
	"github.com/berthvm/berth/engine/version"
	"github.com/berthvm/berth/engine/webui"
)

// Config configures a daemon.
type Config struct {
	// Home is the Berth home the daemon owns.
	Home home.Home
	// LogOutput receives the log besides $BERTH_HOME/daemon.log (the CLI
	// passes stderr); nil for the file only.
	LogOutput io.Writer
	// EngineOptions configure the engine (tests pass insecure registries).
	EngineOptions []engine.Option
	// Plugins configures the service plugins the daemon runs.
	Plugins PluginOptions
}

// PluginOptions configure the daemon's service plugins (engine/plugin).
type PluginOptions struct {
	// Disabled runs none.
	Disabled bool
	// Discovery says where to look; zero: the home's plugins directory,
	// $BERTH_PLUGIN_PATH and $PATH. Its HomeDir is always the daemon's.
	Discovery plugin.Config
	// Grace, MinBackoff and MaxBackoff are the supervisor's timings;
	// zero: plugin's defaults.
	Grace, MinBackoff, MaxBackoff time.Duration
}

// Daemon is a running engine serving its API.
type Daemon struct {
	*engine.Engine
	home    home.Home
	log     *slog.Logger
	logFile *os.File
	lock    *os.File
	ln      net.Listener
	srv     *http.Server
	terms   *terminal.Manager
	web     *webui.Server
	plugins *plugin.Supervisor
	// discovery is where plugins are looked for (service plugins, and
	// the menu entries GET /berth/plugins/menu answers).
	discovery plugin.Config
	api       http.Handler
	// cancelRequests ends the requests in flight at shutdown.
	cancelRequests context.CancelFunc
	started        time.Time
	served         chan error
}

// Start brings the daemon up (see the package comment for the steps) and
// serves the API in the background until Shutdown.
func Start(ctx context.Context, cfg Config) (_ *Daemon, err error) {
	h := cfg.Home
	if err := h.Ensure(); err != nil {
		return nil, err
	}
	d := &Daemon{home: h, started: time.Now(), served: make(chan error, 1)}
	defer func() {
		if err != nil {
			if d.web != nil {
				d.stopTerminals(context.Background())
			}
			if d.Engine != nil {
				d.Engine.Close()
			}
			d.release()
		}
	}()
	if err := d.openLog(cfg.LogOutput); err != nil {
		return nil, err
	}
	if err := d.takeLock(); err != nil {
		return nil, err
	}
	eng, err := engine.New(ctx, h, append([]engine.Option{engine.WithLogger(d.log)}, cfg.EngineOptions...)...)
	if err != nil {
		return nil, err
	}
	d.Engine = eng
	d.terms = terminal.NewManager(terminal.Config{Backend: terminal.ManagerBackend(eng.Containers()), Log: d.log})
	// One API handler serves the socket and, in part, the Berth window.
	apiHandler := api.NewServer(backend{d}, api.WithLogger(d.log))
	d.api = apiHandler
	if d.web, err = webui.Start(webui.Config{Terminals: d.terms, Log: d.log, API: apiHandler}); err != nil {
		return nil, err
	}
	if err := d.listen(ctx); err != nil {
		return nil, err
	}
	// Requests that stream until told to stop (logs -f, wait, events,
	// attach) end when the daemon shuts down.
	reqCtx, cancelRequests := context.WithCancel(context.Background())
	d.cancelRequests = cancelRequests
	d.srv = &http.Server{
		Handler:           apiHandler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
	}
	go func() { d.served <- d.srv.Serve(d.ln) }()
	d.discovery = cfg.Plugins.Discovery
	if d.discovery.HomeDir == "" && d.discovery.PluginPath == "" && d.discovery.Path == "" {
		d.discovery = plugin.ConfigFromEnv(h.Dir, d.discovery.Builtin)
	}
	d.discovery.HomeDir = h.Dir
	d.startPlugins(cfg)
	d.log.Info("Berth daemon serving", "version", version.Version, "home", h.Dir, "socket", h.Socket(), "pid", os.Getpid(), "web", d.web.URL())
	return d, nil
}

// Run starts the daemon, serves until ctx is done, then shuts down.
func Run(ctx context.Context, cfg Config) error {
	d, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-d.served:
		d.served <- err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return d.Shutdown(sctx)
}

// startPlugins starts the service plugins in the background: discovery
// and the plugins' own start never delay the daemon's.
func (d *Daemon) startPlugins(cfg Config) {
	o := cfg.Plugins
	if o.Disabled {
		return
	}
	disc := d.discovery
	d.plugins = plugin.NewSupervisor(plugin.SupervisorConfig{
		HomeDir: d.home.Dir, Socket: d.home.Socket(), LogDir: d.home.Path("logs", "plugins"), Log: d.log,
		Grace: o.Grace, MinBackoff: o.MinBackoff, MaxBackoff: o.MaxBackoff,
	})
	d.plugins.Run(disc, d.Events(), func() []string {
		var ids []string
		for _, s := range d.Containers().List(false, nil) {
			ids = append(ids, s.Spec.ID)
		}
		return ids
	})
}

// Plugins is the daemon's service plugin supervisor; nil when disabled.
func (d *Daemon) Plugins() *plugin.Supervisor { return d.plugins }

// Logger is the daemon's logger.
func (d *Daemon) Logger() *slog.Logger { return d.log }

// Terminals runs the daemon's terminal sessions (the macOS window's
// bridge serves its sessions with it too).
func (d *Daemon) Terminals() *terminal.Manager { return d.terms }

// APIHandler is the daemon's API handler, the one its socket serves (the
// macOS app's Berth window calls a part of it in-process:
// webui.EmbeddedWindow).
func (d *Daemon) APIHandler() http.Handler { return d.api }

// WebUI is the daemon's loopback web server.
func (d *Daemon) WebUI() *webui.Server { return d.web }

// stopTerminals ends every terminal session, then the web server.
func (d *Daemon) stopTerminals(ctx context.Context) error {
	return errors.Join(d.terms.Shutdown(ctx), d.web.Shutdown(ctx))
}

// Shutdown stops serving, waits for requests in flight (until ctx is
// done), removes the socket and releases the home.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.log.Info("Berth daemon shutting down")
	var err error
	if d.plugins != nil {
		err = d.plugins.Shutdown(ctx)
	}
	err = errors.Join(err, d.stopTerminals(ctx))
	d.cancelRequests()
	err = errors.Join(err, d.srv.Shutdown(ctx))
	if serr := <-d.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if rerr := os.Remove(d.home.Socket()); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	if cerr := d.Engine.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	d.log.Info("Berth daemon stopped")
	d.release()
	if err != nil {
		return fmt.Errorf("shut down Berth daemon: %w", err)
	}
	return nil
}

func (d *Daemon) openLog(extra io.Writer) error {
	f, err := os.OpenFile(d.home.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open daemon log %s: %w", d.home.LogFile(), err)
	}
	d.logFile = f
	var w io.Writer = f
	if extra != nil {
		w = io.MultiWriter(extra, f)
	}
	d.log = slog.New(slog.NewTextHandler(w, nil))
	routeLibraryLogs(d.log)
	return nil
}

// LockedError is Start's error when another Berth (a daemon, or the app
// hosting one) holds the home's lock; it is classed ErrAlreadyExists.
type LockedError struct {
	// PID is the process holding the lock, as it recorded itself; 0 when
	// it could not be read.
	PID int
	// Home is the home directory it serves.
	Home string
}

func (e *LockedError) Error() string {
	pid := "unknown"
	if e.PID > 0 {
		pid = strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("another Berth daemon (pid %s) is already serving %s: stop it first, or use another --home", pid, e.Home)
}

// takeLock locks daemon.lock and records our pid in it.
func (d *Daemon) takeLock() error {
	path := d.home.LockFile()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := lockFile(f); err != nil {
		locked := &LockedError{Home: d.home.Dir}
		if b, rerr := os.ReadFile(path); rerr == nil {
			locked.PID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		f.Close()
		return errdefs.AlreadyExists(locked)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	d.lock = f
	return nil
}

// listen removes a stale socket and listens with mode 0600.
func (d *Daemon) listen(ctx context.Context) error {
	sock := d.home.Socket()
	if _, err := os.Lstat(sock); err == nil {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, derr := (&net.Dialer{}).DialContext(dctx, "unix", sock)
		cancel()
		if derr == nil {
			c.Close()
			return errdefs.AlreadyExists(fmt.Errorf("socket %s is served by another process: stop it first", sock))
		}
		if err := os.Remove(sock); err != nil {
			return fmt.Errorf("remove stale socket %s: %w", sock, err)
		}
		d.log.Info("removed stale socket", "socket", sock)
	}
	ln, err := listenPrivate(sock)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", sock, err)
	}
	d.ln = ln
	return nil
}

// release closes what Start opened, in reverse.
func (d *Daemon) release() {
	if d.lock != nil {
		_ = d.lock.Truncate(0)
		d.lock.Close()
		d.lock = nil
	}
	if d.logFile != nil {
		d.logFile.Close()
		d.logFile = nil
	}
}
