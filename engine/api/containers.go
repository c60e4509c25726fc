package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/container"
	"github.com/berthvm/berth/engine/errdefs"
	"github.com/berthvm/berth/engine/events"
	"github.com/docker/go-units"
	mobycontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

func (s *Server) containerRoutes() {
	s.mux.HandleFunc("POST /containers/create", s.containerCreate)
	s.mux.HandleFunc("GET /containers/json", s.containerList)
	s.mux.HandleFunc("POST /containers/prune", s.containerPrune)
	s.mux.HandleFunc("GET /containers/{id}/json", s.containerInspect)
	s.mux.HandleFunc("POST /containers/{id}/start", s.withManager(containerStart))
	s.mux.HandleFunc("POST /containers/{id}/stop", s.withManager(containerStop))
	s.mux.HandleFunc("POST /containers/{id}/restart", s.withManager(containerRestart))
	s.mux.HandleFunc("POST /containers/{id}/kill", s.withManager(containerKill))
	s.mux.HandleFunc("POST /containers/{id}/wait", s.containerWait)
	s.mux.HandleFunc("POST /containers/{id}/attach", s.containerAttach)
	s.mux.HandleFunc("POST /containers/{id}/resize", s.withManager(containerResize))
	s.mux.HandleFunc("POST /containers/{id}/rename", s.withManager(containerRename))
	s.mux.HandleFunc("GET /containers/{id}/logs", s.containerLogs)
	s.mux.HandleFunc("GET /containers/{id}/stats", s.containerStats)
	s.mux.HandleFunc("DELETE /containers/{id}", s.withManager(containerDelete))
	s.mux.HandleFunc("POST /containers/{id}/exec", s.execCreate)
	s.mux.HandleFunc("POST /exec/{id}/start", s.execStart)
	s.mux.HandleFunc("POST /exec/{id}/resize", s.withManager(execResize))
	s.mux.HandleFunc("GET /exec/{id}/json", s.execInspect)
	s.mux.HandleFunc("GET /events", s.events)
}

// managerOp is an endpoint that acts on the container manager and answers
// with a bare status code; ErrNotModified becomes 304.
type managerOp func(r *http.Request, m *container.Manager) (status int, err error)

// withManager adapts a managerOp to HTTP, answering errors the API's way.
func (s *Server) withManager(op managerOp) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m, err := s.containers()
		status := 0
		if err == nil {
			status, err = op(r, m)
		}
		switch {
		case errors.Is(err, container.ErrNotModified):
			w.WriteHeader(http.StatusNotModified)
		case err != nil:
			s.writeError(w, r, err)
		default:
			w.WriteHeader(status)
		}
	}
}

// container finds the container the path's {id} names; on failure it
// answers the error and reports false.
func (s *Server) container(w http.ResponseWriter, r *http.Request) (*container.Manager, *container.Container, bool) {
	m, err := s.containers()
	if err == nil {
		var c *container.Container
		if c, err = m.Get(r.PathValue("id")); err == nil {
			return m, c, true
		}
	}
	s.writeError(w, r, err)
	return nil, nil, false
}

func (s *Server) containers() (*container.Manager, error) {
	m := s.backend.Containers()
	if m == nil {
		return nil, errdefs.Unavailable(errors.New("containers are not available: the engine has no container manager"))
	}
	return m, nil
}

