package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/terminal"
	"github.com/berthvm/berth/internal/testenv"
	"github.com/coder/websocket"
)

// webDir is assets/web from this package's directory.
const webDir = "../assets/web"

// pageScript is the browser script (assets/web/README.md).
var pageScript = filepath.Join(webDir, "test", "terminal.e2e.mjs")

// pageTools returns node and chromium for the terminal page's script.
func pageTools(tb testing.TB) (node, chromium string) {
	tb.Helper()
	return testenv.BrowserTools(tb, webDir)
}

// pageRun is one run of the browser script.
type pageRun struct {
	url, out string
	env      []string
	// phase is called for each `BERTH-PHASE NAME` line; the script
	// continues once it returns.
	phase func(name string)
}

// pageSummary is the part of the script's JSON summary the tests read.
type pageSummary struct {
	Title     string           `json:"title"`
	Renderer  string           `json:"renderer"`
	Timings   map[string]int64 `json:"timings"`
	KeyEchoMs struct {
		N      int     `json:"n"`
		Median float64 `json:"median"`
		P90    float64 `json:"p90"`
	} `json:"key_echo_ms"`
	Sizes       map[string]string `json:"sizes"`
	Screenshots map[string]string `json:"screenshots"`
	Flood       *struct {
		Bytes     int64   `json:"bytes"`
		MBps      float64 `json:"mb_per_s"`
		RTTMs     any     `json:"evaluate_rtt_ms"`
		CatchUpMs int64   `json:"catch_up_rtt_max_ms"`
	} `json:"flood"`
	Banner   string `json:"banner"`
	BadToken *struct {
		Banner string `json:"banner"`
		Status int    `json:"status"`
	} `json:"bad_token"`
	Cat *struct {
		Bytes int64   `json:"bytes"`
		Ms    int64   `json:"ms"`
		MBps  float64 `json:"mb_per_s"`
	} `json:"cat"`
}

// runPage runs the script and decodes its summary; a failing script
// fails tb with its message.
func runPage(tb testing.TB, node, chromium string, r pageRun) pageSummary {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, pageScript, r.url, r.out)
	cmd.Env = append(append(os.Environ(), "BERTH_CHROMIUM="+chromium, "BERTH_E2E_CONTROL=1"), r.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start the browser script: %v", err)
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "BERTH-PHASE "); ok {
			name, _, _ = strings.Cut(name, " ")
			if r.phase != nil {
				r.phase(name)
			}
			if _, err := io.WriteString(stdin, "go\n"); err != nil {
				tb.Errorf("answer phase %s: %v", name, err)
			}
			continue
		}
		out.WriteString(line + "\n")
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		tb.Fatalf("the browser script (%s, out %s) failed after %v: %v\n%s%s", pageScript, r.out, time.Since(start).Round(time.Second), err, out.String(), stderr.String())
	}
	var s pageSummary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		tb.Fatalf("the browser script's summary: %v\n%s", err, out.String())
	}
	tb.Logf("browser script: %v", time.Since(start).Round(100*time.Millisecond))
	return s
}

// waitOutputPaused waits until the session has stopped sending (Sent
// unchanged for a second) with at least HighWater unacknowledged, and
// returns its stats.
func waitOutputPaused(tb testing.TB, s *terminal.Session) terminal.Stats {
	tb.Helper()
	var last terminal.Stats
	steady := 0
	deadline := time.Now().Add(60 * time.Second)
	for steady < 10 {
		if time.Now().After(deadline) {
			tb.Fatalf("the engine kept sending to a paused page, or sent less than the high-water mark: %+v", s.Stats())
		}
		time.Sleep(100 * time.Millisecond)
		st := s.Stats()
		if st.Sent == last.Sent && st.Unacked >= terminal.HighWater {
			steady++
		} else {
			steady = 0
		}
		last = st
	}
	return last
}

// refusals counts the daemon log's refused-WebSocket lines.
func refusals(tb testing.TB, e *termEngine) int {
	tb.Helper()
	b, err := os.ReadFile(e.h.LogFile())
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Count(string(b), "terminal: refused a WebSocket: bad token")
}

