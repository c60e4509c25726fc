package cli

import (
	"archive/tar"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/berthvm/berth/engine/api/client"
	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/jsonstream"
	docker "github.com/moby/moby/client"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// buildOptions are `berth build`'s flags.
type buildOptions struct {
	tags, buildArgs, labels []string
	file, target, platform  string
	progress                string
	noCache, pull, quiet    bool
}

// newBuildCmd is `berth build`: a Dockerfile build in the image builder's
// VM (BuildKit), through POST /build as `docker build` without buildx
// does; the result is in Berth's image store.
func newBuildCmd(e *env) *cobra.Command {
	var o buildOptions
	c := &cobra.Command{
		Use:   "build [flags] CONTEXT",
		Short: "Build an image from a Dockerfile (BuildKit in the builder's VM); the result is in Berth's image store",
		Long: "Build an image from a Dockerfile and a local context directory. The context is sent without what\n" +
			".dockerignore excludes (the Dockerfile and .dockerignore are always sent); BuildKit builds it in the\n" +
			"image builder's VM (started when needed; see `berth builder`), and the image is loaded into Berth's\n" +
			"store with each --tag.",
		Args: cobra.ExactArgs(1),
		RunE: e.withClient(func(cmd *cobra.Command, args []string, cl *client.Client) error {
			return runBuild(cmd, e, cl, args[0], o)
		}),
	}
	f := c.Flags()
	f.StringArrayVarP(&o.tags, "tag", "t", nil, "name and tag of the image (name:tag); repeatable")
	f.StringVarP(&o.file, "file", "f", "", "the Dockerfile (default CONTEXT/Dockerfile; - reads it from stdin)")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "a build-time variable, KEY=VALUE (KEY alone: its value in this environment); repeatable")
	f.StringArrayVar(&o.labels, "label", nil, "a label for the image, KEY=VALUE; repeatable")
	f.StringVar(&o.target, "target", "", "the stage to build (default the last)")
	f.StringVar(&o.platform, "platform", "", "the platform to build for (os/arch[/variant])")
	f.BoolVar(&o.noCache, "no-cache", false, "build every step afresh")
	f.BoolVar(&o.pull, "pull", false, "resolve base images from their registry even when cached")
	f.StringVar(&o.progress, "progress", "auto", "progress output: auto, plain (BuildKit's log and the context's size), tty (one line a step) or quiet")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only the image ID (as --progress quiet)")
	return c
}

func runBuild(cmd *cobra.Command, e *env, cl *client.Client, dir string, o buildOptions) error {
	progress := o.progress
	if o.quiet {
		progress = "quiet"
	}
	if progress == "auto" {
		progress = "plain"
		if f, ok := e.io.Err.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			progress = "tty"
		}
	}
	switch progress {
	case "plain", "tty", "quiet":
	default:
		return fmt.Errorf("build: invalid --progress %q: want auto, plain, tty or quiet", o.progress)
	}
	opts := docker.ImageBuildOptions{Tags: o.tags, Target: o.target, NoCache: o.noCache, PullParent: o.pull,
		SuppressOutput: progress == "quiet", Remove: true}
	if o.platform != "" {
		p, err := parsePlatform(o.platform)
		if err != nil {
			return err
		}
		opts.Platforms = []ocispec.Platform{p}
	}
	opts.BuildArgs = map[string]*string{}
	for _, a := range o.buildArgs {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			if env, set := os.LookupEnv(k); set {
				v, ok = env, true
			}
		}
		if k == "" {
			return fmt.Errorf("build: invalid --build-arg %q: want KEY=VALUE or KEY", a)
		}
		if ok {
			opts.BuildArgs[k] = &v
		}
	}
	if len(o.labels) > 0 {
		opts.Labels = map[string]string{}
		for _, l := range o.labels {
			k, v, _ := strings.Cut(l, "=")
			if k == "" {
				return fmt.Errorf("build: invalid --label %q: want KEY=VALUE", l)
			}
			opts.Labels[k] = v
		}
	}
	bc, err := newBuildContext(dir, o.file, e.io.In)
	if err != nil {
		return err
	}
	opts.Dockerfile = bc.dockerfile
	pr, pw := io.Pipe()
	var sent atomic.Int64
	go func() { pw.CloseWithError(bc.write(&countingWriter{w: pw, n: &sent})) }()
	res, err := cl.ImageBuild(cmd.Context(), pr, opts)
	pr.CloseWithError(errors.New("the daemon stopped reading the build context"))
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	defer res.Body.Close()
	if progress == "plain" {
		fmt.Fprintf(e.io.Err, "Sent %d bytes (%s) of build context: %d files, %d excluded by .dockerignore\n",
			sent.Load(), units.HumanSizeWithPrecision(float64(sent.Load()), 3), bc.files, bc.excluded)
	}
	show := buildPrinter(e, progress)
	var id string
	err = eachMessage(jsonMessages(res.Body), func(m jsonstream.Message) {
		if m.Aux != nil {
			var aux struct{ ID string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
		show(m.Stream)
	})
	show("") // ends tty's line
	if err != nil {
		return err
	}
	if id == "" {
		return errors.New("build: the daemon named no built image")
	}
	if progress == "quiet" {
		fmt.Fprintln(e.io.Out, id)
	}
	return nil
}

// buildPrinter shows the build's messages for the progress mode: plain
// prints each line on stderr; tty prints one line per step (its title
// and how it ended) and the result; quiet prints nothing.
func buildPrinter(e *env, mode string) func(string) {
	switch mode {
	case "plain":
		return func(s string) { fmt.Fprint(e.io.Err, s) }
	case "tty":
		titles := map[string]string{}
		return func(s string) {
			for line := range strings.SplitSeq(strings.TrimRight(s, "\n"), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) == 0:
				case !strings.HasPrefix(f[0], "#"):
					fmt.Fprintln(e.io.Err, line) // the result, or an error's context
				case len(f) > 1 && (f[1] == "DONE" || f[1] == "CACHED" || f[1] == "ERROR" || f[1] == "ERROR:" || f[1] == "CANCELED"):
					fmt.Fprintf(e.io.Err, "%s %s %s\n", f[0], titles[f[0]], strings.Join(f[1:], " "))
				default:
					if _, seen := titles[f[0]]; !seen { // a step's first line is its title
						titles[f[0]] = strings.Join(f[1:], " ")
					}
				}
			}
		}
	}
	return func(string) {}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// buildContext is a context directory as POST /build receives it: a tar