func (s *Server) containerCreate(w http.ResponseWriter, r *http.Request) {
	m, err := s.containers()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req mobycontainer.CreateRequest
	if err := decodeBody(r, "create container", &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Config == nil {
		s.writeError(w, r, errdefs.InvalidArgument(errors.New("create container: config is required")))
		return
	}
	// Docker's create never pulls: the client pulls on "No such image".
	c, err := m.Create(r.Context(), container.CreateRequest{
		Name: r.URL.Query().Get("name"), Config: req.Config, HostConfig: req.HostConfig, Pull: container.PullNever,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, mobycontainer.CreateResponse{ID: c.ID(), Warnings: []string{}})
}

func containerStart(r *http.Request, m *container.Manager) (int, error) {
	return http.StatusNoContent, m.Start(r.Context(), r.PathValue("id"))
}

// timeoutParam reads Docker's t= (seconds); -1 when absent.
func timeoutParam(r *http.Request) (time.Duration, error) {
	t := r.URL.Query().Get("t")
	if t == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(t)
	if err != nil {
		return 0, errdefs.InvalidArgument(fmt.Errorf("invalid timeout %q: %w", t, err))
	}
	if n < 0 {
		return 365 * 24 * time.Hour, nil // -1: wait forever
	}
	return time.Duration(n) * time.Second, nil
}

func containerStop(r *http.Request, m *container.Manager) (int, error) {
	t, err := timeoutParam(r)
	if err != nil {
		return 0, err
	}
	return http.StatusNoContent, m.Stop(r.Context(), r.PathValue("id"), r.URL.Query().Get("signal"), t)
}

func containerRestart(r *http.Request, m *container.Manager) (int, error) {
	t, err := timeoutParam(r)
	if err != nil {
		return 0, err
	}
	return http.StatusNoContent, m.Restart(r.Context(), r.PathValue("id"), t)
}

func containerKill(r *http.Request, m *container.Manager) (int, error) {
	return http.StatusNoContent, m.Kill(r.Context(), r.PathValue("id"), r.URL.Query().Get("signal"))
}

// containerWait sends its 200 headers at once (the docker CLI waits for
// them before it starts the container), then the exit code when the
// condition is met.
func (s *Server) containerWait(w http.ResponseWriter, r *http.Request) {
	m, err := s.containers()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	if _, err := m.Get(id); err != nil {
		s.writeError(w, r, err)
		return
	}
	cond := container.WaitCondition(r.URL.Query().Get("condition"))
	switch cond {
	case "":
		cond = container.WaitNotRunning
	case container.WaitNotRunning, container.WaitNextExit, container.WaitRemoved:
	default:
		s.writeError(w, r, errdefs.InvalidArgument(fmt.Errorf("invalid wait condition %q: use not-running, next-exit or removed", cond)))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	code, err := m.Wait(r.Context(), id, cond)
	resp := mobycontainer.WaitResponse{StatusCode: int64(code)}
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		resp.Error = &mobycontainer.WaitExitError{Message: err.Error()}
	}
	_ = json.NewEncoder(w).Encode(resp)
}

func boolParam(r *http.Request, name string) bool {
	v, _ := strconv.ParseBool(r.URL.Query().Get(name))
	return v
}

func (s *Server) containerAttach(w http.ResponseWriter, r *http.Request) {
	m, c, ok := s.container(w, r)
	if !ok {
		return
	}
	snap := c.Snapshot()
	tty := snap.Spec.Config.Tty
	conn, in, stdout, stderr, err := hijackStreams(w, r, tty)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer conn.Close()
	opts := container.AttachOptions{}
	if boolParam(r, "stdout") {
		opts.Stdout = stdout
	}
	if boolParam(r, "stderr") {
		opts.Stderr = stderr
	}
	if boolParam(r, "stdin") {
		opts.Stdin = in
	}
	if boolParam(r, "logs") {
		_ = m.Logs(r.Context(), snap.Spec.ID, container.LogOptions{Stdout: opts.Stdout != nil, Stderr: opts.Stderr != nil, Tail: -1}, func(e container.LogEntry) error {
			if e.Stream == "stderr" {
				_, err := stderr.Write([]byte(e.Log))
				return err
			}
			_, err := stdout.Write([]byte(e.Log))
			return err
		})
	}
	if !boolParam(r, "stream") {
		return
	}
	_ = m.Attach(r.Context(), snap.Spec.ID, opts)
	closeWrite(conn)
}

func containerResize(r *http.Request, m *container.Manager) (int, error) {
	h, w, err := sizeParams(r)
	if err != nil {
		return 0, err
	}
	return http.StatusOK, m.Resize(r.Context(), r.PathValue("id"), h, w)
}

func sizeParams(r *http.Request) (h, w uint32, err error) {
	hv, err1 := strconv.ParseUint(r.URL.Query().Get("h"), 10, 16)
	wv, err2 := strconv.ParseUint(r.URL.Query().Get("w"), 10, 16)
	if err1 != nil || err2 != nil {
		return 0, 0, errdefs.InvalidArgument(fmt.Errorf("resize: h and w must be numbers of rows and columns (got h=%q w=%q)", r.URL.Query().Get("h"), r.URL.Query().Get("w")))
	}
	return uint32(hv), uint32(wv), nil
}

func containerRename(r *http.Request, m *container.Manager) (int, error) {
	return http.StatusNoContent, m.Rename(r.PathValue("id"), r.URL.Query().Get("name"))
}

func containerDelete(r *http.Request, m *container.Manager) (int, error) {
	return http.StatusNoContent, m.Remove(r.Context(), r.PathValue("id"), boolParam(r, "force"))
}

func (s *Server) containerPrune(w http.ResponseWriter, r *http.Request) {
	m, err := s.containers()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ids, err := m.Prune(r.Context(), func(sn container.Snapshot) bool { return !f.matchLabels(sn.Spec.Config.Labels) })
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, mobycontainer.PruneReport{ContainersDeleted: ids})
}

// statusText is `docker ps`'s STATUS column.
func statusText(st container.State) string {
	switch st.Status {
	case mobycontainer.StateRunning:
		return "Up " + units.HumanDuration(time.Since(st.StartedAt))
	case mobycontainer.StateExited:
		if st.FinishedAt.IsZero() {
			return fmt.Sprintf("Exited (%d)", st.ExitCode)
		}
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, units.HumanDuration(time.Since(st.FinishedAt)))
	case mobycontainer.StateCreated:
		return "Created"
	case mobycontainer.StateRemoving:
		return "Removal In Progress"
	case mobycontainer.StateDead:
		return "Dead"
	}
	return string(st.Status)
}

