// Package errgrpc carries errdefs classes across the agent's ttrpc
// connection as gRPC status codes, the way containerd's errgrpc does. The
// guest's server turns its errors into statuses with ToGRPC, the host's
// client turns them back with ToNative, and the container init reports a
// class to guestinit as a Code: one table, both directions. It links no
// host-only code (the guest imports it).
package errgrpc

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berthvm/berth/engine/errdefs"
)

// classCodes pairs each errdefs class (and context's two errors) with its
// code.
var classCodes = []struct {
	class error
	code  codes.Code
}{
	{errdefs.ErrNotFound, codes.NotFound},
	{errdefs.ErrAlreadyExists, codes.AlreadyExists},
	{errdefs.ErrConflict, codes.FailedPrecondition},
	{errdefs.ErrInvalidArgument, codes.InvalidArgument},
	{errdefs.ErrUnauthorized, codes.Unauthenticated},
	{errdefs.ErrPermissionDenied, codes.PermissionDenied},
	{errdefs.ErrUnavailable, codes.Unavailable},
	{errdefs.ErrNotImplemented, codes.Unimplemented},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

// Code returns the gRPC code for err's class (errdefs.Class: the
// outermost one): codes.OK for nil, codes.Unknown for an unclassified
// error.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	class := errdefs.Class(err)
	for _, c := range classCodes {
		if c.class == class {
			return c.code
		}
	}
	return codes.Unknown
}

// WithCode marks err with the class code stands for; err is returned as
// it is for a code with no class (Unknown, Internal, ...).
func WithCode(code codes.Code, err error) error {
	for _, c := range classCodes {
		if c.code == code {
			return errdefs.WithClass(err, c.class)
		}
	}
	return err
}

// ToGRPC returns err as a gRPC status error with its class's code and its
// message; a status error passes through unchanged.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(Code(err), err.Error())
}

// ToNative turns a gRPC status error back into an error with the status's
// message and the class of its code; other errors pass through unchanged.
func ToNative(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	return WithCode(st.Code(), errors.New(st.Message()))
}
