// Package echo is the example service: it echoes the message and payload
// and says which instance answered. The server binary is in ./server.
package echo

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// Service implements echopb.EchoServiceServer.
type Service struct {
	// ServedBy is put in every reply, usually the listen address.
	ServedBy string
	// FailRate is the fraction of calls answered with Unavailable.
	FailRate float64
	// Delay is added before each reply, honouring the caller's deadline.
	Delay time.Duration
}

// Echo implements echopb.EchoServiceServer.
func (s *Service) Echo(ctx context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	if s.Delay > 0 {
		t := time.NewTimer(s.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	if s.FailRate > 0 && rand.Float64() < s.FailRate {
		return nil, status.Errorf(codes.Unavailable, "echo: injected failure on %s", s.ServedBy)
	}
	return &echopb.EchoResponse{Message: req.Message, Payload: req.Payload, ServedBy: s.ServedBy}, nil
}
