package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthvm/berth/engine/agent"
	"github.com/berthvm/berth/engine/agent/agentpb"
	"github.com/berthvm/berth/engine/api/types"
	"github.com/berthvm/berth/engine/image"
)

// maxKeep is the largest Dockerfile Build reads for LocalBases.
const maxKeep = 1 << 20

// buildsDir holds each build's context and Dockerfile, one directory per
// build, on the cache disk (relative to cacheMount).
const buildsDir = "berth-builds"

// BuildRequest is one Dockerfile build (Manager.Build), as `docker
// build` and `berth build` ask for it through POST /build.
type BuildRequest struct {
	types.BuildOptions
	// Context is the build context as an uncompressed tar stream.
	Context io.Reader
	// Progress receives BuildKit's plain progress, one line at a time
	// (without its newline); nil discards it.
	Progress func(line string)
	// Output receives the built image as a docker archive (the format
	// of `docker save`).
	Output io.Writer
}

// BuildImage is Build with the result loaded into Berth's image store
// (Config.Images) as `docker load` would, streamed: req.Output is
// ignored. It returns the built image.
func (m *Manager) BuildImage(ctx context.Context, req BuildRequest) (*image.Image, error) {
	if m.cfg.Images == nil {
		return nil, errors.New("build: the builder has no image store to load the result into")
	}
	pr, pw := io.Pipe()
	type loaded struct {
		imgs []*image.Image
		err  error
	}
	done := make(chan loaded, 1)
	go func() {
		imgs, err := m.cfg.Images.Import(ctx, pr)
		if err == nil {
			_, _ = io.Copy(io.Discard, pr) // the archive's padding
		}
		pr.CloseWithError(errors.New("the image store stopped reading the build's result"))
		done <- loaded{imgs, err}
	}()
	req.Output = pw
	err := m.Build(ctx, req)
	pw.CloseWithError(err)
	res := <-done
	if err != nil {
		return nil, err
	}
	if res.err != nil {
		return nil, fmt.Errorf("build: load the result into the image store: %w", res.err)
	}
	if len(res.imgs) != 1 {
		return nil, fmt.Errorf("build: the builder's result holds %d images, want 1", len(res.imgs))
	}
	return res.imgs[0], nil
}

// BuildError is a build that ran and failed: BuildKit's own message
// (a Dockerfile error with its line, a RUN step's exit code, a base
// image it could not resolve).
type BuildError struct {
	// Message is BuildKit's error, without buildctl's "error: " prefix.
	Message string
	// ExitCode is buildctl's exit status.
	ExitCode int
}

func (e *BuildError) Error() string { return "build: " + e.Message }

// Build runs one Dockerfile build in the builder VM, starting the VM if
// it is stopped and keeping it from its idle stop meanwhile: the context
// tar is extracted (through the agent, as `docker cp` does) into a
// directory of its own on the cache disk, the guest's buildctl builds it
// with the dockerfile.v0 frontend and writes the image to req.Output as
// a docker archive, and the directory is removed. BuildKit's plain
// progress goes to req.Progress. A build that fails is a *BuildError;
// ctx ending kills buildctl (BuildKit then cancels the build), and the
// builder and its cache stay.
func (m *Manager) Build(ctx context.Context, req BuildRequest) error {
	release := m.hold()
	r, err := m.ensure(ctx, true)
	if err != nil {
		release()
		return err
	}
	var idb [6]byte
	rand.Read(idb[:])
	id := hex.EncodeToString(idb[:])
	dir := path.Join(cacheMount, buildsDir, id)
	defer func() {
		// The directory goes even when the build was cancelled, after
		// Build returned (the client need not wait for it); the builder
		// is held until then.
		go func() {
			defer release()
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := r.removeBuildDir(cctx, id); err != nil {
				m.log.Warn("builder: remove a build's context", "dir", dir, "err", err)
			}
		}()
	}()
	start := time.Now()
	pr, pw := io.Pipe()
	sent := make(chan struct{})
	var dockerfile []byte // the Dockerfile, kept as it passes for LocalBases
	go func() {
		defer close(sent)
		var err error
		dockerfile, err = prefixTar(pw, req.Context, path.Join(buildsDir, id, "context"), dockerfileName(req.Dockerfile))
		pw.CloseWithError(err)
	}()
	err = r.ac.WriteArchive(ctx, cacheMount, pr, agent.ArchiveOptions{})
	pr.CloseWithError(errors.New("the builder stopped reading the context"))
	<-sent // req.Context is not read after Build returns
	if err != nil {
		return fmt.Errorf("build: send the context to the builder: %w", err)
	}
	m.log.Debug("builder: context sent", "dir", dir, "in", time.Since(start))

	args := []string{"/usr/bin/buildctl", "--addr", "unix://" + guestSocket, "build",
		"--frontend", "dockerfile.v0",
		"--local", "context=" + dir + "/context", "--local", "dockerfile=" + dir + "/context",
		"--opt", "filename=" + dockerfileName(req.Dockerfile),
		"--progress", "plain", "--output", "type=docker,dest=-"}
	for _, k := range sortedKeys(req.BuildArgs) {
		args = append(args, "--opt", "build-arg:"+k+"="+req.BuildArgs[k])
	}
	for _, k := range sortedKeys(req.Labels) {
		args = append(args, "--opt", "label:"+k+"="+req.Labels[k])
	}
	if req.Target != "" {
		args = append(args, "--opt", "target="+req.Target)
	}
	if req.Platform != "" {
		args = append(args, "--opt", "platform="+req.Platform)
	}
	if req.Pull {
		args = append(args, "--opt", "image-resolve-mode=pull")
	}
	if !req.Pull {
		// Base images from Berth's store first (prefer-local).
		bases, err := m.LocalBases(ctx, dockerfile, req.BuildArgs, req.Platform)
		if err != nil {
			return err
		}
		args = append(args, bases...)
	}
	if req.NoCache {
		args = append(args, "--no-cache")
	}
	out := req.Output
	if out == nil {
		out = io.Discard
	}
	progress := &lineWriter{fn: req.Progress}
	proc := &agentpb.CreateProcessRequest{Id: "build-" + id, Args: args, Env: []string{"PATH=/usr/bin"}}
	// Cancelling kills buildctl; the run itself waits for it to go.
	kill := context.AfterFunc(ctx, func() {
		kctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.ac.SignalProcess(kctx, proc.Id, int(syscall.SIGKILL)); err != nil {
			m.log.Debug("builder: kill a cancelled build", "id", proc.Id, "err", err)
		}
	})
	st, err := r.ac.Run(context.WithoutCancel(ctx), proc, agent.Stdio{Stdout: out, Stderr: progress})
	kill()
	progress.flush()
	if ctx.Err() != nil {
		return fmt.Errorf("build: cancelled: %w", ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("build: run buildctl in the builder: %w", err)
	}
	if st.Code != 0 {
		msg := progress.errorMessage()
		if msg == "" {
			msg = fmt.Sprintf("buildctl exited with %d", st.Code)
		}
		return &BuildError{Message: msg, ExitCode: st.Code}
	}
	return nil
}

// removeBuildDir removes the build directory id through the agent's
// archive extraction, the only file operation the builder guest has (it
// holds no shell): a regular file entry named id replaces the directory
// tree, leaving an empty file that the next start of the builder clears
// with the rest (clearBuilds).
func (r *running) removeBuildDir(ctx context.Context, id string) error {
	return r.ac.WriteArchive(ctx, path.Join(cacheMount, buildsDir), emptyFileTar(id), agent.ArchiveOptions{})
}

// clearBuilds removes what builds left on the cache disk (a build
// interrupted by the VM's end): buildsDir becomes an empty file, which
// the next build's context replaces with a directory.
func (r *running) clearBuilds(ctx context.Context) error {
	return r.ac.WriteArchive(ctx, cacheMount, emptyFileTar(buildsDir), agent.ArchiveOptions{})
}

// emptyFileTar is a tar holding one empty regular file, name.
func emptyFileTar(name string) io.Reader {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Now()})
	tw.Close()
	return &b
}

