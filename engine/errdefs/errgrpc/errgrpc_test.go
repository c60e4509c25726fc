package errgrpc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berthvm/berth/engine/errdefs"
)

// TestRoundTrip: every errdefs class (and cancellation) survives
// ToGRPC then ToNative, with its message, and no other class appears.
func TestRoundTrip(t *testing.T) {
	classes := append(errdefs.Classes(), context.Canceled, context.DeadlineExceeded)
	codesSeen := map[codes.Code]error{}
	for _, class := range classes {
		orig := fmt.Errorf("start main: %w", errdefs.WithClass(errors.New(`exec: "x": boom`), class))
		if class == context.Canceled || class == context.DeadlineExceeded {
			orig = fmt.Errorf("start main: %w", class)
		}
		wire := ToGRPC(orig)
		st, ok := status.FromError(wire)
		if !ok {
			t.Fatalf("%v: ToGRPC gave %T, not a status", class, wire)
		}
		if st.Code() == codes.Unknown || st.Code() == codes.OK {
			t.Errorf("%v: no code of its own (%v)", class, st.Code())
		}
		if prev, dup := codesSeen[st.Code()]; dup {
			t.Errorf("%v and %v share code %v", class, prev, st.Code())
		}
		codesSeen[st.Code()] = class
		back := ToNative(wire)
		if back.Error() != orig.Error() {
			t.Errorf("%v: message %q, want %q", class, back, orig)
		}
		for _, other := range classes {
			if got := errors.Is(back, other); got != (other == class) {
				t.Errorf("%v: errors.Is(back, %v) = %v", class, other, got)
			}
		}
		if Code(orig) != st.Code() || !errors.Is(WithCode(Code(orig), errors.New("x")), class) {
			t.Errorf("%v: Code/WithCode do not round-trip", class)
		}
	}
}

func TestUnclassifiedAndPassThrough(t *testing.T) {
	if ToGRPC(nil) != nil || ToNative(nil) != nil || Code(nil) != codes.OK {
		t.Error("nil must stay nil")
	}
	plain := errors.New("disk on fire")
	back := ToNative(ToGRPC(plain))
	if back.Error() != plain.Error() {
		t.Errorf("message %q", back)
	}
	for _, class := range errdefs.Classes() {
		if errors.Is(back, class) {
			t.Errorf("unclassified error came back as %v", class)
		}
	}
	st := status.Error(codes.Internal, "panic in handler")
	if ToGRPC(st) != st {
		t.Error("a status error must pass through ToGRPC unchanged")
	}
	if ToNative(plain) != plain {
		t.Error("a non-status error must pass through ToNative unchanged")
	}
}
