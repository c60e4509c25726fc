package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// listedPackage is the part of `go list -json` output darwincheck reads.
type listedPackage struct {
	ImportPath string
	Dir        string
	Name       string
	GoFiles    []string
	CgoFiles   []string
	ImportMap  map[string]string
	Standard   bool
	DepOnly    bool
	Module     *struct{ GoVersion string }
	Error      *struct{ Err string }
}

// Result is the outcome of one Check.
type Result struct {
	// Errors are the type errors found in the named packages (and load
	// errors of any package), as "file:line:col: message".
	Errors []string
	// Checked counts the named packages checked with function bodies.
	Checked int
	// Deps counts the dependencies checked without bodies.
	Deps int
}

// Check type-checks the packages matching patterns, resolved in dir, for
// goos/goarch with cgo enabled and `import "C"` faked.
func Check(dir, goos, goarch string, patterns []string) (*Result, error) {
	pkgs, err := list(dir, goos, goarch, patterns)
	if err != nil {
		return nil, err
	}
	sizes := types.SizesFor("gc", goarch)
	if sizes == nil {
		return nil, fmt.Errorf("unknown GOARCH %q", goarch)
	}
	fset := token.NewFileSet()
	checked := make(map[string]*types.Package, len(pkgs))
	res := &Result{}
	for _, p := range pkgs {
		if p.ImportPath == "unsafe" {
			checked["unsafe"] = types.Unsafe
			continue
		}
		if p.Error != nil && !p.DepOnly {
			res.Errors = append(res.Errors, fmt.Sprintf("%s: %s", p.ImportPath, strings.TrimSpace(p.Error.Err)))
			continue
		}
		files, perr := parseFiles(fset, p)
		if perr != nil {
			res.Errors = append(res.Errors, perr.Error())
			continue
		}
		var errs []string
		conf := types.Config{
			Importer:         mapImporter{pkg: p, checked: checked},
			FakeImportC:      true,
			IgnoreFuncBodies: p.DepOnly,
			Sizes:            sizes,
			Error: func(err error) {
				var te types.Error
				if errors.As(err, &te) && te.Soft && p.DepOnly {
					return
				}
				errs = append(errs, err.Error())
			},
		}
		if p.Module != nil && p.Module.GoVersion != "" {
			conf.GoVersion = "go" + p.Module.GoVersion
		}
		tp, _ := conf.Check(p.ImportPath, fset, files, nil)
		checked[p.ImportPath] = tp
		if p.DepOnly {
			// A dependency's own errors under faked cgo are not ours to fix;
			// what matters is that its exported API is known.
			res.Deps++
			continue
		}
		res.Checked++
		res.Errors = append(res.Errors, errs...)
	}
	sort.Strings(res.Errors)
	return res, nil
}

// list runs `go list -deps -json` for the target platform; the packages come
// back in dependency order.
func list(dir, goos, goarch string, patterns []string) ([]*listedPackage, error) {
	args := append([]string{"list", "-e", "-deps", "-json=ImportPath,Dir,Name,GoFiles,CgoFiles,ImportMap,Standard,DepOnly,Module,Error", "--"}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=1", "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %v: %s", strings.Join(patterns, " "), err, strings.TrimSpace(stderr.String()))
	}
	var pkgs []*listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(listedPackage)
		if err := dec.Decode(p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list: decode: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

func parseFiles(fset *token.FileSet, p *listedPackage) ([]*ast.File, error) {
	names := append(append([]string{}, p.GoFiles...), p.CgoFiles...)
	files := make([]*ast.File, 0, len(names))
	const mode = parser.SkipObjectResolution
	for _, n := range names {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, n), nil, mode)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", p.ImportPath, err)
		}
		files = append(files, f)
	}
	return files, nil
}

// mapImporter resolves one package's imports to packages already checked,
// through its ImportMap (vendored standard-library paths).
type mapImporter struct {
	pkg     *listedPackage
	checked map[string]*types.Package
}

func (m mapImporter) Import(path string) (*types.Package, error) {
	if mapped, ok := m.pkg.ImportMap[path]; ok {
		path = mapped
	}
	if tp, ok := m.checked[path]; ok && tp != nil {
		return tp, nil
	}
	return nil, fmt.Errorf("package %s (imported by %s) was not checked", path, m.pkg.ImportPath)
}
