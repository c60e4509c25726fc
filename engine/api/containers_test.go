package api

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/container"
	mobycontainer "github.com/moby/moby/api/types/container"
)

var (
	webID = strings.Repeat("77", 32) // "web", running
	jobID = strings.Repeat("6a", 32) // "job", exited with 3
)

func TestContainerList(t *testing.T) {
	f := func(s string) string { return "&filters=" + url.QueryEscape(s) }
	cases := []struct {
		query string
		code  int
		names string
		msg   string
	}{
		{"?", 200, "/web", ""},
		{"?all=1", 200, "/job,/web", ""},
		{"?all=true", 200, "/job,/web", ""},
		{"?all=0", 200, "/web", ""},
		{"?all=1&limit=1", 200, "/job", ""},
		{"?all=1&limit=0", 200, "/job,/web", ""},
		{"?limit=x", 400, "", "invalid limit \"x\""},
		{"?" + f(`{"status":{"exited":true}}`), 200, "/job", ""},
		{"?all=1" + f(`{"label":{"tier=front":true}}`), 200, "/web", ""},
		{"?all=1" + f(`{"label":["tier"]}`), 200, "/web", ""},
		{"?all=1" + f(`{"name":{"jo":true}}`), 200, "/job", ""},
		{"?all=1" + f(`{"id":{"6a6a":true}}`), 200, "/job", ""},
		{"?all=1" + f(`{"ancestor":{"alpine":true}}`), 200, "/job,/web", ""},
		{"?all=1" + f(`{"ancestor":{"busybox":true}}`), 200, "", ""},
		{"?" + f(`{"status":`), 400, "", "invalid filters"},
	}
	for _, c := range cases {
		rec := serve(t, newFakeBackend(), "GET", "/v1.47/containers/json"+c.query, nil)
		if !check(t, "ps"+c.query, rec, c.code, c.msg) || c.code != 200 {
			continue
		}
		var got []mobycontainer.Summary
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range got {
			names = append(names, s.Names[0])
			if s.Labels == nil || s.Ports == nil || s.Mounts == nil {
				t.Errorf("ps%s: %s: Labels, Ports and Mounts must be present", c.query, s.Names[0])
			}
			if s.Names[0] == "/web" && (s.State != "running" || !strings.HasPrefix(s.Status, "Up ") || s.Command != "sleep 9") {
				t.Errorf("ps%s: web %+v", c.query, s)
			}
			if s.Names[0] == "/job" && s.Status != "Exited (3)" {
				t.Errorf("ps%s: job status %q", c.query, s.Status)
			}
		}
		if strings.Join(names, ",") != c.names {
			t.Errorf("ps%s: %v, want %s", c.query, names, c.names)
		}
	}
}

func TestContainerInspect(t *testing.T) {
	for _, ref := range []string{"web", webID, webID[:12]} {
		rec := serve(t, newFakeBackend(), "GET", "/containers/"+ref+"/json", nil)
		var got containerInspectResponse
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &got) != nil {
			t.Fatalf("%s: %d %s", ref, rec.Code, rec.Body)
		}
		if got.ID != webID || got.Name != "/web" || !got.State.Running || got.NetworkSettings.IPAddress != "10.0.2.15" || got.Path != "sleep" {
			t.Errorf("%s: %+v %+v", ref, got.InspectResponse, got.NetworkSettings)
		}
	}
	check(t, "inspect nope", serve(t, newFakeBackend(), "GET", "/containers/nope/json", nil), 404, "No such container: nope")
}

