package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	bnet "github.com/berthvm/berth/engine/network"
	"io"
	"math"
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
	mobyevents "github.com/moby/moby/api/types/events"
	mobymount "github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
)

func (s *Server) containerRoutes() {
	s.mux.HandleFunc("POST /containers/create", s.containerCreate)
	s.mux.HandleFunc("GET /containers/json", s.containerList)
	s.mux.HandleFunc("POST /containers/prune", s.containerPrune)
	s.mux.HandleFunc("GET /containers/{id}/json", s.containerInspect)
	s.mux.HandleFunc("POST /containers/{id}/start", s.statusOnly(s.containerStart))
	s.mux.HandleFunc("POST /containers/{id}/stop", s.statusOnly(s.containerStop))
	s.mux.HandleFunc("POST /containers/{id}/restart", s.statusOnly(s.containerRestart))
	s.mux.HandleFunc("POST /containers/{id}/kill", s.statusOnly(s.containerKill))
	s.mux.HandleFunc("POST /containers/{id}/wait", s.containerWait)
	s.mux.HandleFunc("POST /containers/{id}/attach", s.containerAttach)
	s.mux.HandleFunc("POST /containers/{id}/resize", s.statusOnly(s.containerResize))
	s.mux.HandleFunc("POST /containers/{id}/rename", s.statusOnly(s.containerRename))
	s.mux.HandleFunc("GET /containers/{id}/logs", s.containerLogs)
	s.mux.HandleFunc("GET /containers/{id}/stats", s.containerStats)
	s.mux.HandleFunc("GET /containers/{id}/top", s.containerTop)
	s.mux.HandleFunc("HEAD /containers/{id}/archive", s.archiveHead)
	s.mux.HandleFunc("GET /containers/{id}/archive", s.archiveGet)
	s.mux.HandleFunc("PUT /containers/{id}/archive", s.archivePut)
	s.mux.HandleFunc("DELETE /containers/{id}", s.statusOnly(s.containerDelete))
	s.mux.HandleFunc("POST /containers/{id}/exec", s.execCreate)
	s.mux.HandleFunc("POST /exec/{id}/start", s.execStart)
	s.mux.HandleFunc("POST /exec/{id}/resize", s.statusOnly(s.execResize))
	s.mux.HandleFunc("GET /exec/{id}/json", s.execInspect)
	s.mux.HandleFunc("GET /events", s.events)
}

// statusOp is an endpoint that answers with a bare status code;
// container.ErrNotModified becomes 304.
type statusOp func(r *http.Request) (status int, err error)

// statusOnly adapts a statusOp to HTTP, answering errors the API's way.
func (s *Server) statusOnly(op statusOp) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, err := op(r)
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

