//go:build !linux

package engine_test

import "testing"

// benchNetworkBridge: bridge mode is Linux's.
func benchNetworkBridge(b *testing.B) { b.Skip("skipping: bridge mode is Linux's") }
