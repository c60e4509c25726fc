package container

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// LogEntry is one line of a container's log, in Docker's json-file format
// ({"log":"...","stream":"stdout","time":"..."}), so tools that read
// Docker's logs read ours.
type LogEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// Default cap of a container's log: when the file passes maxLogSize it is
// rotated to container.log.1 (one generation kept).
const defaultMaxLogSize = 10 << 20

// logFile appends a container's output to its json-file log, rotating it
// at a size cap, and wakes followers when it grows.
type logFile struct {
	path    string
	maxSize int64

	mu     sync.Mutex
	f      *os.File
	size   int64
	notify chan struct{} // closed and replaced on every write
	closed bool
}

func openLogFile(path string, maxSize int64) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	if maxSize <= 0 {
		maxSize = defaultMaxLogSize
	}
	return &logFile{path: path, maxSize: maxSize, f: f, size: fi.Size(), notify: make(chan struct{})}, nil
}

// Write records one chunk of a stream's output. A chunk is split into
// lines; a trailing partial line is written as is (as Docker does).
func (l *logFile) Write(stream string, p []byte) error {
	now := time.Now().UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("log closed")
	}
	var buf []byte
	for len(p) > 0 {
		i := indexNL(p)
		line := p
		if i >= 0 {
			line = p[:i+1]
		}
		b, err := json.Marshal(LogEntry{Log: string(line), Stream: stream, Time: now})
		if err != nil {
			return err
		}
		buf = append(append(buf, b...), '\n')
		p = p[len(line):]
	}
	if l.size+int64(len(buf)) > l.maxSize && l.size > 0 {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(buf)
	l.size += int64(n)
	close(l.notify)
	l.notify = make(chan struct{})
	if err != nil {
		return fmt.Errorf("write log %s: %w", l.path, err)
	}
	return nil
}

func indexNL(p []byte) int {
	for i, c := range p {
		if c == '\n' {
			return i
		}
	}
	return -1
}

func (l *logFile) rotate() error {
	l.f.Close()
	if err := os.Rename(l.path, l.path+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotate log %s: %w", l.path, err)
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("rotate log %s: %w", l.path, err)
	}
	l.f, l.size = f, 0
	return nil
}

// changed returns a channel closed at the next write.
func (l *logFile) changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.notify
}

// Close closes the file and wakes followers for the last time.
func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.notify)
	l.notify = make(chan struct{})
	return l.f.Close()
}

// LogOptions selects what ReadLogs returns.
type LogOptions struct {
	Stdout, Stderr bool
	// Tail keeps only the last Tail lines; negative means all.
	Tail int
	// Since and Until bound the entries' times (zero: unbounded).
	Since, Until time.Time
	// Follow keeps reading as the container writes, until it stops and
	// the log is drained, or ctx is done.
	Follow bool
}

// readLogs sends the entries of the log at path (and its rotated
// generation) that opts select to emit. With follow, running reports
// whether more may come, and changed returns a channel closed at the next
// write.
func readLogs(ctx context.Context, path string, opts LogOptions, running func() bool, changed func() <-chan struct{}, emit func(LogEntry) error) error {
	want := func(e LogEntry) bool {
		if (e.Stream == "stdout" && !opts.Stdout) || (e.Stream == "stderr" && !opts.Stderr) {
			return false
		}
		if !opts.Since.IsZero() && e.Time.Before(opts.Since) {
			return false
		}
		if !opts.Until.IsZero() && e.Time.After(opts.Until) {
			return false
		}
		return true
	}
	var entries []LogEntry
	for _, p := range []string{path + ".1", path} {
		if err := scanLog(p, func(e LogEntry) {
			if want(e) {
				entries = append(entries, e)
			}
		}); err != nil {
			return err
		}
	}
	if opts.Tail >= 0 && len(entries) > opts.Tail {
		entries = entries[len(entries)-opts.Tail:]
	}
	for _, e := range entries {
		if err := emit(e); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	// Follow from the current end of the file.
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("follow log %s: %w", path, err)
	}
	defer f.Close()
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return err
	}
	r := bufio.NewReader(f)
	var partial []byte
	for {
		wake := changed()
		for {
			line, err := r.ReadBytes('\n')
			partial = append(partial, line...)
			if err != nil {
				break
			}
			var e LogEntry
			if json.Unmarshal(partial, &e) == nil && want(e) {
				if err := emit(e); err != nil {
					return err
				}
			}
			partial = partial[:0]
		}
		if !running() {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-time.After(time.Second): // log rotated under us, or missed wake
		}
	}
}

func scanLog(path string, fn func(LogEntry)) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read log %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e LogEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			fn(e)
		}
	}
	return sc.Err()
}