// matchContainer applies `docker ps --filter`: label, status, name, id,
// ancestor.
func (f filters) matchContainer(sn container.Snapshot) bool {
	if !f.matchLabels(sn.Spec.Config.Labels) {
		return false
	}
	if v, ok := f["status"]; ok && len(v) > 0 && !v[string(sn.State.Status)] {
		return false
	}
	if v, ok := f["name"]; ok && len(v) > 0 {
		match := false
		for n := range v {
			if strings.Contains(sn.Spec.Name, strings.TrimPrefix(n, "/")) {
				match = true
			}
		}
		if !match {
			return false
		}
	}
	if v, ok := f["id"]; ok && len(v) > 0 {
		match := false
		for id := range v {
			if strings.HasPrefix(sn.Spec.ID, id) {
				match = true
			}
		}
		if !match {
			return false
		}
	}
	if v, ok := f["ancestor"]; ok && len(v) > 0 && !v[sn.Spec.Image] && !v[sn.Spec.ImageID] {
		return false
	}
	return true
}

func (s *Server) containerList(w http.ResponseWriter, r *http.Request) {
	m, err := s.containers()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	all := boolParam(r, "all") || len(f["status"]) > 0
	snaps := m.List(all, f.matchContainer)
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 && len(snaps) > n {
		snaps = snaps[:n]
	}
	out := make([]mobycontainer.Summary, 0, len(snaps))
	for _, sn := range snaps {
		sum := mobycontainer.Summary{
			ID:      sn.Spec.ID,
			Names:   []string{"/" + sn.Spec.Name},
			Image:   sn.Spec.Image,
			ImageID: sn.Spec.ImageID,
			Command: sn.Command(),
			Created: sn.Spec.Created.Unix(),
			Ports:   []mobycontainer.PortSummary{},
			Labels:  sn.Spec.Config.Labels,
			State:   sn.State.Status,
			Status:  statusText(sn.State),
			Mounts:  []mobycontainer.MountPoint{},
		}
		if sum.Labels == nil {
			sum.Labels = map[string]string{}
		}
		sum.HostConfig.NetworkMode = string(sn.Spec.HostConfig.NetworkMode)
		sum.NetworkSettings = &mobycontainer.NetworkSettingsSummary{Networks: endpoints(sn)}
		out = append(out, sum)
	}
	writeJSON(w, http.StatusOK, out)
}

func endpoints(sn container.Snapshot) map[string]*network.EndpointSettings {
	ep := &network.EndpointSettings{}
	if ip, err := netip.ParseAddr(sn.State.IPAddress); err == nil && sn.State.Status == mobycontainer.StateRunning {
		ep.IPAddress = ip
	}
	return map[string]*network.EndpointSettings{"bridge": ep}
}

// inspectNetworkSettings is NetworkSettings as API 1.44–1.47 has it,
// with the top-level IPAddress scripts read.
type inspectNetworkSettings struct {
	Bridge      string
	SandboxID   string
	SandboxKey  string
	Ports       network.PortMap
	IPAddress   string
	IPPrefixLen int
	Gateway     string
	MacAddress  string
	Networks    map[string]*network.EndpointSettings
}

type containerInspectResponse struct {
	mobycontainer.InspectResponse
	NetworkSettings *inspectNetworkSettings
	// Berth extension: the last start's boot timeline.
	BerthBoot *container.BootTimeline `json:"BerthBoot,omitempty"`
}

