package nats_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/sluicerpc/sluice/client"
	snats "github.com/sluicerpc/sluice/contrib/nats"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/examples/echo/echotest"
	"github.com/sluicerpc/sluice/internal/propagationtest"
	"github.com/sluicerpc/sluice/metadata"
)

// TestChain is the chain issue 6 asks for: a caller sets a persistent key,
// a baggage member and a transient key, then
//
//	caller --native--> s1 --gRPC--> s2 --Connect--> s3 --NATS--> subscriber --native--> s4
//
// The persistent key and the baggage member reach every service, the
// subscriber and s4 past it; the transient key stops at s1.
func TestChain(t *testing.T) {
	nc := startNATS(t)
	serve := func(h *propagationtest.Hop) string {
		return echotest.Serve(t, func(string) echopb.EchoServiceServer { return h })
	}

	s4 := &propagationtest.Hop{}
	toS4 := propagationtest.Call(t, serve(s4), client.Native)
	type sub struct {
		seen propagationtest.Seen
		err  error
	}
	subscribed := make(chan sub, 1)
	s, err := snats.Subscribe(nc, "chain", func(ctx context.Context, _ *nats.Msg) {
		subscribed <- sub{propagationtest.Record(ctx), toS4(ctx)}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	s3 := &propagationtest.Hop{Next: func(ctx context.Context) error { return snats.Publish(ctx, nc, "chain", nil) }}
	s2 := &propagationtest.Hop{Next: propagationtest.Call(t, serve(s3), client.Connect)}
	s1 := &propagationtest.Hop{Next: propagationtest.Call(t, serve(s2), client.GRPC)}
	call := propagationtest.Call(t, serve(s1), client.Native)

	ctx := metadata.AppendToOutgoing(context.Background(), "x-transient", "first hop only")
	ctx = metadata.AppendPersistent(ctx, "x-tenant", "acme")
	ctx, err = metadata.SetBaggage(ctx, "sluice-lane", "canary")
	if err != nil {
		t.Fatal(err)
	}
	if err := call(ctx); err != nil {
		t.Fatal(err)
	}
	got := <-subscribed
	if got.err != nil {
		t.Fatalf("subscriber's call to s4: %v", got.err)
	}
	hops := []struct {
		name string
		seen []propagationtest.Seen
	}{
		{"s1 (native)", s1.Seen()},
		{"s2 (gRPC)", s2.Seen()},
		{"s3 (Connect)", s3.Seen()},
		{"subscriber (NATS)", []propagationtest.Seen{got.seen}},
		{"s4 (native, after NATS)", s4.Seen()},
	}
	for i, h := range hops {
		if len(h.seen) != 1 {
			t.Fatalf("%s saw %d calls", h.name, len(h.seen))
		}
		s := h.seen[0]
		if v := s.Persistent.Get("x-tenant"); len(v) != 1 || v[0] != "acme" {
			t.Errorf("%s: persistent x-tenant = %q", h.name, v)
		}
		if v := s.Incoming.Get("rpc-persist-x-tenant"); len(v) != 1 || v[0] != "acme" {
			t.Errorf("%s: rpc-persist-x-tenant arrived as %q", h.name, v)
		}
		if v := s.Baggage["sluice-lane"]; v != "canary" {
			t.Errorf("%s: baggage sluice-lane = %q", h.name, v)
		}
		if v := s.Incoming.Get("x-transient"); (i == 0) != (len(v) == 1) {
			t.Errorf("%s: transient x-transient arrived as %q", h.name, v)
		}
	}
}
