//go:build !race

package main

// shareSmallFiles is how many small files TestRunTimeShares makes
// without the race detector, run by hand: 2,000 took about 5 minutes
// on the CI machine under TCG over the agent transport. The issue's
// 10,000 run against the 9P server itself (engine/share/ninep's
// TestBoundedLoad; docs/BENCHMARKS.md, "Where a small file's time
// goes").
const shareSmallFiles = 2000