// Lifecycle endpoints: status codes, Docker's texts, and the query
// parameters as the engine receives them.
func TestContainerLifecycle(t *testing.T) {
	cases := []struct {
		method, path string
		code         int
		msg          string
	}{
		{"POST", "/containers/job/start", 204, ""},
		{"POST", "/containers/web/start", 304, ""},
		{"POST", "/containers/nope/start", 404, "No such container: nope"},
		{"POST", "/containers/web/stop", 204, ""},
		{"POST", "/containers/job/stop", 304, ""},
		{"POST", "/containers/web/stop?t=x", 400, "invalid timeout \"x\""},
		{"POST", "/containers/web/restart?t=1.5", 400, "invalid timeout"},
		{"POST", "/containers/web/restart", 204, ""},
		{"POST", "/containers/web/kill?signal=WINCH", 204, ""},
		{"POST", "/containers/job/kill", 409, "is not running"},
		{"GET", "/containers/job/top", 409, "is not running"},
		{"GET", "/containers/nope/top", 404, "No such container: nope"},
		{"GET", "/containers/web/top?ps_args=aux", 400, "docker top options \"aux\" are not supported by Berth"},
		{"GET", "/containers/web/top", 200, ""},
		{"POST", "/containers/web/rename?name=www", 204, ""},
		{"POST", "/containers/nope/rename?name=www", 404, "No such container: nope"},
		{"POST", "/containers/web/resize?h=24&w=80", 200, ""},
		{"POST", "/containers/web/resize?h=24", 400, "h and w must be numbers"},
		{"POST", "/containers/web/resize?h=-1&w=80", 400, "h and w must be numbers"},
		{"DELETE", "/containers/web", 409, "container is running: stop the container before removing or force remove"},
		{"DELETE", "/containers/web?force=0", 409, "force remove"},
		{"DELETE", "/containers/web?force=1", 204, ""},
		{"DELETE", "/containers/job", 204, ""},
		{"DELETE", "/containers/job?v=1", 204, ""},
		{"DELETE", "/containers/job?link=1", 400, "rm --link is not supported yet"},
		{"DELETE", "/containers/nope", 404, "No such container: nope"},
		{"GET", "/containers/web/stats?stream=false&one-shot=true", 200, ""},
		{"GET", "/containers/web/stats?stream=1&one-shot=1", 400, "cannot have stream=true and one-shot=true"},
		{"GET", "/containers/nope/stats", 404, "No such container: nope"},
	}
	for _, c := range cases {
		check(t, c.method+" "+c.path, serve(t, newFakeBackend(), c.method, c.path, nil), c.code, c.msg)
	}

	b := newFakeBackend()
	serve(t, b, "POST", "/containers/web/stop?t=7&signal=SIGTERM", nil)
	serve(t, b, "POST", "/containers/web/restart?t=-1", nil)
	serve(t, b, "POST", "/containers/web/restart", nil)
	if s := b.containers.stops; len(s) != 3 || s[0] != 7*time.Second || s[1] < time.Hour || s[2] != -1 {
		t.Errorf("timeouts %v, want 7s, forever, -1 (the container's own)", s)
	}
	if s := b.containers.signals; len(s) != 1 || s[0] != "SIGTERM" {
		t.Errorf("signals %v", s)
	}
	serve(t, b, "POST", "/containers/web/resize?h=24&w=80", nil)
	if r := b.containers.resized; len(r) != 1 || r[0] != [2]uint32{24, 80} {
		t.Errorf("resized %v", r)
	}
}

func TestContainerWait(t *testing.T) {
	cases := []struct {
		query string
		code  int
		msg   string
	}{
		{"", 200, ""},
		{"?condition=next-exit", 200, ""},
		{"?condition=removed", 200, ""},
		{"?condition=bogus", 400, "invalid wait condition \"bogus\""},
	}
	for _, c := range cases {
		rec := serve(t, newFakeBackend(), "POST", "/containers/job/wait"+c.query, nil)
		if !check(t, "wait"+c.query, rec, c.code, c.msg) || c.code != 200 {
			continue
		}
		var w mobycontainer.WaitResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &w); err != nil || w.StatusCode != 3 || w.Error != nil {
			t.Errorf("wait%s: %s", c.query, rec.Body)
		}
	}
	check(t, "wait nope", serve(t, newFakeBackend(), "POST", "/containers/nope/wait", nil), 404, "No such container: nope")
}

func TestContainerPrune(t *testing.T) {
	b := newFakeBackend()
	rec := serve(t, b, "POST", "/containers/prune?filters="+url.QueryEscape(`{"label":{"keep":true}}`), nil)
	var rep mobycontainer.PruneReport
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || len(rep.ContainersDeleted) != 0 {
		t.Errorf("prune with a label no one has: %s", rec.Body)
	}
	rec = serve(t, b, "POST", "/containers/prune", nil)
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || len(rep.ContainersDeleted) != 1 || rep.ContainersDeleted[0] != jobID {
		t.Errorf("prune: %s", rec.Body)
	}
}

