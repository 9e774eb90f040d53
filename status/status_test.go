package status_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
)

func TestFromError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code codes.Code
		msg  string
		ok   bool
	}{
		{"nil", nil, codes.OK, "", true},
		{"status", status.Err(codes.NotFound, "x"), codes.NotFound, "x", true},
		{"wrapped status", fmt.Errorf("ctx: %w", status.Err(codes.Aborted, "y")), codes.Aborted, "y", true},
		{"grpc-go status", grpcstatus.Error(codes.PermissionDenied, "z"), codes.PermissionDenied, "z", true},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded, "context deadline exceeded", false},
		{"canceled", fmt.Errorf("op: %w", context.Canceled), codes.Canceled, "op: context canceled", false},
		{"plain", errors.New("plain"), codes.Unknown, "plain", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := status.FromError(tt.err)
			if s.Code() != tt.code || s.Message() != tt.msg || ok != tt.ok {
				t.Errorf("FromError = %v %q %v, want %v %q %v", s.Code(), s.Message(), ok, tt.code, tt.msg, tt.ok)
			}
		})
	}
}

func TestIs(t *testing.T) {
	err := status.Err(codes.Unavailable, "down")
	if !errors.Is(err, status.ErrUnavailable) || errors.Is(err, status.ErrInternal) {
		t.Error("code sentinels do not match on code")
	}
	if !errors.Is(err, status.Err(codes.Unavailable, "down")) || errors.Is(err, status.Err(codes.Unavailable, "other")) {
		t.Error("two status errors match on code and message")
	}
	wrapped := status.Wrap(codes.DeadlineExceeded, "late", context.DeadlineExceeded)
	if !errors.Is(wrapped, context.DeadlineExceeded) || !errors.Is(wrapped, status.ErrDeadlineExceeded) {
		t.Error("Wrap keeps the cause")
	}
	if status.Err(codes.OK, "fine") != nil || status.Wrap(codes.OK, "", nil) != nil {
		t.Error("OK must be a nil error")
	}
	// grpc-go reads our code.
	if grpcstatus.Code(err) != codes.Unavailable {
		t.Error("grpc-go does not see the code")
	}
}
