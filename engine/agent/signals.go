package agent

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/berthvm/berth/engine/errdefs"
)

// linuxSignals are the guest's signal numbers (the host may be macOS,
// whose numbers differ).
var linuxSignals = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
	"FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
	"TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20,
	"TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26,
	"PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}

// SignalNumber parses a signal as Docker accepts it ("TERM", "SIGTERM",
// "15", "RTMIN+3") into its Linux number.
func SignalNumber(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n <= 64 {
		return n, nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if n, ok := linuxSignals[name]; ok {
		return n, nil
	}
	if rest, ok := strings.CutPrefix(name, "RTMIN+"); ok {
		if k, err := strconv.Atoi(rest); err == nil && k >= 0 && 34+k <= 64 {
			return 34 + k, nil
		}
	}
	if name == "RTMIN" {
		return 34, nil
	}
	if name == "RTMAX" {
		return 64, nil
	}
	return 0, errdefs.InvalidArgument(fmt.Errorf("invalid signal: %s", s))
}