func (s *Server) containerInspect(w http.ResponseWriter, r *http.Request) {
	_, c, ok := s.container(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, inspectContainer(c.Snapshot()))
}

func inspectContainer(sn container.Snapshot) containerInspectResponse {
	st := sn.State
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "0001-01-01T00:00:00Z"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	ip := ""
	if st.Status == mobycontainer.StateRunning {
		ip = st.IPAddress
	}
	execIDs := sn.ExecIDs
	resp := containerInspectResponse{
		InspectResponse: mobycontainer.InspectResponse{
			ID:      sn.Spec.ID,
			Created: ts(sn.Spec.Created),
			Path:    sn.Spec.Path,
			Args:    nonNil(sn.Spec.Args),
			State: &mobycontainer.State{
				Status:     st.Status,
				Running:    st.Status == mobycontainer.StateRunning,
				OOMKilled:  st.OOMKilled,
				Dead:       st.Status == mobycontainer.StateDead,
				Pid:        st.Pid,
				ExitCode:   st.ExitCode,
				Error:      st.Error,
				StartedAt:  ts(st.StartedAt),
				FinishedAt: ts(st.FinishedAt),
			},
			Image:      sn.Spec.ImageID,
			LogPath:    sn.Dir + "/container.log",
			Name:       "/" + sn.Spec.Name,
			Driver:     "berth-ext4",
			Platform:   "linux",
			ExecIDs:    execIDs,
			HostConfig: sn.Spec.HostConfig,
			Mounts:     []mobycontainer.MountPoint{},
			Config:     sn.Spec.Config,
		},
		NetworkSettings: &inspectNetworkSettings{
			IPAddress: ip,
			Ports:     network.PortMap{},
			Networks:  endpoints(sn),
		},
		BerthBoot: st.Boot,
	}
	if ip != "" {
		resp.NetworkSettings.IPPrefixLen = 24
	}
	return resp
}

func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	m, c, ok := s.container(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	opts := container.LogOptions{Stdout: boolParam(r, "stdout"), Stderr: boolParam(r, "stderr"), Follow: boolParam(r, "follow"), Tail: -1}
	if !opts.Stdout && !opts.Stderr {
		s.writeError(w, r, errdefs.InvalidArgument(errors.New("you must choose at least one stream")))
		return
	}
	if t := q.Get("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil {
			s.writeError(w, r, errdefs.InvalidArgument(fmt.Errorf("invalid tail %q: a number of lines or \"all\"", t)))
			return
		}
		opts.Tail = n
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &opts.Since}, {"until", &opts.Until}} {
		if v := q.Get(p.name); v != "" && v != "0" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				s.writeError(w, r, errdefs.InvalidArgument(fmt.Errorf("invalid %s %q: a Unix timestamp", p.name, v)))
				return
			}
			*p.t = time.Unix(0, int64(f*1e9))
		}
	}
	timestamps := boolParam(r, "timestamps")
	tty := c.Snapshot().Spec.Config.Tty
	ctype := "application/vnd.docker.multiplexed-stream"
	if tty {
		ctype = "application/vnd.docker.raw-stream"
	}
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	var stdout, stderr io.Writer = w, w
	if !tty {
		stdout, stderr = newFrameWriters(w)
	}
	_ = m.Logs(r.Context(), c.ID(), opts, func(e container.LogEntry) error {
		line := e.Log
		if timestamps {
			line = e.Time.UTC().Format(time.RFC3339Nano) + " " + line
		}
		out := stdout
		if e.Stream == "stderr" {
			out = stderr
		}
		_, err := out.Write([]byte(line))
		if flusher != nil {
			flusher.Flush()
		}
		return err
	})
}

