//go:build !race

package main

// shareSmallFiles is how many small files TestRunTimeShares makes
// (2,000 took about 5 minutes on the CI machine under TCG).
const shareSmallFiles = 2000
