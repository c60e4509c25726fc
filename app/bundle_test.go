package main

import (
	"bytes"
	"debug/elf"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/berthvm/berth/app/menubar"
	"github.com/berthvm/berth/internal/testenv"
)

// minMacOS is the LSMinimumSystemVersion Berth.app declares. The vz APIs
// Berth calls need macOS 12 (vzMinimumMacOS computes it from vz's own
// availability checks); 13 is chosen because Go 1.26, which go.mod
// names, is the last Go release that runs on macOS 12, and macOS 12 has
// had no security updates since July 2024. APIs newer than 13 (vz's
// SaveMachineStateToPath, macOS 14, Apple silicon only) must be used
// behind a runtime check that falls back when vz reports
// ErrUnsupportedOSVersion, not by raising this.
const minMacOS = "13.0"

// makeAppLayout runs `make app-layout` into dir/Berth.app with the extra
// make variables and returns the bundle's path.
func makeAppLayout(t *testing.T, dir string, vars ...string) string {
	t.Helper()
	mk := testenv.RequireCommand(t, "make", "make")
	app := filepath.Join(dir, "Berth.app")
	args := append([]string{"-C", "..", "--no-print-directory", "app-layout", "APP_DIR=" + app}, vars...)
	cmd := exec.Command(mk, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return app
}

// TestAppLayout builds Berth.app's layout (everything but the main
// binary) and checks it against what macOS requires of an app bundle.
func TestAppLayout(t *testing.T) {
	app := makeAppLayout(t, t.TempDir(), "VERSION=v1.2.3-4-gabcdef0-dirty")
	contents := filepath.Join(app, "Contents")
	p := readPlist(t, filepath.Join(contents, "Info.plist"))

	// The executable Info.plist names is the one `make app` puts in
	// Contents/MacOS (the layout leaves that directory for it).
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if exe := p["CFBundleExecutable"]; exe == "" || !bytes.Contains(mk, []byte("-output '$(APP_DIR)/Contents/MacOS/"+exe+"'")) {
		t.Errorf("CFBundleExecutable %q is not the binary the Makefile's app target writes", exe)
	}
	if ents, err := os.ReadDir(filepath.Join(contents, "MacOS")); err != nil || len(ents) != 0 {
		t.Errorf("Contents/MacOS = %v, %v; want an empty directory for make app's binary", ents, err)
	}
	if p["CFBundlePackageType"] != "APPL" {
		t.Errorf("CFBundlePackageType = %q, want APPL", p["CFBundlePackageType"])
	}
	if pi, err := os.ReadFile(filepath.Join(contents, "PkgInfo")); err != nil || string(pi) != "APPL????" {
		t.Errorf("PkgInfo = %q, %v; want APPL????", pi, err)
	}
	// A menu-bar app: no Dock icon, no main menu.
	if p["LSUIElement"] != "true" {
		t.Errorf("LSUIElement = %q, want true", p["LSUIElement"])
	}
	if !strings.Contains(p["NSHumanReadableCopyright"], "Berth Authors") {
		t.Errorf("NSHumanReadableCopyright = %q", p["NSHumanReadableCopyright"])
	}
	// Reverse DNS, and only the characters Apple allows (A-Z a-z 0-9 - .).
	if id := p["CFBundleIdentifier"]; !regexp.MustCompile(`^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$`).MatchString(id) {
		t.Errorf("CFBundleIdentifier = %q, not a reverse-DNS identifier", id)
	}
	// The version, from VERSION's leading MAJOR.MINOR.PATCH.
	for _, k := range []string{"CFBundleShortVersionString", "CFBundleVersion"} {
		if p[k] != "1.2.3" {
			t.Errorf("%s = %q, want 1.2.3 (from VERSION=v1.2.3-4-g...)", k, p[k])
		}
	}
	if p["LSMinimumSystemVersion"] != minMacOS {
		t.Errorf("LSMinimumSystemVersion = %q, want %s", p["LSMinimumSystemVersion"], minMacOS)
	}
	// The icon Info.plist names exists and is an .icns file.
	icon := p["CFBundleIconFile"]
	if icon == "" {
		t.Error("no CFBundleIconFile")
	} else {
		if filepath.Ext(icon) == "" {
			icon += ".icns"
		}
		b, err := os.ReadFile(filepath.Join(contents, "Resources", icon))
		if err != nil || len(b) < 8 || string(b[:4]) != "icns" {
			t.Errorf("icon %s: %v (%d bytes)", icon, err, len(b))
		}
	}
	// The status item's template icons, by the names the glue asks
	// NSImage for, at @1x and @2x.
	for _, name := range []menubar.Icon{menubar.IconRunning, menubar.IconStarting, menubar.IconError} {
		for _, f := range []string{string(name) + ".png", string(name) + "@2x.png"} {
			b, err := os.ReadFile(filepath.Join(contents, "Resources", f))
			if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
				t.Errorf("menu bar icon %s: %v (%d bytes)", f, err, len(b))
			}
		}
	}
	// guestinit for this machine's architecture only, where the engine
	// looks for it (engine/launcher.FindGuestinit).
	checkGuestinit(t, contents, runtime.GOARCH)
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	if _, err := os.Stat(filepath.Join(contents, "Resources", "guestinit-linux-"+other)); err == nil {
		t.Errorf("guestinit-linux-%s in a non-UNIVERSAL bundle", other)
	}
}