func (s *Server) containerStats(w http.ResponseWriter, r *http.Request) {
	m, err := s.containers()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := m.Stats(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) execCreate(w http.ResponseWriter, r *http.Request) {
	m, err := s.containers()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req mobycontainer.ExecCreateRequest
	if err := decodeBody(r, "exec", &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	cfg := container.ExecConfig{Cmd: req.Cmd, Env: req.Env, WorkingDir: req.WorkingDir, User: req.User, Tty: req.Tty,
		AttachStdin: req.AttachStdin, AttachStdout: req.AttachStdout, AttachStderr: req.AttachStderr}
	if req.ConsoleSize != nil {
		cfg.ConsoleSize = *req.ConsoleSize
	}
	id, err := m.CreateExec(r.Context(), r.PathValue("id"), cfg)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, mobycontainer.ExecCreateResponse{ID: id})
}

func (s *Server) execStart(w http.ResponseWriter, r *http.Request) {
	m, err := s.containers()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req mobycontainer.ExecStartRequest
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			s.writeError(w, r, errdefs.InvalidArgument(fmt.Errorf("exec start: malformed request body: %w", err)))
			return
		}
	}
	id := r.PathValue("id")
	e, err := m.GetExec(id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.ConsoleSize != nil {
		e.SetConsoleSize(*req.ConsoleSize)
	}
	if req.Detach {
		// Detached: the exec outlives this request.
		go func() { _, _ = m.StartExec(context.WithoutCancel(r.Context()), id, agent.Stdio{}) }()
		w.WriteHeader(http.StatusOK)
		return
	}
	conn, in, stdout, stderr, err := hijackStreams(w, r, e.Config.Tty)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer conn.Close()
	_, err = m.StartExec(r.Context(), id, agent.Stdio{Stdin: in, Stdout: stdout, Stderr: stderr})
	if err != nil {
		// The exit code is recorded; the message goes where the user sees it.
		fmt.Fprintf(stderr, "%v\n", err)
	}
	closeWrite(conn)
}

func execResize(r *http.Request, m *container.Manager) (int, error) {
	h, w, err := sizeParams(r)
	if err != nil {
		return 0, err
	}
	return http.StatusOK, m.ResizeExec(r.Context(), r.PathValue("id"), h, w)
}

func (s *Server) execInspect(w http.ResponseWriter, r *http.Request) {
	m, err := s.containers()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	e, err := m.GetExec(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st := e.State()
	args := []string{}
	if len(st.Config.Cmd) > 1 {
		args = st.Config.Cmd[1:]
	}
	writeJSON(w, http.StatusOK, mobycontainer.ExecInspectResponse{
		ID: st.ID, Running: st.Running, ExitCode: st.ExitCode, ContainerID: st.ContainerID, Pid: st.Pid,
		OpenStdin: st.Config.AttachStdin, OpenStdout: st.Config.AttachStdout, OpenStderr: st.Config.AttachStderr, CanRemove: !st.Running && st.ExitCode != nil,
		ProcessConfig: &mobycontainer.ExecProcessConfig{Tty: st.Config.Tty, Entrypoint: st.Config.Cmd[0], Arguments: args, User: st.Config.User},
	})
}

// events streams engine events as Docker's GET /events does.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := parseFilters(q.Get("filters"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	parseTime := func(v string) (time.Time, error) {
		if v == "" {
			return time.Time{}, nil
		}
		if x, err := strconv.ParseFloat(v, 64); err == nil {
			return time.Unix(0, int64(x*1e9)), nil
		}
		return time.Parse(time.RFC3339Nano, v)
	}
	since, err1 := parseTime(q.Get("since"))
	until, err2 := parseTime(q.Get("until"))
	if err := errors.Join(err1, err2); err != nil {
		s.writeError(w, r, errdefs.InvalidArgument(fmt.Errorf("events: invalid since/until: %w", err)))
		return
	}
	accept := func(m events.Message) bool {
		if v := f["type"]; len(v) > 0 && !v[string(m.Type)] {
			return false
		}
		if v := f["event"]; len(v) > 0 && !v[string(m.Action)] {
			return false
		}
		if v := f["container"]; len(v) > 0 && !v[m.Actor.ID] && !v[m.Actor.Attributes["name"]] {
			return false
		}
		if v := f["image"]; len(v) > 0 && !v[m.Actor.Attributes["image"]] && !v[m.Actor.ID] {
			return false
		}
		return f.matchLabels(m.Actor.Attributes)
	}
	ctx := r.Context()
	if !until.IsZero() {
		var cancel func()
		ctx, cancel = contextUntil(ctx, until)
		defer cancel()
	}
	past, ch := s.backend.Events().Subscribe(ctx, since, accept)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	sort.SliceStable(past, func(i, j int) bool { return past[i].TimeNano < past[j].TimeNano })
	for _, m := range past {
		_ = enc.Encode(m)
	}
	if flusher != nil {
		flusher.Flush()
	}
	for m := range ch {
		if !until.IsZero() && m.TimeNano > until.UnixNano() {
			return
		}
		if err := enc.Encode(m); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}