// boolParam reads a boolean query parameter as dockerd does: empty, "0",
// "no", "false" and "none" are false, anything else true.
func boolParam(r *http.Request, name string) bool {
	switch strings.ToLower(strings.TrimSpace(r.URL.Query().Get(name))) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

func (s *Server) containerCreate(w http.ResponseWriter, r *http.Request) {
	var req mobycontainer.CreateRequest
	if err := decodeBody(w, r, "create container", &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Config == nil {
		s.writeError(w, r, errdefs.InvalidArgument(errors.New("create container: config is required")))
		return
	}
	warnings, err := checkSupported(req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Docker's create never pulls: the client pulls on "No such image".
	id, err := s.backend.Containers().Create(r.Context(), container.CreateRequest{
		Name: r.URL.Query().Get("name"), Config: req.Config, HostConfig: req.HostConfig, Pull: container.PullNever,
		Aliases: aliases(req.NetworkingConfig), IP: requestedIP(req.NetworkingConfig),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, mobycontainer.CreateResponse{ID: id, Warnings: warnings})
}

func (s *Server) containerStart(r *http.Request) (int, error) {
	return http.StatusNoContent, s.backend.Containers().Start(r.Context(), r.PathValue("id"))
}

// timeoutParam reads Docker's t= (seconds); -1 when absent.
func timeoutParam(r *http.Request) (time.Duration, error) {
	t := r.URL.Query().Get("t")
	if t == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(t)
	if err != nil {
		return 0, errdefs.InvalidArgument(fmt.Errorf("invalid timeout %q: a number of seconds", t))
	}
	if n < 0 {
		return 365 * 24 * time.Hour, nil // -1: wait forever
	}
	return time.Duration(n) * time.Second, nil
}

func (s *Server) containerStop(r *http.Request) (int, error) {
	t, err := timeoutParam(r)
	if err != nil {
		return 0, err
	}
	return http.StatusNoContent, s.backend.Containers().Stop(r.Context(), r.PathValue("id"), r.URL.Query().Get("signal"), t)
}

func (s *Server) containerRestart(r *http.Request) (int, error) {
	t, err := timeoutParam(r)
	if err != nil {
		return 0, err
	}
	return http.StatusNoContent, s.backend.Containers().Restart(r.Context(), r.PathValue("id"), t)
}

func (s *Server) containerKill(r *http.Request) (int, error) {
	return http.StatusNoContent, s.backend.Containers().Kill(r.Context(), r.PathValue("id"), r.URL.Query().Get("signal"))
}

// waitCondition reads wait's condition= (default not-running).
func waitCondition(r *http.Request) (container.WaitCondition, error) {
	cond := container.WaitCondition(r.URL.Query().Get("condition"))
	switch cond {
	case "":
		return container.WaitNotRunning, nil
	case container.WaitNotRunning, container.WaitNextExit, container.WaitRemoved:
		return cond, nil
	}
	return "", errdefs.InvalidArgument(fmt.Errorf("invalid wait condition %q: use not-running, next-exit or removed", cond))
}

// containerWait sends its 200 headers at once (the docker CLI waits for
// them before it starts the container), then the exit code when the
// condition is met.
func (s *Server) containerWait(w http.ResponseWriter, r *http.Request) {
	cs := s.backend.Containers()
	id := r.PathValue("id")
	cond, err := waitCondition(r)
	if err == nil {
		_, err = cs.Inspect(id)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	code, err := cs.Wait(r.Context(), id, cond)
	resp := mobycontainer.WaitResponse{StatusCode: int64(code)}
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		resp.Error = &mobycontainer.WaitExitError{Message: err.Error()}
	}
	_ = json.NewEncoder(w).Encode(resp)
}

func (s *Server) containerAttach(w http.ResponseWriter, r *http.Request) {
	cs := s.backend.Containers()
	sn, err := cs.Inspect(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	conn, in, stdout, stderr, err := hijackStreams(w, r, sn.Spec.Config.Tty)
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
		_ = cs.Logs(r.Context(), sn.Spec.ID, container.LogOptions{Stdout: opts.Stdout != nil, Stderr: opts.Stderr != nil, Tail: -1}, func(e container.LogEntry) error {
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
	_ = cs.Attach(r.Context(), sn.Spec.ID, opts)
	closeWrite(conn)
}

func (s *Server) containerResize(r *http.Request) (int, error) {
	h, w, err := sizeParams(r)
	if err != nil {
		return 0, err
	}
	return http.StatusOK, s.backend.Containers().Resize(r.Context(), r.PathValue("id"), h, w)
}

func sizeParams(r *http.Request) (h, w uint32, err error) {
	hv, err1 := strconv.ParseUint(r.URL.Query().Get("h"), 10, 16)
	wv, err2 := strconv.ParseUint(r.URL.Query().Get("w"), 10, 16)
	if err1 != nil || err2 != nil {
		return 0, 0, errdefs.InvalidArgument(fmt.Errorf("resize: h and w must be numbers of rows and columns (got h=%q w=%q)", r.URL.Query().Get("h"), r.URL.Query().Get("w")))
	}
	return uint32(hv), uint32(wv), nil
}

func (s *Server) containerRename(r *http.Request) (int, error) {
	return http.StatusNoContent, s.backend.Containers().Rename(r.PathValue("id"), r.URL.Query().Get("name"))
}

// containerDelete removes a container (docker rm); v=1 removes its
// anonymous volumes too.
func (s *Server) containerDelete(r *http.Request) (int, error) {
	if boolParam(r, "link") {
		return 0, errdefs.InvalidArgument(errors.New("rm --link is not supported yet by Berth (" + whyNetwork + ")"))
	}
	return http.StatusNoContent, s.backend.Containers().Remove(r.Context(), r.PathValue("id"),
		container.RemoveOptions{Force: boolParam(r, "force"), Volumes: boolParam(r, "v")})
}

func (s *Server) containerPrune(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ids, err := s.backend.Containers().Prune(r.Context(), func(sn container.Snapshot) bool { return !f.matchLabels(sn.Spec.Config.Labels) })
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
		up := "Up " + units.HumanDuration(time.Since(st.StartedAt))
		if st.Health == nil {
			return up
		}
		if st.Health.Status == mobycontainer.Starting {
			return up + " (health: starting)"
		}
		return up + " (" + string(st.Health.Status) + ")"
	case mobycontainer.StateExited:
		if st.FinishedAt.IsZero() {
			return fmt.Sprintf("Exited (%d)", st.ExitCode)
		}
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, units.HumanDuration(time.Since(st.FinishedAt)))
	case mobycontainer.StateRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, units.HumanDuration(time.Since(st.FinishedAt)))
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
// ancestor, health.
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
	if v, ok := f["health"]; ok && len(v) > 0 {
		status := string(mobycontainer.NoHealthcheck)
		if sn.State.Health != nil {
			status = string(sn.State.Health.Status)
		}
		if !v[status] {
			return false
		}
	}
	return true
}

func (s *Server) containerList(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil {
			s.writeError(w, r, errdefs.InvalidArgument(fmt.Errorf("invalid limit %q: a number of containers", v)))
			return
		}
	}
	all := boolParam(r, "all") || len(f["status"]) > 0
	snaps := s.backend.Containers().List(all, f.matchContainer)
	if limit > 0 && len(snaps) > limit {
		snaps = snaps[:limit]
	}
	out := make([]mobycontainer.Summary, 0, len(snaps))
	for _, sn := range snaps {
		out = append(out, summarize(sn))
	}
	writeJSON(w, http.StatusOK, out)
}

// summarize is a container as `docker ps` lists it.
func summarize(sn container.Snapshot) mobycontainer.Summary {
	sum := mobycontainer.Summary{
		ID:      sn.Spec.ID,
		Names:   []string{"/" + sn.Spec.Name},
		Image:   sn.Spec.Image,
		ImageID: sn.Spec.ImageID,
		Command: sn.Command(),
		Created: sn.Spec.Created.Unix(),
		Ports:   portSummaries(sn),
		Labels:  sn.Spec.Config.Labels,
		State:   sn.State.Status,
		Status:  statusText(sn.State),
		Mounts:  mountPoints(sn),
	}
	if sum.Labels == nil {
		sum.Labels = map[string]string{}
	}
	if h := sn.State.Health; h != nil {
		sum.Health = &mobycontainer.HealthSummary{Status: h.Status, FailingStreak: h.FailingStreak}
	}
	if sn.Spec.HostConfig != nil {
		sum.HostConfig.NetworkMode = string(sn.Spec.HostConfig.NetworkMode)
	}
	sum.NetworkSettings = &mobycontainer.NetworkSettingsSummary{Networks: endpoints(sn)}
	return sum
}

// portSummaries are a running container's published ports as docker ps
// shows them.
func portSummaries(sn container.Snapshot) []mobycontainer.PortSummary {
	out := []mobycontainer.PortSummary{}
	if sn.State.Status != mobycontainer.StateRunning {
		return out
	}
	for _, p := range sn.State.Ports {
		ip := p.HostIP
		if !ip.IsValid() {
			ip = bnet.DefaultHostIP
		}
		out = append(out, mobycontainer.PortSummary{IP: ip, PrivatePort: p.ContainerPort, PublicPort: p.HostPort, Type: p.Proto})
	}
	return out
}

// endpoints are a container's networks as inspect and ps show them:
// its one network (the default one is Docker's "bridge"), its aliases,
// and, while it runs, its address.
func endpoints(sn container.Snapshot) map[string]*network.EndpointSettings {
	if sn.Spec.Network == bnet.None {
		return map[string]*network.EndpointSettings{} // disconnected (docker network disconnect)
	}
	ep := &network.EndpointSettings{Aliases: sn.Spec.Aliases}
	if sn.Spec.IP.IsValid() {
		ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: sn.Spec.IP}
	}
	name := bnet.DefaultName
	if mode := sn.Spec.NetworkName(); !bnet.IsDefault(mode) {
		name = mode
	}
	if ip, err := netip.ParseAddr(sn.State.IPAddress); err == nil && sn.State.Status == mobycontainer.StateRunning && name != bnet.None {
		ep.IPAddress, ep.IPPrefixLen, ep.Gateway = ip, sn.State.IPPrefixLen, sn.State.Gateway
		if ep.IPPrefixLen == 0 {
			ep.IPPrefixLen = 24
		}
		ep.DNSNames = append([]string{sn.Spec.Name, sn.ShortID()}, sn.Spec.Aliases...)
	}
	return map[string]*network.EndpointSettings{name: ep}
}

// mountPoints are a container's mounts as Docker's inspect and ps show
// them: Mode is the mode a Binds entry gave ("ro", "z"), RW its
// opposite of read-only, Propagation rprivate for binds.
func mountPoints(sn container.Snapshot) []mobycontainer.MountPoint {
	out := []mobycontainer.MountPoint{}
	for _, m := range sn.Spec.Mounts {
		mp := mobycontainer.MountPoint{Type: m.Type, Source: m.HostPath, Destination: m.Target, RW: !m.ReadOnly}
		if parts := strings.Split(m.Spec, ":"); len(parts) == 3 {
			mp.Mode = parts[2]
		}
		switch m.Type {
		case mobymount.TypeBind:
			mp.Propagation = mobymount.PropagationRPrivate
		case mobymount.TypeVolume:
			mp.Name, mp.Driver = m.Source, "local"
		}
		out = append(out, mp)
	}
	return out
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
	sn, err := s.backend.Containers().Inspect(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, inspectContainer(sn))
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
				Restarting: st.Status == mobycontainer.StateRestarting,
				Health:     st.Health,
			},
			RestartCount: st.RestartCount,
			Image:        sn.Spec.ImageID,
			LogPath:      sn.Dir + "/container.log",
			Name:         "/" + sn.Spec.Name,
			Driver:       "berth-ext4",
			Platform:     "linux",
			ExecIDs:      execIDs,
			HostConfig:   sn.Spec.HostConfig,
			Mounts:       mountPoints(sn),
			Config:       sn.Spec.Config,
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
		if st.IPPrefixLen != 0 {
			resp.NetworkSettings.IPPrefixLen = st.IPPrefixLen
		}
		if st.Gateway.IsValid() {
			resp.NetworkSettings.Gateway = st.Gateway.String()
		}
		if pm := bnet.ToPortMap(st.Ports); pm != nil {
			resp.NetworkSettings.Ports = pm
		}
		// Exposed ports not published are there without bindings, as
		// Docker shows them.
		if sn.Spec.Config != nil {
			for port := range sn.Spec.Config.ExposedPorts {
				if _, ok := resp.NetworkSettings.Ports[port]; !ok {
					resp.NetworkSettings.Ports[port] = nil
				}
			}
		}
	}
	return resp
}

// logOptions reads GET /containers/{id}/logs's query.
func logOptions(r *http.Request) (container.LogOptions, error) {
	q := r.URL.Query()
	opts := container.LogOptions{Stdout: boolParam(r, "stdout"), Stderr: boolParam(r, "stderr"), Follow: boolParam(r, "follow"), Tail: -1}
	if !opts.Stdout && !opts.Stderr {
		return opts, errdefs.InvalidArgument(errors.New("you must choose at least one stream"))
	}
	if t := q.Get("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil {
			return opts, errdefs.InvalidArgument(fmt.Errorf("invalid tail %q: a number of lines or \"all\"", t))
		}
		opts.Tail = n
	}
	var err error
	if opts.Since, err = unixParam(r, "since"); err != nil {
		return opts, err
	}
	opts.Until, err = unixParam(r, "until")
	return opts, err
}