// of what .dockerignore lets through, with the Dockerfile and
// .dockerignore always in it, as the docker CLI sends it.
type buildContext struct {
	dir string
	// dockerfile is the Dockerfile's path in the tar (slashes).
	dockerfile string
	// extra is a Dockerfile from outside the context (or stdin), sent
	// under the name dockerfile.
	extra []byte
	pm    *patternmatcher.PatternMatcher
	// files and excluded count the regular files sent and left out.
	files, excluded int
}

func newBuildContext(dir, file string, stdin io.Reader) (*buildContext, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("build: context %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("build: context %s is not a directory", dir)
	}
	bc := &buildContext{dir: dir, dockerfile: "Dockerfile"}
	switch {
	case file == "-":
		if bc.extra, err = io.ReadAll(stdin); err != nil {
			return nil, fmt.Errorf("build: read the Dockerfile from stdin: %w", err)
		}
		bc.dockerfile = randomDockerfileName()
	case file != "":
		abs, err := filepath.Abs(file)
		if err != nil {
			return nil, fmt.Errorf("build: Dockerfile %s: %w", file, err)
		}
		absDir, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("build: context %s: %w", dir, err)
		}
		if rel, err := filepath.Rel(absDir, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			bc.dockerfile = filepath.ToSlash(rel)
		} else if bc.extra, err = os.ReadFile(abs); err != nil {
			return nil, fmt.Errorf("build: Dockerfile: %w", err)
		} else {
			bc.dockerfile = randomDockerfileName()
		}
	}
	if bc.extra == nil {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(bc.dockerfile))); err != nil {
			return nil, fmt.Errorf("build: Dockerfile: %w", err)
		}
	}
	var patterns []string
	if f, err := os.Open(filepath.Join(dir, ".dockerignore")); err == nil {
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("build: read %s: %w", filepath.Join(dir, ".dockerignore"), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("build: %w", err)
	}
	if bc.pm, err = patternmatcher.New(patterns); err != nil {
		return nil, fmt.Errorf("build: .dockerignore in %s: %w", dir, err)
	}
	return bc, nil
}

// randomDockerfileName names a Dockerfile from outside the context in
// the tar, as the docker CLI does.
func randomDockerfileName() string {
	var b [8]byte
	rand.Read(b[:])
	return ".dockerfile." + hex.EncodeToString(b[:])
}

// write writes the context's tar to w.
func (bc *buildContext) write(w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(bc.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("build: read the context: %w", err)
		}
		rel, err := filepath.Rel(bc.dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		always := rel == bc.dockerfile || rel == ".dockerignore"
		if !always {
			skip, err := bc.pm.MatchesOrParentMatches(rel)
			if err != nil {
				return fmt.Errorf("build: .dockerignore: %w", err)
			}
			if skip {
				if d.IsDir() {
					if !bc.pm.Exclusions() {
						bc.excluded += countFiles(p)
						return filepath.SkipDir
					}
					return nil // a later "!" pattern may bring back what is inside
				}
				if d.Type().IsRegular() {
					bc.excluded++
				}
				return nil
			}
		}
		return bc.add(tw, p, rel, d)
	})
	if err != nil {
		return err
	}
	if bc.extra != nil {
		if err := tw.WriteHeader(&tar.Header{Name: bc.dockerfile, Mode: 0o644, Size: int64(len(bc.extra)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(bc.extra); err != nil {
			return err
		}
	}
	return tw.Close()
}

// add writes one file, directory or symlink of the context to tw, owned
// by root as the docker CLI sends them; other kinds of files are left out.
func (bc *buildContext) add(tw *tar.Writer, p, rel string, d fs.DirEntry) error {
	fi, err := d.Info()
	if err != nil {
		return fmt.Errorf("build: read the context: %w", err)
	}
	var link string
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return fmt.Errorf("build: read the context: %w", err)
		}
	} else if !fi.Mode().IsRegular() && !fi.IsDir() {
		return nil
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return fmt.Errorf("build: %s: %w", p, err)
	}
	hdr.Name = rel
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("build: read the context: %w", err)
	}
	defer f.Close()
	if _, err := io.CopyN(tw, f, fi.Size()); err != nil {
		return fmt.Errorf("build: read the context: %s: %w", p, err)
	}
	bc.files++
	return nil
}

// countFiles counts the regular files under dir (an excluded directory,
// for the report).
func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}
