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
// The message of the wrapped error is left exactly as it was. A layer may
// wrap a classed error in another class to reclassify it; Class returns
// the outermost, which decides the HTTP status (HTTPStatus) and the gRPC
// code on the agent's connection (package errgrpc).
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

// Class returns err's class: one of Classes, context.Canceled or
// context.DeadlineExceeded, or nil for an unclassified error. An error
// that carries several classes has the one attached last, outermost in
// its chain — as with moby's errdefs — so that a layer can reclassify
// what it wraps: InvalidArgument(fmt.Errorf("exec: %w", notFoundErr)) is
// invalid argument (Docker's 400 for a missing command), while
// errors.Is(err, ErrNotFound) still holds for code that looks deeper.
func Class(err error) error {
	for err != nil {
		if isClass(err) {
			return err
		}
		switch e := err.(type) {
		case *classed:
			return e.class
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				if c := Class(inner); c != nil {
					return c
				}
			}
			return nil
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		default:
			return nil
		}
	}
	return nil
}

func isClass(err error) bool {
	switch err {
	case ErrNotFound, ErrAlreadyExists, ErrInvalidArgument, ErrConflict, ErrUnavailable,
		ErrUnauthorized, ErrPermissionDenied, ErrNotImplemented, context.Canceled, context.DeadlineExceeded:
		return true
	}
	return false
}

// HTTPStatus maps an error to the status code the Docker Engine API uses
// for its Class: 404, 409 (already exists, conflict), 400, 401, 403
// (permission denied: Docker's "forbidden"), 503, 501, 408 (cancelled or
// timed out); unclassified errors are 500.
func HTTPStatus(err error) int {
	if err == nil {
		return statusOK
	}
	switch Class(err) {
	case ErrNotFound:
		return statusNotFound
	case ErrAlreadyExists, ErrConflict:
		return statusConflict
	case ErrInvalidArgument:
		return statusBadRequest
	case ErrUnauthorized:
		return statusUnauthorized
	case ErrPermissionDenied:
		return statusForbidden
	case ErrUnavailable:
		return statusServiceUnavailable
	case ErrNotImplemented:
		return statusNotImplemented
	case context.Canceled, context.DeadlineExceeded:
		return statusRequestTimeout
	}
	return statusInternalServerError
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