// TestAppLayoutUniversal: UNIVERSAL=1 carries guestinit for both Mac
// architectures; an untagged VERSION gives the bundle version 0.1.0.
func TestAppLayoutUniversal(t *testing.T) {
	app := makeAppLayout(t, t.TempDir(), "UNIVERSAL=1", "VERSION=1234abc-dirty")
	contents := filepath.Join(app, "Contents")
	checkGuestinit(t, contents, "arm64")
	checkGuestinit(t, contents, "amd64")
	p := readPlist(t, filepath.Join(contents, "Info.plist"))
	if p["CFBundleShortVersionString"] != "0.1.0" || p["CFBundleVersion"] != "0.1.0" {
		t.Errorf("untagged VERSION: bundle versions %q, %q; want 0.1.0", p["CFBundleShortVersionString"], p["CFBundleVersion"])
	}
}

// TestAppLayoutRefusesNonApp: app-layout replaces APP_DIR, so it refuses
// a directory that is not a .app.
func TestAppLayoutRefusesNonApp(t *testing.T) {
	mk := testenv.RequireCommand(t, "make", "make")
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep")
	if err := os.WriteFile(keep, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(mk, "-C", "..", "app-layout", "APP_DIR="+dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "must name a .app directory") {
		t.Errorf("make app-layout APP_DIR=%s: %v\n%s", dir, err, out)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("app-layout touched %s: %v", dir, err)
	}
}

func checkGuestinit(t *testing.T, contents, arch string) {
	t.Helper()
	p := filepath.Join(contents, "Resources", "guestinit-linux-"+arch)
	f, err := elf.Open(p)
	if err != nil {
		t.Errorf("guestinit for %s: %v", arch, err)
		return
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want || f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		t.Errorf("%s is %v/%v, want a Linux %v binary", p, f.Machine, f.OSABI, want)
	}
}

// TestMinimumMacOSCoversVZ: LSMinimumSystemVersion is at least what every
// vz function and method engine/vmm/vz calls needs, read from vz's own
// availability checks (macOSAvailable(N) at the top of each).
func TestMinimumMacOSCoversVZ(t *testing.T) {
	need, why := vzMinimumMacOS(t)
	t.Logf("vz calls in engine/vmm/vz need macOS %g (%s)", need, why)
	if need < 12 {
		t.Errorf("computed need %g is below vz's virtio-fs and cached disk APIs (12): the scan is broken", need)
	}
	p := readPlist(t, "../Info.plist")
	have, err := strconv.ParseFloat(p["LSMinimumSystemVersion"], 64)
	if err != nil {
		t.Fatalf("LSMinimumSystemVersion %q: %v", p["LSMinimumSystemVersion"], err)
	}
	if have < need {
		t.Errorf("LSMinimumSystemVersion %g is below macOS %g, which %s needs", have, need, why)
	}
}

// vzMinimumMacOS parses engine/vmm/vz's darwin files for the vz package
// functions (vz.Name) and the methods (x.Name, any name vz declares a
// method under) they use, and returns the highest macOSAvailable version
// among those declarations in the vz module go.mod requires.
func vzMinimumMacOS(t *testing.T) (float64, string) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/Code-Hex/vz/v3").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/Code-Hex/vz/v3: %v (run go mod download)", err)
	}
	vzDir := strings.TrimSpace(string(out))
	fset := token.NewFileSet()
	funcs, names := map[string]bool{}, map[string]bool{}
	ours, _ := filepath.Glob("../engine/vmm/vz/*_darwin.go")
	if len(ours) == 0 {
		t.Fatal("no engine/vmm/vz/*_darwin.go")
	}
	for _, f := range ours {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "vz" {
					funcs[sel.Sel.Name] = true
				} else {
					names[sel.Sel.Name] = true
				}
			}
			return true
		})
	}
	theirs, _ := filepath.Glob(filepath.Join(vzDir, "*.go"))
	need, why := 0.0, ""
	for _, f := range theirs {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil || !fd.Name.IsExported() {
				continue
			}
			if fd.Recv == nil && !funcs[fd.Name.Name] || fd.Recv != nil && !names[fd.Name.Name] {
				continue
			}
			if v := availability(fd.Body); v > need {
				need, why = v, fd.Name.Name
				if fd.Recv != nil {
					why = "method " + why
				}
			}
		}
	}
	return need, why
}

// availability is the version in a body's first macOSAvailable(N) call,
// or 0.
func availability(body *ast.BlockStmt) float64 {
	v := 0.0
	ast.Inspect(body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || v != 0 {
			return v == 0
		}
		if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "macOSAvailable" && len(call.Args) == 1 {
			if lit, ok := call.Args[0].(*ast.BasicLit); ok {
				v, _ = strconv.ParseFloat(lit.Value, 64)
			}
		}
		return true
	})
	return v
}