// demux splits Docker's multiplexed stream into "1:..." and "2:..."
// chunks.
func demux(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return out
		}
		b := make([]byte, binary.BigEndian.Uint32(hdr[4:]))
		if _, err := io.ReadFull(r, b); err != nil {
			t.Fatalf("short frame: %v", err)
		}
		out = append(out, string('0'+hdr[0])+":"+string(b))
	}
}

func TestContainerLogs(t *testing.T) {
	cases := []struct {
		query string
		code  int
		msg   string
		want  string
	}{
		{"?stdout=1&stderr=1", 200, "", "1:one\n|2:two\n|1:three\n"},
		{"?stdout=1", 200, "", "1:one\n|1:three\n"},
		{"?stderr=true", 200, "", "2:two\n"},
		{"?stdout=1&stderr=1&tail=1", 200, "", "1:three\n"},
		{"?stdout=1&stderr=1&tail=all", 200, "", "1:one\n|2:two\n|1:three\n"},
		{"?stdout=1&stderr=1&since=150", 200, "", "2:two\n|1:three\n"},
		{"?stdout=1&stderr=1&until=250.5", 200, "", "1:one\n|2:two\n"},
		{"?stdout=1&timestamps=1&tail=1", 200, "", "1:1970-01-01T00:05:00Z three\n"},
		{"", 400, "you must choose at least one stream", ""},
		{"?stdout=1&tail=x", 400, "invalid tail \"x\"", ""},
		{"?stdout=1&since=NaN", 400, "invalid since", ""},
		{"?stdout=1&until=soon", 400, "invalid until", ""},
	}
	for _, c := range cases {
		rec := serve(t, newFakeBackend(), "GET", "/containers/web/logs"+c.query, nil)
		if !check(t, "logs"+c.query, rec, c.code, c.msg) || c.code != 200 {
			continue
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/vnd.docker.multiplexed-stream" {
			t.Errorf("logs%s: Content-Type %q", c.query, ct)
		}
		if got := strings.Join(demux(t, rec.Body), "|"); got != c.want {
			t.Errorf("logs%s: %q, want %q", c.query, got, c.want)
		}
	}
	check(t, "logs nope", serve(t, newFakeBackend(), "GET", "/containers/nope/logs?stdout=1", nil), 404, "No such container: nope")
}

func TestContainerCreate(t *testing.T) {
	cases := []struct {
		query, body string
		code        int
		msg         string
	}{
		{"?name=fresh", `{"Image":"alpine","Cmd":["true"]}`, 201, ""},
		{"", `{"Image":"busybox"}`, 404, "No such image: busybox"},
		{"?name=web", `{"Image":"alpine"}`, 409, `Conflict. The container name "/web" is already in use`},
		{"", `null`, 400, "config is required"},
	}
	for _, c := range cases {
		b := newFakeBackend()
		rec := serve(t, b, "POST", "/containers/create"+c.query, strings.NewReader(c.body))
		if !check(t, "create"+c.query+" "+c.body, rec, c.code, c.msg) || c.code != 201 {
			continue
		}
		var resp mobycontainer.CreateResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.ID) != 64 || resp.Warnings == nil {
			t.Errorf("create: %s (Warnings must be [])", rec.Body)
		}
		req := b.containers.created[0]
		if req.Name != "fresh" || req.Pull != container.PullNever || req.Config.Cmd[0] != "true" {
			t.Errorf("create reached the engine as %+v", req)
		}
	}
}