// testBrowser is TestTerminal's browser subtest: the page in chromium
// against a real session (assets/web/test/terminal.e2e.mjs). With
// BERTH_SCREENSHOTS=DIR (relative: to the repository's root) the light
// and dark screenshots are copied there (make screenshots: docs/).
func testBrowser(t *testing.T, e *termEngine) {
	node, chromium := pageTools(t)
	tm, err := e.cl.OpenTerminal(context.Background(), "term", types.TerminalRequest{})
	if err != nil {
		t.Fatal(err)
	}
	refused := refusals(t, e)
	out := t.ArtifactDir()
	var paused *terminal.Stats
	var s *terminal.Session
	sum := runPage(t, node, chromium, pageRun{url: tm.URL, out: out, phase: func(name string) {
		if name != "paused" {
			t.Errorf("unexpected phase %q", name)
			return
		}
		// The page's JavaScript is paused mid-flood: the engine must
		// stop at the high-water mark, not buffer the rest of seq.
		var ok bool
		if s, ok = e.d.Terminals().Session(tm.ID); !ok {
			t.Errorf("session %s is not listed while its page is open", tm.ID)
			return
		}
		st := waitOutputPaused(t, s)
		paused = &st
	}})
	t.Logf("summary: title %q, renderer %s, timings %v, key echo median %.1f ms (p90 %.1f), sizes %v, flood %+v", sum.Title, sum.Renderer, sum.Timings, sum.KeyEchoMs.Median, sum.KeyEchoMs.P90, sum.Sizes, sum.Flood)
	if paused == nil {
		t.Fatal("the script never paused the page during the flood")
	}
	t.Logf("page paused: %+v", *paused)
	bound := int64(terminal.HighWater + terminal.BatchBytes)
	if paused.PeakUnacked > bound {
		t.Errorf("paused page: peak unacked %d, more than high water + a batch (%d)", paused.PeakUnacked, bound)
	}
	if st := s.Stats(); st.PeakUnacked > bound || st.Acked < paused.Sent {
		t.Errorf("after the flood: %+v; want peak unacked ≤ %d and all sent while paused acknowledged", st, bound)
	}
	if sum.Title != "term — running" {
		t.Errorf("window title %q, want %q", sum.Title, "term — running")
	}
	if sum.KeyEchoMs.N != 100 {
		t.Errorf("key echo measured over %d keys, want 100", sum.KeyEchoMs.N)
	}
	if !strings.Contains(sum.Banner, "3") {
		t.Errorf("ended banner %q", sum.Banner)
	}
	if sum.BadToken == nil || sum.BadToken.Status != 403 || !strings.Contains(sum.BadToken.Banner, "already used or has expired") {
		t.Errorf("wrong token in the browser: %+v, want 403 and the used-or-expired banner", sum.BadToken)
	}
	if n := refusals(t, e) - refused; n != 1 {
		t.Errorf("the daemon logged %d bad-token refusals during the browser run, want 1 (the wrong token's)", n)
	}
	for _, k := range []string{"light", "dark", "ended"} {
		if fi, err := os.Stat(sum.Screenshots[k]); err != nil || fi.Size() < 4096 {
			t.Errorf("screenshot %s: %v", k, err)
		}
	}
	if dst := os.Getenv("BERTH_SCREENSHOTS"); dst != "" {
		if !filepath.IsAbs(dst) {
			dst = filepath.Join("..", dst)
		}
		for _, k := range []string{"light", "dark"} {
			b, err := os.ReadFile(sum.Screenshots[k])
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dst, fmt.Sprintf("terminal-%s.png", k))
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatalf("save screenshot: %v", err)
			}
			t.Logf("wrote %s", p)
		}
	}
}

