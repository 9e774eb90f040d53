// Package status is Sluice's error model: every failure that crosses a
// process boundary carries a gRPC canonical code and a message, and the same
// failure maps to the same code whichever protocol carried the call.
//
//	err := status.Errorf(codes.NotFound, "order %d not found", id)
//	...
//	if status.Code(err) == codes.NotFound { ... }
package status

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
)

// Status is an immutable code and message pair. The zero value (and a nil
// *Status) is OK.
type Status struct {
	code codes.Code
	msg  string
}

// New returns a Status with the given code and message.
func New(c codes.Code, msg string) *Status { return &Status{code: c, msg: msg} }

// Newf returns a Status with a formatted message.
func Newf(c codes.Code, format string, a ...any) *Status {
	return New(c, fmt.Sprintf(format, a...))
}

// Code returns the status code; OK for a nil Status.
func (s *Status) Code() codes.Code {
	if s == nil {
		return codes.OK
	}
	return s.code
}

// Message returns the status message; empty for a nil Status.
func (s *Status) Message() string {
	if s == nil {
		return ""
	}
	return s.msg
}

// Err returns the Status as an error, or nil when the code is OK.
func (s *Status) Err() error {
	if s.Code() == codes.OK {
		return nil
	}
	return &Error{s: s}
}

// String implements fmt.Stringer.
func (s *Status) String() string {
	return fmt.Sprintf("code = %s desc = %s", s.Code(), s.Message())
}

// Error is an error carrying a Status. It satisfies errors.Is against
// another *Error with the same code and message, and against the Err* code
// sentinels of this package, which match on code alone.
type Error struct {
	s     *Status
	cause error
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("rpc error: code = %s desc = %s", e.s.Code(), e.s.Message())
}

// Status returns the error's Status.
func (e *Error) Status() *Status { return e.s }

// GRPCStatus lets google.golang.org/grpc/status read the code and message,
// so a Sluice error returned through grpc-go keeps its code.
func (e *Error) GRPCStatus() *grpcstatus.Status {
	return grpcstatus.New(e.s.Code(), e.s.Message())
}

// Unwrap returns the local cause, if any (for example context.DeadlineExceeded).
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether target is an *Error with the same code and message, or
// a code sentinel with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		if c, ok := target.(codeSentinel); ok {
			return codes.Code(c) == e.s.Code()
		}
		return false
	}
	return t.s.Code() == e.s.Code() && t.s.Message() == e.s.Message()
}

// codeSentinel matches any *Error with its code under errors.Is.
type codeSentinel codes.Code

func (c codeSentinel) Error() string { return "status: code " + codes.Code(c).String() }

// Code sentinels: errors.Is(err, status.ErrUnavailable) is true for every
// error whose code is Unavailable, whatever its message.
var (
	ErrCanceled           error = codeSentinel(codes.Canceled)
	ErrUnknown            error = codeSentinel(codes.Unknown)
	ErrInvalidArgument    error = codeSentinel(codes.InvalidArgument)
	ErrDeadlineExceeded   error = codeSentinel(codes.DeadlineExceeded)
	ErrNotFound           error = codeSentinel(codes.NotFound)
	ErrAlreadyExists      error = codeSentinel(codes.AlreadyExists)
	ErrPermissionDenied   error = codeSentinel(codes.PermissionDenied)
	ErrResourceExhausted  error = codeSentinel(codes.ResourceExhausted)
	ErrFailedPrecondition error = codeSentinel(codes.FailedPrecondition)
	ErrAborted            error = codeSentinel(codes.Aborted)
	ErrOutOfRange         error = codeSentinel(codes.OutOfRange)
	ErrUnimplemented      error = codeSentinel(codes.Unimplemented)
	ErrInternal           error = codeSentinel(codes.Internal)
	ErrUnavailable        error = codeSentinel(codes.Unavailable)
	ErrDataLoss           error = codeSentinel(codes.DataLoss)
	ErrUnauthenticated    error = codeSentinel(codes.Unauthenticated)
)

// Error returns an error with the code and message, or nil for codes.OK.
func Err(c codes.Code, msg string) error { return New(c, msg).Err() }

// Errorf returns an error with the code and a formatted message, or nil for codes.OK.
func Errorf(c codes.Code, format string, a ...any) error { return Newf(c, format, a...).Err() }

// Wrap returns an error with the code and message whose Unwrap is cause, so
// errors.Is(err, context.DeadlineExceeded) still holds after conversion.
func Wrap(c codes.Code, msg string, cause error) error {
	if c == codes.OK {
		return nil
	}
	return &Error{s: New(c, msg), cause: cause}
}

// FromError returns the Status of err and true when err carries one (an
// *Error, or anything with a GRPCStatus method, anywhere in its chain). A nil
// err is OK. Context errors map to Canceled and DeadlineExceeded; anything
// else is Unknown with err's text, and ok is false.
func FromError(err error) (s *Status, ok bool) {
	if err == nil {
		return nil, true
	}
	var e *Error
	if errors.As(err, &e) {
		return e.s, true
	}
	var g interface{ GRPCStatus() *grpcstatus.Status }
	if errors.As(err, &g) {
		gs := g.GRPCStatus()
		return New(gs.Code(), gs.Message()), true
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return New(codes.DeadlineExceeded, err.Error()), false
	case errors.Is(err, context.Canceled):
		return New(codes.Canceled, err.Error()), false
	}
	return New(codes.Unknown, err.Error()), false
}

// Convert is FromError without the ok result.
func Convert(err error) *Status {
	s, _ := FromError(err)
	return s
}

// Code returns the code of err: OK for nil, Unknown for an error without a status.
func Code(err error) codes.Code { return Convert(err).Code() }