func TestExecEndpoints(t *testing.T) {
	cases := []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"POST", "/containers/web/exec", `{"Cmd":["ls"],"Tty":true,"ConsoleSize":[24,80]}`, 201, ""},
		{"POST", "/containers/job/exec", `{"Cmd":["ls"]}`, 409, "is not running"},
		{"POST", "/containers/nope/exec", `{"Cmd":["ls"]}`, 404, "No such container: nope"},
		{"POST", "/containers/web/exec", `{}`, 400, "no command given"},
		{"POST", "/containers/web/exec", `{"Cmd":["ls"],"Privileged":true}`, 400, "exec: --privileged is not supported yet by Berth"},
		{"GET", "/exec/exec1/json", "", 200, ""},
		{"GET", "/exec/nope/json", "", 404, "No such exec instance: nope"},
		{"POST", "/exec/nope/start", `{"Detach":true}`, 404, "No such exec instance: nope"},
		{"POST", "/exec/exec1/resize?h=10&w=20", "", 200, ""},
		{"POST", "/exec/exec1/resize?h=10", "", 400, "h and w must be numbers"},
		{"POST", "/exec/nope/resize?h=10&w=20", "", 404, "No such exec instance: nope"},
	}
	for _, c := range cases {
		b := newFakeBackend()
		b.execs.byID["exec1"] = fakeExec()
		check(t, c.method+" "+c.path, serve(t, b, c.method, c.path, strings.NewReader(c.body)), c.code, c.msg)
	}

	b := newFakeBackend()
	b.execs.byID["exec1"] = fakeExec()
	var ins mobycontainer.ExecInspectResponse
	rec := serve(t, b, "GET", "/exec/exec1/json", nil)
	if err := json.Unmarshal(rec.Body.Bytes(), &ins); err != nil || ins.ProcessConfig.Entrypoint != "echo" || ins.ProcessConfig.Arguments[0] != "hi" || ins.ContainerID != webID || ins.Running {
		t.Errorf("exec inspect: %s", rec.Body)
	}
	// The streams an exec attaches are the ones it was created with
	// (docker-py's exec_run(stdout=False)), and inspect says so.
	rec = serve(t, b, "POST", "/containers/web/exec", strings.NewReader(`{"Cmd":["ls"],"AttachStdout":false,"AttachStderr":true}`))
	var created mobycontainer.ExecCreateResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &created); err != nil || rec.Code != 201 {
		t.Fatalf("exec create: %d %s", rec.Code, rec.Body)
	}
	ins = mobycontainer.ExecInspectResponse{}
	rec = serve(t, b, "GET", "/exec/"+created.ID+"/json", nil)
	if err := json.Unmarshal(rec.Body.Bytes(), &ins); err != nil || ins.OpenStdout || !ins.OpenStderr || ins.OpenStdin {
		t.Errorf("exec created with stdout detached: %s", rec.Body)
	}
	// Detached: answered at once, started in the background.
	rec = serve(t, b, "POST", "/exec/exec1/start", strings.NewReader(`{"Detach":true,"ConsoleSize":[30,100]}`))
	if rec.Code != 200 {
		t.Fatalf("detached start: %d %s", rec.Code, rec.Body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.execs.mu.Lock()
		n := len(b.execs.starts)
		var size *[2]uint
		if n > 0 {
			size = b.execs.starts[0].ConsoleSize
		}
		b.execs.mu.Unlock()
		if n > 0 {
			if size == nil || *size != [2]uint{30, 100} {
				t.Errorf("detached start: console size %v, want [30 100]", size)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("detached exec never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hijacked sends a raw HTTP request on a real connection and returns the
// status line and what follows the headers.
func hijacked(t *testing.T, b Backend, request string) (status string, body []byte) {
	t.Helper()
	srv := httptest.NewServer(NewServer(b))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	status, _ = br.ReadString('\n')
	for {
		line, err := br.ReadString('\n')
		if err != nil || line == "\r\n" {
			break
		}
	}
	body, _ = io.ReadAll(br)
	return strings.TrimSpace(status), body
}

// An attached exec answers 101 UPGRADED and streams Docker's frames on
// the raw connection; an empty body is allowed.
func TestExecStartHijacks(t *testing.T) {
	for _, body := range []string{`{"Detach":false,"Tty":false}`, ``} {
		b := newFakeBackend()
		b.execs.byID["exec1"] = fakeExec()
		req := "POST /v1.47/exec/exec1/start HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body
		status, out := hijacked(t, b, req)
		if status != "HTTP/1.1 101 UPGRADED" {
			t.Errorf("body %q: status %q", body, status)
		}
		if got := strings.Join(demux(t, strings.NewReader(string(out))), "|"); got != "1:ran echo hi\n" {
			t.Errorf("body %q: stream %q", body, got)
		}
	}
}

func TestContainerAttachHijacks(t *testing.T) {
	status, out := hijacked(t, newFakeBackend(), "POST /containers/web/attach?stream=1&stdout=1&logs=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	if status != "HTTP/1.1 101 UPGRADED" {
		t.Errorf("status %q", status)
	}
	if got := strings.Join(demux(t, strings.NewReader(string(out))), "|"); got != "1:one\n|1:three\n|1:attached\n" {
		t.Errorf("stream %q", got)
	}
	status, _ = hijacked(t, newFakeBackend(), "POST /containers/nope/attach?stream=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if status != "HTTP/1.1 404 Not Found" {
		t.Errorf("attach nope: %q", status)
	}
}

// Stats stream by default, one sample a second, each after the first with
// the one before as its PreCPUStats; the stream ends when the container
// stops running.
func TestContainerStatsStream(t *testing.T) {
	b := newFakeBackend()
	srv := httptest.NewServer(NewServer(b))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/containers/web/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	dec := json.NewDecoder(resp.Body)
	var samples []mobycontainer.StatsResponse
	for len(samples) < 2 {
		var st mobycontainer.StatsResponse
		if err := dec.Decode(&st); err != nil {
			t.Fatalf("sample %d: %v", len(samples), err)
		}
		samples = append(samples, st)
	}
	first, second := samples[0], samples[1]
	if first.PreCPUStats.CPUUsage.TotalUsage != 0 || !first.PreRead.IsZero() {
		t.Errorf("first sample has a previous one: %+v", first.PreCPUStats)
	}
	if second.PreCPUStats.CPUUsage.TotalUsage != first.CPUStats.CPUUsage.TotalUsage || !second.PreRead.Equal(first.Read) ||
		second.CPUStats.CPUUsage.TotalUsage <= first.CPUStats.CPUUsage.TotalUsage {
		t.Errorf("second sample: CPU %d, previous %d at %v; want previous = first's %d at %v",
			second.CPUStats.CPUUsage.TotalUsage, second.PreCPUStats.CPUUsage.TotalUsage, second.PreRead, first.CPUStats.CPUUsage.TotalUsage, first.Read)
	}
	if err := b.containers.Stop(ctx, "web", "", 0); err != nil {
		t.Fatal(err)
	}
	for {
		var st mobycontainer.StatsResponse
		if err := dec.Decode(&st); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("after stop: %v", err)
		}
	}

	// stream=false: one sample, with the previous one a second before.
	rec := serve(t, b, "GET", "/containers/job/stats?stream=false", nil)
	var one mobycontainer.StatsResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &one); err != nil || one.PreCPUStats.CPUUsage.TotalUsage == 0 {
		t.Errorf("stream=false: %s (%v), want one sample with PreCPUStats", rec.Body, err)
	}
}

// Health in docker ps (status text, summary, --filter health=) and in
// inspect's State.Health.
func TestContainerHealth(t *testing.T) {
	b := newFakeBackend()
	b.containers.byID[webID].State.Health = &mobycontainer.Health{Status: mobycontainer.Healthy,
		Log: []*mobycontainer.HealthcheckResult{{ExitCode: 0, Output: "ok\n"}}}
	rec := serve(t, b, "GET", "/containers/json?all=1&filters="+url.QueryEscape(`{"health":{"healthy":true}}`), nil)
	var list []mobycontainer.Summary
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &list) != nil || len(list) != 1 {
		t.Fatalf("health=healthy: %d %s", rec.Code, rec.Body)
	}
	if s := list[0]; !strings.HasSuffix(s.Status, " (healthy)") || s.Health == nil || s.Health.Status != mobycontainer.Healthy {
		t.Fatalf("summary: %q %+v", s.Status, s.Health)
	}
	rec = serve(t, b, "GET", "/containers/json?all=1&filters="+url.QueryEscape(`{"health":{"none":true}}`), nil)
	if json.Unmarshal(rec.Body.Bytes(), &list) != nil || len(list) != 1 || list[0].Names[0] != "/job" {
		t.Fatalf("health=none: %s", rec.Body)
	}
	rec = serve(t, b, "GET", "/containers/web/json", nil)
	var got containerInspectResponse
	if json.Unmarshal(rec.Body.Bytes(), &got) != nil || got.State.Health == nil || got.State.Health.Log[0].Output != "ok\n" {
		t.Fatalf("inspect: %s", rec.Body)
	}
	for st, want := range map[mobycontainer.HealthStatus]string{mobycontainer.Starting: " (health: starting)", mobycontainer.Unhealthy: " (unhealthy)"} {
		text := statusText(container.State{Status: mobycontainer.StateRunning, StartedAt: time.Now(), Health: &mobycontainer.Health{Status: st}})
		if !strings.HasSuffix(text, want) {
			t.Errorf("%s: %q", st, text)
		}
	}
}
