//go:build !race

package main

// shareSmallFiles is how many small files TestRunTimeShares makes
// (2,000 took about 5 minutes on the CI machine under TCG, over the
// agent transport). The 10,000 would need the small-file loop
// ~5× faster to fit CI; a share on a spare port, as this one is, is
// ~1.25× faster on it (docs/BENCHMARKS.md, "Spare port against agent
// transport").
const shareSmallFiles = 2000
