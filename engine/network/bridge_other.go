//go:build !linux

package network

import (
	"errors"
	"log/slog"

	"github.com/miekg/dns"
)

// bridgeHost is bridge mode's host side: Linux only.
type bridgeHost struct{}

func newBridgeHost(*slog.Logger, []Info) (*bridgeHost, error) {
	return nil, errors.New("bridge mode: Linux bridges exist on Linux only")
}

func (*bridgeHost) open(Info, dns.Handler) (fabric, error) {
	return nil, errors.New("bridge mode: Linux bridges exist on Linux only")
}

func (*bridgeHost) close() error { return nil }
