// Package propagationtest builds call chains of echo services that record
// the metadata each call arrives with, for the propagation tests here and
// in contrib/nats.
//
//	last := &propagationtest.Hop{}
//	addr := echotest.Serve(t, func(string) echopb.EchoServiceServer { return last })
//	first := &propagationtest.Hop{Next: propagationtest.Call(t, addr, client.GRPC)}
//	...
//	seen := last.Seen() // one Seen per call
package propagationtest

import (
	"context"
	"sync"
	"testing"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/metadata"
)

// Seen is what one service saw of one call.
type Seen struct {
	// Incoming is a copy of the metadata the call arrived with.
	Incoming metadata.MD
	// Persistent is metadata.Persistent of the handler's context.
	Persistent metadata.MD
	// Baggage is the handler context's baggage members, key to value.
	Baggage map[string]string
}

// Record returns what ctx, a handler's context, carries.
func Record(ctx context.Context) Seen {
	in, _ := metadata.FromIncoming(ctx)
	s := Seen{Incoming: in.Copy(), Persistent: metadata.Persistent(ctx), Baggage: map[string]string{}}
	for _, m := range metadata.Baggage(ctx).Members() {
		s.Baggage[m.Key()] = m.Value()
	}
	return s
}

// Hop is an echo service that records each call and then, unless Next is
// nil, calls Next with the handler's context before it replies.
type Hop struct {
	echopb.UnimplementedEchoServiceServer
	// Next continues the chain from the handler's context; nil ends it.
	Next func(ctx context.Context) error

	mu   sync.Mutex
	seen []Seen
}

// Echo implements echopb.EchoServiceServer.
func (h *Hop) Echo(ctx context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	h.mu.Lock()
	h.seen = append(h.seen, Record(ctx))
	h.mu.Unlock()
	if h.Next != nil {
		if err := h.Next(ctx); err != nil {
			return nil, err
		}
	}
	return &echopb.EchoResponse{Message: req.Message}, nil
}

// Seen returns what the calls so far brought, in order.
func (h *Hop) Seen() []Seen {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Seen(nil), h.seen...)
}

// Call returns a Next that calls the echo service at addr over protocol p
// with the context it is given. The client closes when the test ends.
func Call(t testing.TB, addr string, p client.Protocol) func(ctx context.Context) error {
	t.Helper()
	c, err := client.New(addr, client.WithProtocol(p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	echo := echopb.NewEchoServiceClient(c)
	return func(ctx context.Context) error {
		_, err := echo.Echo(ctx, &echopb.EchoRequest{Message: "chain"})
		return err
	}
}
