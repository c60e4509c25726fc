package main

import (
	"strings"
	"testing"
)

// TestCheckCatchesMisuse proves the check fails on a fixture that calls vz
// and darwinkit methods that do not exist and passes a wrong argument type,
// for both Mac architectures.
func TestCheckCatchesMisuse(t *testing.T) {
	for _, arch := range []string{"arm64", "amd64"} {
		res, err := Check("../..", "darwin", arch, []string{"./app/darwincheck/testdata/bad"})
		if err != nil {
			t.Fatalf("darwin/%s: %v", arch, err)
		}
		all := strings.Join(res.Errors, "\n")
		for _, want := range []string{
			`cannot use "1GiB"`,
			`cfg.SetBalloonDevices undefined`,
			`bar.AddStatusItemNamed undefined`,
		} {
			if !strings.Contains(all, want) {
				t.Errorf("darwin/%s: errors do not mention %q; got:\n%s", arch, want, all)
			}
		}
		if len(res.Errors) != 3 {
			t.Errorf("darwin/%s: got %d errors, want exactly the 3 planted ones:\n%s", arch, len(res.Errors), all)
		}
	}
}

// TestCheckAcceptsCorrectUse proves the same machinery passes correct
// calls, so the misuse test fails for the planted reasons only.
func TestCheckAcceptsCorrectUse(t *testing.T) {
	res, err := Check("../..", "darwin", "arm64", []string{"./app/darwincheck/testdata/good"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 0 {
		t.Fatalf("errors on correct code:\n%s", strings.Join(res.Errors, "\n"))
	}
	if res.Checked != 1 || res.Deps < 50 {
		t.Fatalf("checked %d packages with %d deps; want 1 with vz and darwinkit's dependencies", res.Checked, res.Deps)
	}
}

// TestCheckCatchesLinuxOnlyCall proves an untagged call to a Linux-only API
// is reported for darwin.
func TestCheckCatchesLinuxOnlyCall(t *testing.T) {
	res, err := Check("../..", "darwin", "arm64", []string{"./app/darwincheck/testdata/linuxonly"})
	if err != nil {
		t.Fatal(err)
	}
	if all := strings.Join(res.Errors, "\n"); !strings.Contains(all, "Pdeathsig") {
		t.Fatalf("want an error about Pdeathsig, got:\n%s", all)
	}
}