// prefixTar copies the tar stream r to w with every entry moved under
// prefix (a relative path), after directory entries for prefix and each
// of its parents, and returns the bytes of the regular file keep (a
// cleaned entry name, at most maxKeep bytes; nil when absent).
func prefixTar(w io.Writer, r io.Reader, prefix, keep string) (kept []byte, err error) {
	tw := tar.NewWriter(w)
	parts := strings.Split(prefix, "/")
	for i := range parts {
		if err := tw.WriteHeader(&tar.Header{Name: strings.Join(parts[:i+1], "/") + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Now()}); err != nil {
			return nil, err
		}
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read the build context (a tar stream): %w", err)
		}
		name := cleanEntry(hdr.Name)
		if name == "" {
			continue // the context's root
		}
		hdr.Name = path.Join(prefix, name)
		if hdr.Typeflag == tar.TypeDir {
			hdr.Name += "/"
		}
		if hdr.Typeflag == tar.TypeLink {
			hdr.Linkname = path.Join(prefix, cleanEntry(hdr.Linkname))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("build context entry %q: %w", hdr.Name, err)
		}
		var src io.Reader = tr
		var buf bytes.Buffer
		if name == keep && hdr.Typeflag == tar.TypeReg && hdr.Size <= maxKeep {
			src = io.TeeReader(tr, &buf)
		}
		if _, err := io.Copy(tw, src); err != nil {
			return nil, fmt.Errorf("build context entry %q: %w", hdr.Name, err)
		}
		if buf.Len() > 0 {
			kept = buf.Bytes()
		}
	}
	// To the stream's end: an HTTP server notices a client that goes
	// away (a cancelled build) only once it has read the whole body.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, fmt.Errorf("read the build context (a tar stream): %w", err)
	}
	return kept, tw.Close()
}

// cleanEntry is a tar entry's name relative to the archive's root ("" for
// the root itself); ".." cannot climb above it.
func cleanEntry(name string) string {
	n := strings.TrimPrefix(path.Clean("/"+name), "/")
	return n
}

// dockerfileName is the Dockerfile's path inside the context, as
// BuildKit's frontend takes it.
func dockerfileName(p string) string {
	if p == "" {
		return "Dockerfile"
	}
	return cleanEntry(p)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// lineWriter splits buildctl's progress into lines for fn and keeps the
// error buildctl prints last ("error: …", possibly over several lines).
type lineWriter struct {
	fn      func(string)
	mu      sync.Mutex
	partial []byte
	errLine []string // from the last line starting "error: " on
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(bytes.TrimRight(l.partial[:i], "\r")))
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

func (l *lineWriter) line(s string) {
	if strings.HasPrefix(s, "error: ") || strings.HasPrefix(s, "ERROR: ") {
		l.errLine = []string{s[len("error: "):]}
	} else if l.errLine != nil && !strings.HasPrefix(s, "#") {
		l.errLine = append(l.errLine, s)
	}
	if l.fn != nil && l.errLine == nil { // the error is the build's result
		l.fn(s)
	}
}

// flush hands on a last line without a newline.
func (l *lineWriter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.line(string(l.partial))
		l.partial = nil
	}
}

// errorMessage is buildctl's final error, or "".
func (l *lineWriter) errorMessage() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(strings.Join(l.errLine, "\n"))
}
