package kernel

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
)

// ModuleName normalises a module name the way the kernel does: dashes and
// underscores are the same, and the file name's .ko suffix (with any
// compression suffix) is not part of it.
func ModuleName(s string) string {
	s = filepath.Base(s)
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// Modules is a kernel's module dependency graph, read from modules.dep.
type Modules struct {
	// Dir is lib/modules/VERSION.
	Dir string
	// paths maps a module name to its file, relative to Dir.
	paths map[string]string
	// deps maps a module name to the names it depends on.
	deps map[string][]string
	// builtin holds the names of modules built into the kernel.
	builtin map[string]bool
}

// ReadModules reads modules.dep (and modules.builtin, when present) from
// the kernel's modules directory.
func (k *Kernel) ReadModules() (*Modules, error) {
	if k.ModulesDir == "" {
		return nil, errdefs.NotFound(fmt.Errorf("read modules of %s: the kernel has no lib/modules directory", k))
	}
	return ReadModulesDir(k.ModulesDir)
}

// ReadModulesDir reads modules.dep and modules.builtin in dir.
func ReadModulesDir(dir string) (*Modules, error) {
	m := &Modules{Dir: dir, paths: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mod, deps, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name := ModuleName(mod)
		m.paths[name] = mod
		for _, d := range strings.Fields(deps) {
			m.deps[name] = append(m.deps[name], ModuleName(d))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			m.builtin[ModuleName(l)] = true
		}
	}
	return m, nil
}

// Builtin reports whether the named module is built into the kernel.
func (m *Modules) Builtin(name string) bool { return m.builtin[ModuleName(name)] }

// Has reports whether the named module exists as a loadable module.
func (m *Modules) Has(name string) bool { _, ok := m.paths[ModuleName(name)]; return ok }

// LoadOrder returns the files (relative to Dir) of the named modules and
// of everything they depend on, each once, every module after its
// dependencies, otherwise in the order names gives (so a soft dependency
// modules.dep does not record, like crc32c_generic for ext4, is honoured
// by naming it first). Built-in modules are left out. A name that is
// neither built in nor a module is an error.
func (m *Modules) LoadOrder(names ...string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(name, from string) error
	visit = func(name, from string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle through %s", name)
		case 2:
			return nil
		}
		p, ok := m.paths[name]
		if !ok {
			if m.builtin[name] {
				state[name] = 2
				return nil
			}
			if from != "" {
				return errdefs.NotFound(fmt.Errorf("module %s (needed by %s) is not in %s", name, from, m.Dir))
			}
			return errdefs.NotFound(fmt.Errorf("module %s is neither built in nor in %s", name, m.Dir))
		}
		state[name] = 1
		// modules.dep lists dependencies so that loading them from last
		// to first works; walk them in that order.
		deps := m.deps[name]
		for i := len(deps) - 1; i >= 0; i-- {
			if err := visit(deps[i], name); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		if err := visit(ModuleName(n), ""); err != nil {
			return nil, fmt.Errorf("resolve kernel modules: %w", err)
		}
	}
	return order, nil
}

// WriteModulesDep writes DIR/modules.dep for the modules under dir
// (lib/modules/VERSION), from the depends= field of each module's
// .modinfo section: what depmod does, for hosts without depmod (macOS).
// Each line lists a module's dependencies, direct and indirect, in the
// order depmod uses (load from last to first).
func WriteModulesDep(dir string) error {
	deps, paths, err := scanModinfo(dir)
	if err != nil {
		return fmt.Errorf("generate modules.dep in %s: %w", dir, err)
	}
	names := make([]string, 0, len(paths))
	for n := range paths {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	for _, n := range names {
		// Load order of n's dependencies by depth-first walk, reversed.
		var order []string
		seen := map[string]bool{n: true}
		var walk func(string)
		walk = func(x string) {
			for _, d := range deps[x] {
				if seen[d] {
					continue
				}
				seen[d] = true
				walk(d)
				if _, ok := paths[d]; ok {
					order = append(order, d)
				}
			}
		}
		walk(n)
		buf.WriteString(paths[n])
		buf.WriteByte(':')
		for i := len(order) - 1; i >= 0; i-- {
			buf.WriteByte(' ')
			buf.WriteString(paths[order[i]])
		}
		buf.WriteByte('\n')
	}
	if err := writeFileAtomic(filepath.Join(dir, "modules.dep"), buf.Bytes()); err != nil {
		return fmt.Errorf("generate modules.dep in %s: %w", dir, err)
	}
	return nil
}

// scanModinfo finds every .ko under dir and reads its direct
// dependencies.
func scanModinfo(dir string) (deps map[string][]string, paths map[string]string, err error) {
	deps, paths = map[string][]string{}, map[string]string{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".ko") {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := modinfo(p)
		if err != nil {
			return err
		}
		name := ModuleName(p)
		if v := info["name"]; v != "" {
			name = ModuleName(v)
		}
		paths[name] = filepath.ToSlash(rel)
		if v := info["depends"]; v != "" {
			for _, dep := range strings.Split(v, ",") {
				deps[name] = append(deps[name], ModuleName(dep))
			}
		}
		return nil
	})
	return deps, paths, err
}

// modinfo reads the key=value pairs of a module's .modinfo section.
func modinfo(path string) (map[string]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", path, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("read module %s: no .modinfo section", path)
	}
	b, err := io.ReadAll(s.Open())
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", path, err)
	}
	info := map[string]string{}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			if _, dup := info[k]; !dup {
				info[k] = v
			}
		}
	}
	return info, nil
}
