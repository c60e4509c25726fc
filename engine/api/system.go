package api

import (
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/version"
	"github.com/moby/moby/api/types/system"
)

// ping answers GET and HEAD /_ping with the headers the docker client reads
// to negotiate its API version.
func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Api-Version", version.APIVersion)
	h.Set("Ostype", "linux")
	h.Set("Docker-Experimental", "false")
	h.Set("Swarm", "inactive")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte("OK"))
	}
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	st, err := s.backend.Status(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, system.VersionResponse{
		Platform:      system.PlatformInfo{Name: "Berth " + st.Version},
		Version:       st.Version,
		APIVersion:    version.APIVersion,
		MinAPIVersion: version.MinAPIVersion,
		Os:            "linux",
		Arch:          st.Arch,
		GitCommit:     st.Commit,
		GoVersion:     st.GoVersion,
		KernelVersion: st.Kernel.Version,
		Components: []system.ComponentVersion{{
			Name:    "Berth",
			Version: st.Version,
			Details: map[string]string{
				"ApiVersion":    version.APIVersion,
				"MinAPIVersion": version.MinAPIVersion,
				"Os":            "linux",
				"HostOs":        st.OS,
				"Arch":          st.Arch,
				"Backend":       st.Backend,
				"GitCommit":     st.Commit,
				"GoVersion":     st.GoVersion,
			},
		}},
	})
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	st, err := s.backend.Status(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	hostname, _ := os.Hostname()
	writeJSON(w, http.StatusOK, system.Info{
		ID:                st.Home,
		Containers:        st.Containers,
		ContainersRunning: st.ContainersRunning,
		ContainersStopped: st.Containers - st.ContainersRunning,
		Images:            st.Images,
		Driver:            "berth-ext4",
		DriverStatus:      [][2]string{{"Backing Filesystem", "ext4 image per container"}},
		LoggingDriver:     "json-file",
		CgroupDriver:      "none",
		CgroupVersion:     "2",
		KernelVersion:     st.Kernel.Version,
		OperatingSystem:   "Berth " + st.Version + " (one micro-VM per container, " + st.Backend + ")",
		OSType:            "linux",
		Architecture:      st.Arch,
		NCPU:              runtime.NumCPU(),
		DockerRootDir:     st.Home,
		Name:              hostname,
		ServerVersion:     st.Version,
		SystemTime:        time.Now().Format(time.RFC3339Nano),
		DefaultRuntime:    "berth-vm",
		Runtimes:          map[string]system.RuntimeWithStatus{"berth-vm": {Runtime: system.Runtime{Path: "berth"}}},
		SecurityOptions:   []string{"name=vm-isolation"},
	})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.backend.Status(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) kernelGet(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.backend.Kernel(r.Context()))
}

// kernelSet persists a kernel choice: {"path": ...} or {"url": ..., "sha256": ...}.
func (s *Server) kernelSet(w http.ResponseWriter, r *http.Request) {
	var c types.KernelChoice
	if err := decodeBody(w, r, "set kernel", &c); err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := s.backend.SetKernel(r.Context(), c)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// terminalOpen issues a terminal session on a running container: 201
// {id, url}; 404 no such container; 409 not running. The body is
// optional.
func (s *Server) terminalOpen(w http.ResponseWriter, r *http.Request) {
	var req types.TerminalRequest
	if err := decodeOptionalBody(w, r, "open terminal", &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.backend.Terminals().Open(r.Context(), r.PathValue("id"), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

// windowOpen issues a Berth window sign-in: 201 {"url": "…/#token=…"}.
func (s *Server) windowOpen(w http.ResponseWriter, r *http.Request) {
	win, err := s.backend.Window(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, win)
}

// pluginMenu answers the menu entries of the plugins found now:
// [{"plugin": NAME, "title": TEXT, "args": [...]}, ...], [] when none.
func (s *Server) pluginMenu(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.backend.PluginMenu(r.Context()))
}
