//go:build race

package main

// shareSmallFiles is how many small files TestRunTimeShares makes under
// the race detector (make test, so CI). The race detector does not slow
// the files themselves (the test drives a berth binary built without
// it; the guest's round trips set the time), but make test runs every
// package this way on 2 cores: 500 took 74 s at load ~12 on the
// development machine under TCG. The 10,000 would take 12–25
// minutes there; they run against the 9P server itself instead
// (engine/share/ninep's TestBoundedLoad; docs/BENCHMARKS.md, "Where a
// small file's time goes").
const shareSmallFiles = 500
