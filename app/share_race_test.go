//go:build race

package main

// shareSmallFiles is how many small files TestRunTimeShares makes: under
// the race detector (make test) the engine's 9P server runs several times
// slower, and 2,000 files alone took over 9 minutes on the CI machine
// under TCG, so CI makes 200 (docs/sharing.md, "Cost, measured").
const shareSmallFiles = 200
