package cli

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// pullProgress renders a pull's (or a push's) progress messages: one bar per layer
// (mpb) when out is a terminal, else one plain line per layer state
// change, so logs and pipes stay readable.
type pullProgress struct {
	out io.Writer
	tty bool

	mu     sync.Mutex
	p      *mpb.Progress
	bars   map[string]*mpb.Bar
	state  map[string]string
	totals map[string]int64 // layer sizes, from the download messages
}

func newPullProgress(out io.Writer) *pullProgress {
	pp := &pullProgress{out: out, bars: map[string]*mpb.Bar{}, state: map[string]string{}, totals: map[string]int64{}}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		pp.tty = true
		pp.p = mpb.New(mpb.WithOutput(out), mpb.WithWidth(40))
	}
	return pp
}

// handle takes one progress message.
func (pp *pullProgress) handle(m jsonstream.Message) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if m.ID == "" || pp.isHeader(m) {
		pp.line(m.Status)
		return
	}
	if !pp.tty {
		if pp.state[m.ID] != m.Status {
			pp.state[m.ID] = m.Status
			fmt.Fprintf(pp.out, "%s: %s\n", m.ID, m.Status)
		}
		return
	}
	bar, ok := pp.bars[m.ID]
	if !ok {
		var total int64
		if m.Progress != nil {
			total = m.Progress.Total
		}
		id := m.ID
		bar = pp.p.AddBar(total,
			mpb.PrependDecorators(decor.Name(id+" "), decor.Any(func(decor.Statistics) string {
				pp.mu.Lock()
				defer pp.mu.Unlock()
				return fmt.Sprintf("%-18s", pp.state[id])
			})),
			mpb.AppendDecorators(decor.Counters(decor.SizeB1000(0), "% .1f / % .1f")),
		)
		pp.bars[m.ID] = bar
	}
	pp.state[m.ID] = m.Status
	if d := m.Progress; d != nil {
		if d.Total > 0 {
			pp.totals[m.ID] = d.Total
			bar.SetTotal(d.Total, false)
		}
		if d.Current > 0 {
			bar.SetCurrent(d.Current)
		}
	}
	switch m.Status {
	case "Pull complete", "Already exists", "Pushed", "Layer already exists":
		// Final states only: a bar completed earlier would not redraw
		// its state. The last download message may have been throttled:
		// fill the bar to the layer's size.
		if t := pp.totals[m.ID]; t > 0 {
			bar.SetCurrent(t)
		}
		bar.SetTotal(-1, true)
	}
}

// isHeader tells the per-pull lines that carry an ID ("Pulling from
// library/alpine" with the tag as ID) from layer lines.
func (pp *pullProgress) isHeader(m jsonstream.Message) bool {
	return len(m.Status) > 13 && m.Status[:13] == "Pulling from "
}

func (pp *pullProgress) line(s string) {
	if pp.tty && len(pp.bars) > 0 {
		return // printed after the bars in done
	}
	fmt.Fprintln(pp.out, s)
}

// done completes the bars.
func (pp *pullProgress) done() {
	if pp.p == nil {
		return
	}
	pp.mu.Lock()
	for _, b := range pp.bars {
		if !b.Completed() {
			b.Abort(false)
		}
	}
	pp.mu.Unlock()
	pp.p.Wait()
}
