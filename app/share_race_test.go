//go:build race

package main

// shareSmallFiles is how many small files TestRunTimeShares makes under
// the race detector (make test), where the engine's 9P server runs
// several times slower: 1,000 took 44 s on the 2-core development machine
// under TCG at load ~2 but 3 min 23 s at load ~5, so CI makes 500
// (docs/sharing.md, "Cost, measured"); the 10,000 would take
// 7–30 minutes.
const shareSmallFiles = 500
