// Package errdefs defines the handful of error classes every layer of the
// engine wraps its errors in, so that one place (the API server) can map
// them to HTTP status codes and the CLI to exit codes, the way containerd's
// errdefs does.
//
// A class is attached with one of the constructors and tested with
// errors.Is against the sentinel:
//
//	return errdefs.NotFound(fmt.Errorf("no such image: %s", ref))
//	...
//	if errors.Is(err, errdefs.ErrNotFound) { ... }
//
// The message of the wrapped error is left exactly as it was.
package errdefs

import (
	"context"
	"errors"
)

// HTTP status codes, spelled out so that the guest, which links this
// package, does not link net/http (about 1.4 MiB).
const (
	statusOK                  = 200
	statusBadRequest          = 400
	statusUnauthorized        = 401
	statusForbidden           = 403
	statusNotFound            = 404
	statusRequestTimeout      = 408
	statusConflict            = 409
	statusInternalServerError = 500
	statusNotImplemented      = 501
	statusServiceUnavailable  = 503
)

// The error classes. Test with errors.Is.
var (
	// ErrNotFound: the named thing (image, container, blob, process) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a name or ID is taken.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalidArgument: the request is malformed (bad reference, bad flag value).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrConflict: the thing exists but is in a state that forbids the
	// operation (image in use, container not running).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: a dependency is down or unreachable (registry, VM, daemon).
	ErrUnavailable = errors.New("unavailable")
	// ErrUnauthorized: credentials are missing or were refused.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrPermissionDenied: the caller is known but may not do this (a
	// command the container may not execute, EACCES/EPERM).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrNotImplemented: the operation exists in the API but not (yet) in Berth
	// or not on this platform.
	ErrNotImplemented = errors.New("not implemented")
)

type classed struct {
	err   error
	class error
}

func (c *classed) Error() string   { return c.err.Error() }
func (c *classed) Unwrap() []error { return []error{c.err, c.class} }

func wrap(err, class error) error {
	if err == nil {
		return nil
	}
	return &classed{err: err, class: class}
}

// NotFound marks err as ErrNotFound.
func NotFound(err error) error { return wrap(err, ErrNotFound) }

// AlreadyExists marks err as ErrAlreadyExists.
func AlreadyExists(err error) error { return wrap(err, ErrAlreadyExists) }

// InvalidArgument marks err as ErrInvalidArgument.
func InvalidArgument(err error) error { return wrap(err, ErrInvalidArgument) }

// Conflict marks err as ErrConflict.
func Conflict(err error) error { return wrap(err, ErrConflict) }

// Unavailable marks err as ErrUnavailable.
func Unavailable(err error) error { return wrap(err, ErrUnavailable) }

// Unauthorized marks err as ErrUnauthorized.
func Unauthorized(err error) error { return wrap(err, ErrUnauthorized) }

// PermissionDenied marks err as ErrPermissionDenied.
func PermissionDenied(err error) error { return wrap(err, ErrPermissionDenied) }

// Classes returns every error class of this package, for code that maps
// them (HTTP, gRPC) and for tests that prove a mapping covers them all.
func Classes() []error {
	return []error{
		ErrNotFound, ErrAlreadyExists, ErrInvalidArgument, ErrConflict,
		ErrUnavailable, ErrUnauthorized, ErrPermissionDenied, ErrNotImplemented,
	}
}

// NotImplemented marks err as ErrNotImplemented.
func NotImplemented(err error) error { return wrap(err, ErrNotImplemented) }

// HTTPStatus maps an error to the status code the Docker Engine API uses for
// its class; unclassified errors are 500. An error of several classes gets
// the first in this order: not found, already exists or conflict, invalid
// argument, unauthorized, permission denied (403, Docker's "forbidden"),
// unavailable, not implemented. (Docker answers a command the container
// may not execute with 400: wrap the permission-denied error in
// InvalidArgument for that.)
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return statusOK
	case errors.Is(err, ErrNotFound):
		return statusNotFound
	case errors.Is(err, ErrAlreadyExists), errors.Is(err, ErrConflict):
		return statusConflict
	case errors.Is(err, ErrInvalidArgument):
		return statusBadRequest
	case errors.Is(err, ErrUnauthorized):
		return statusUnauthorized
	case errors.Is(err, ErrPermissionDenied):
		return statusForbidden
	case errors.Is(err, ErrUnavailable):
		return statusServiceUnavailable
	case errors.Is(err, ErrNotImplemented):
		return statusNotImplemented
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return statusRequestTimeout
	default:
		return statusInternalServerError
	}
}

// FromHTTPStatus returns the class for a status code, for clients that turn
// API errors back into classed errors; nil for codes with no class.
func FromHTTPStatus(code int) error {
	switch code {
	case statusNotFound:
		return ErrNotFound
	case statusConflict:
		return ErrConflict
	case statusBadRequest:
		return ErrInvalidArgument
	case statusUnauthorized:
		return ErrUnauthorized
	case statusForbidden:
		return ErrPermissionDenied
	case statusServiceUnavailable:
		return ErrUnavailable
	case statusNotImplemented:
		return ErrNotImplemented
	}
	return nil
}

// WithClass marks err with class, a sentinel from this package (for
// clients that rebuild a classed error from FromHTTPStatus).
func WithClass(err, class error) error {
	if class == nil {
		return err
	}
	return wrap(err, class)
}