// unixParam reads a Unix timestamp (seconds, with a fraction) from the
// query; absent or "0" is the zero time.
func unixParam(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" || v == "0" {
		return time.Time{}, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, errdefs.InvalidArgument(fmt.Errorf("invalid %s %q: a Unix timestamp", name, v))
	}
	return time.Unix(0, int64(f*1e9)), nil
}

func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	cs := s.backend.Containers()
	sn, err := cs.Inspect(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	opts, err := logOptions(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	timestamps := boolParam(r, "timestamps")
	tty := sn.Spec.Config.Tty
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
	_ = cs.Logs(r.Context(), sn.Spec.ID, opts, func(e container.LogEntry) error {
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

// statsInterval is how often a stats stream samples, as dockerd's does.
const statsInterval = time.Second

// containerStats answers Docker's stats: with stream (the API's default)
// one sample a second, each after the first with the one before as its
// PreCPUStats and PreRead, until the client goes or the container stops
// running (dockerd would go on sending zeros; nothing here changes once a
// VM is down); with stream=false one sample, taken after a second so that
// it has a previous one, unless one-shot.
func (s *Server) containerStats(w http.ResponseWriter, r *http.Request) {
	ctx, id := r.Context(), r.PathValue("id")
	q := r.URL.Query()
	stream := q.Get("stream") == "" || boolParam(r, "stream")
	if stream && boolParam(r, "one-shot") {
		s.writeError(w, r, errdefs.InvalidArgument(errors.New("stats: cannot have stream=true and one-shot=true")))
		return
	}
	cs := s.backend.Containers()
	st, err := cs.Stats(ctx, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !stream {
		if !boolParam(r, "one-shot") {
			prev := st
			if !sleepCtx(ctx, statsInterval) {
				return
			}
			if st, err = cs.Stats(ctx, id); err != nil {
				s.writeError(w, r, err)
				return
			}
			st.PreCPUStats, st.PreRead = prev.CPUStats, prev.Read
		}
		writeJSON(w, http.StatusOK, st)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	for {
		if err := enc.Encode(st); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		if sn, err := cs.Inspect(id); err != nil || sn.State.Status != mobycontainer.StateRunning {
			return
		}
		if !sleepCtx(ctx, statsInterval) {
			return
		}
		prev := st
		if st, err = cs.Stats(ctx, id); err != nil {
			// Removed, or its VM went away between two samples: the
			// stream ends, as the answer has been sent.
			return
		}
		st.PreCPUStats, st.PreRead = prev.CPUStats, prev.Read
	}
}

// sleepCtx waits d, or less when ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s *Server) execCreate(w http.ResponseWriter, r *http.Request) {
	var req mobycontainer.ExecCreateRequest
	if err := decodeBody(w, r, "exec", &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Privileged {
		s.writeError(w, r, errdefs.InvalidArgument(errors.New("exec: --privileged is not supported yet by Berth ("+whyVM+")")))
		return
	}
	cfg := container.ExecConfig{Cmd: req.Cmd, Env: req.Env, WorkingDir: req.WorkingDir, User: req.User, Tty: req.Tty,
		AttachStdin: req.AttachStdin, AttachStdout: req.AttachStdout, AttachStderr: req.AttachStderr}
	if req.ConsoleSize != nil {
		cfg.ConsoleSize = *req.ConsoleSize
	}
	id, err := s.backend.Execs().Create(r.Context(), r.PathValue("id"), cfg)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, mobycontainer.ExecCreateResponse{ID: id})
}

func (s *Server) execStart(w http.ResponseWriter, r *http.Request) {
	var req mobycontainer.ExecStartRequest
	if err := decodeOptionalBody(w, r, "exec start", &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	execs := s.backend.Execs()
	id := r.PathValue("id")
	st, err := execs.Inspect(id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	opts := ExecStart{ConsoleSize: req.ConsoleSize}
	if req.Detach {
		// Detached: the exec outlives this request.
		go func() { _, _ = execs.Start(context.WithoutCancel(r.Context()), id, opts) }()
		w.WriteHeader(http.StatusOK)
		return
	}
	conn, in, stdout, stderr, err := hijackStreams(w, r, st.Config.Tty)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer conn.Close()
	opts.Stdio = agent.Stdio{Stdin: in, Stdout: stdout, Stderr: stderr}
	if _, err := execs.Start(r.Context(), id, opts); err != nil {
		// The exit code is recorded; the message goes where the user sees it.
		fmt.Fprintf(stderr, "%v\n", err)
	}
	closeWrite(conn)
}

func (s *Server) execResize(r *http.Request) (int, error) {
	h, w, err := sizeParams(r)
	if err != nil {
		return 0, err
	}
	return http.StatusOK, s.backend.Execs().Resize(r.Context(), r.PathValue("id"), h, w)
}

func (s *Server) execInspect(w http.ResponseWriter, r *http.Request) {
	st, err := s.backend.Execs().Inspect(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pc := &mobycontainer.ExecProcessConfig{Tty: st.Config.Tty, Arguments: []string{}, User: st.Config.User}
	if len(st.Config.Cmd) > 0 {
		pc.Entrypoint, pc.Arguments = st.Config.Cmd[0], nonNil(st.Config.Cmd[1:])
	}
	writeJSON(w, http.StatusOK, mobycontainer.ExecInspectResponse{
		ID: st.ID, Running: st.Running, ExitCode: st.ExitCode, ContainerID: st.ContainerID, Pid: st.Pid,
		OpenStdin: st.Config.AttachStdin, OpenStdout: st.Config.AttachStdout, OpenStderr: st.Config.AttachStderr, CanRemove: !st.Running && st.ExitCode != nil,
		ProcessConfig: pc,
	})
}

// eventsQuery is GET /events's query: which events, from when, until
// when (zero: no bound).
type eventsQuery struct {
	accept       func(events.Message) bool
	since, until time.Time
}

// parseTime reads a time as Docker's API takes one: Unix seconds (with
// a fraction) or RFC 3339; empty is the zero time.
func parseTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if x, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(x) && !math.IsInf(x, 0) {
		return time.Unix(0, int64(x*1e9)), nil
	}
	return time.Parse(time.RFC3339Nano, v)
}

// parseEventsQuery reads filters (type, event, container, image, label),
// since and until (Unix seconds or RFC 3339).
func parseEventsQuery(r *http.Request) (eventsQuery, error) {
	q := r.URL.Query()
	f, err := parseFilters(q.Get("filters"))
	if err != nil {
		return eventsQuery{}, err
	}
	since, err1 := parseTime(q.Get("since"))
	until, err2 := parseTime(q.Get("until"))
	if err := errors.Join(err1, err2); err != nil {
		return eventsQuery{}, errdefs.InvalidArgument(fmt.Errorf("events: invalid since/until: %w", err))
	}
	return eventsQuery{accept: f.matchEvent, since: since, until: until}, nil
}

// matchEvent applies `docker events --filter`.
func (f filters) matchEvent(m events.Message) bool {
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
	if v := f["network"]; len(v) > 0 && (m.Type != mobyevents.NetworkEventType || (!v[m.Actor.ID] && !v[m.Actor.Attributes["name"]])) {
		return false
	}
	return f.matchLabels(m.Actor.Attributes)
}

// events streams engine events as Docker's GET /events does: the recorded
// ones since the start, then new ones until the end or the client leaves.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	eq, err := parseEventsQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	if !eq.until.IsZero() {
		var cancel func()
		ctx, cancel = context.WithDeadline(ctx, eq.until)
		defer cancel()
	}
	past, ch := s.backend.Events().Subscribe(ctx, eq.since, eq.accept)
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
		if !eq.until.IsZero() && m.TimeNano > eq.until.UnixNano() {
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

// containerTop answers docker top (and docker compose top): Docker's
// Titles and Processes, with ps -ef's columns, listed by the container's
// agent. A missing container is 404, a stopped one 409, ps options other
// than -ef 400 (Berth runs no ps).
func (s *Server) containerTop(w http.ResponseWriter, r *http.Request) {
	top, err := s.backend.Containers().Top(r.Context(), r.PathValue("id"), r.URL.Query().Get("ps_args"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, top)
}