// BenchmarkTerminal measures the terminal window against one container
// in one QEMU micro-VM, shared by its sub-benchmarks (docs/BENCHMARKS.md,
// "Terminal window"):
//
//   - page: the page in chromium (the browser script's bench mode): the
//     keystroke-to-echo round trip (ns/key, the median of 100 keys, the
//     median over ops) and the throughput of `cat` of a text file to the
//     visible terminal (page-MB/s);
//   - websocket: the same keystroke round trip through a Go WebSocket
//     client, no browser (ns/key);
//   - exec-t: the same `cat` through `berth exec -t` whose output goes to
//     a real pty (script(1)'s, drained to /dev/null): pty-MB/s, the whole
//     command's wall time, exec start included.
//
// BERTH_BENCH_CAT_MB sets the file's size (default 50, MB of base64
// text, made in the guest from /dev/urandom).
func BenchmarkTerminal(b *testing.B) {
	node, chromium := pageTools(b)
	scriptBin := testenv.RequireCommand(b, "script", "bsdutils")
	e := startTermEngine(b)
	size := int64(50)
	if v := os.Getenv("BERTH_BENCH_CAT_MB"); v != "" {
		if _, err := fmt.Sscan(v, &size); err != nil || size <= 0 {
			b.Fatalf("BERTH_BENCH_CAT_MB=%q: want a positive number of MB", v)
		}
	}
	size *= 1e6
	// base64 writes 77 bytes (76 and a newline) per 57 it reads.
	r := mustOK(b, "make the file", berth(b, e.dir, "exec", "term", "sh", "-c",
		fmt.Sprintf("head -c %d /dev/urandom | base64 > /tmp/f && wc -c < /tmp/f", size*57/77)))
	var fileBytes int64
	if _, err := fmt.Sscan(r.out, &fileBytes); err != nil {
		b.Fatalf("wc -c: %q: %v", r.out, err)
	}
	b.Logf("/tmp/f: %d bytes of base64 text", fileBytes)
	open := func(b *testing.B) types.Terminal {
		tm, err := e.cl.OpenTerminal(context.Background(), "term", types.TerminalRequest{})
		if err != nil {
			b.Fatal(err)
		}
		return tm
	}

	b.Run("page", func(b *testing.B) {
		var keys, mbps []float64
		for range b.N {
			s := runPage(b, node, chromium, pageRun{url: open(b).URL, out: b.TempDir(),
				env: []string{"BERTH_E2E_MODE=bench", "BERTH_E2E_CAT=/tmp/f"}})
			if s.Cat == nil || s.Cat.Bytes < fileBytes {
				b.Fatalf("the page received %+v of cat's %d bytes", s.Cat, fileBytes)
			}
			b.Logf("page: key echo median %.2f ms (p90 %.1f), cat %d bytes in %d ms = %.2f MB/s", s.KeyEchoMs.Median, s.KeyEchoMs.P90, s.Cat.Bytes, s.Cat.Ms, s.Cat.MBps)
			keys = append(keys, s.KeyEchoMs.Median*1e6)
			mbps = append(mbps, s.Cat.MBps)
		}
		b.ReportMetric(median(keys), "ns/key")
		b.ReportMetric(median(mbps), "page-MB/s")
	})

	b.Run("websocket", func(b *testing.B) {
		tm := open(b)
		_, tok, _ := strings.Cut(tm.URL, "#token=")
		base := e.d.WebUI().URL()
		p := dialPage(b, base, tok, base)
		p.control()
		p.resize(24, 80)
		p.expect("# ")
		time.Sleep(300 * time.Millisecond) // the shell reads its cursor query's (unanswered) reply
		var keys []float64
		for range b.N {
			ms := make([]float64, 0, 100)
			for range 100 {
				start := time.Now()
				p.send("x")
				for {
					if typ, _ := p.read(); typ == websocket.MessageBinary {
						break
					}
				}
				ms = append(ms, float64(time.Since(start)))
			}
			p.send("\x15") // ^U
			keys = append(keys, median(ms))
			time.Sleep(100 * time.Millisecond)
		}
		b.ReportMetric(median(keys), "ns/key")
		p.close()
	})

	b.Run("exec-t", func(b *testing.B) {
		var mbps []float64
		for range b.N {
			cmd := exec.Command(scriptBin, "-qfec", berthBin+" exec -t term cat /tmp/f", "/dev/null")
			cmd.Env = append(os.Environ(), "BERTH_HOME="+e.dir)
			cw := &countWriter{}
			cmd.Stdout = cw
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			if err := cmd.Run(); err != nil {
				b.Fatalf("script -c 'berth exec -t term cat /tmp/f': %v\n%s", err, stderr.String())
			}
			d := time.Since(start)
			// The pty turns each \n into \r\n.
			if cw.n < fileBytes {
				b.Fatalf("the pty passed %d of cat's %d bytes", cw.n, fileBytes)
			}
			v := float64(fileBytes) / 1e6 / d.Seconds()
			b.Logf("exec -t: %d bytes (%d through the pty) in %v = %.2f MB/s", fileBytes, cw.n, d.Round(time.Millisecond), v)
			mbps = append(mbps, v)
		}
		b.ReportMetric(median(mbps), "pty-MB/s")
	})
}

// countWriter counts and drops what is written to it.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// median is the median of v (which it sorts).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
