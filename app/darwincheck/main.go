// Command darwincheck type-checks Berth's macOS build on a machine that has
// neither macOS nor its SDK.
//
// vz and darwinkit are cgo + Objective-C, so `GOOS=darwin go build` cannot
// run here. darwincheck does what the compiler's front end would: it asks
// `go list -deps -json` (with CGO_ENABLED=1, which needs no C compiler) for
// the file lists of the darwin build, then type-checks every package in
// dependency order with go/types, `import "C"` faked
// (types.Config.FakeImportC). Dependencies are checked without function
// bodies; the named packages (ours) with them. It catches wrong method
// names, wrong argument types and Linux-only calls in untagged files; it
// cannot catch anything that only the C side or the linker would.
//
// Usage:
//
//	go run ./app/darwincheck [-arch arm64,amd64] [packages]
//
// The default packages are ./app/... and ./engine/....
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	arches := flag.String("arch", "arm64,amd64", "comma-separated GOARCH values to check for GOOS=darwin")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: darwincheck [-arch arm64,amd64] [packages]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	patterns := flag.Args()
	if len(patterns) == 0 {
		patterns = []string{"./app/...", "./engine/..."}
	}
	failed := false
	for _, arch := range strings.Split(*arches, ",") {
		res, err := Check(".", "darwin", arch, patterns)
		if err != nil {
			fmt.Fprintf(os.Stderr, "darwincheck: darwin/%s: %v\n", arch, err)
			os.Exit(2)
		}
		for _, e := range res.Errors {
			fmt.Fprintf(os.Stderr, "darwin/%s: %s\n", arch, e)
		}
		if len(res.Errors) > 0 {
			failed = true
			continue
		}
		fmt.Printf("darwin/%s: ok: %d packages checked with bodies, %d dependencies\n", arch, res.Checked, res.Deps)
	}
	if failed {
		os.Exit(1)
	}
}
