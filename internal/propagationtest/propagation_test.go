package propagationtest_test

import (
	"context"
	"testing"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/examples/echo/echotest"
	"github.com/sluicerpc/sluice/internal/propagationtest"
	"github.com/sluicerpc/sluice/metadata"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	tracestate  = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
)

var protocols = []client.Protocol{client.Native, client.GRPC, client.Connect}

// serve starts an echo server whose every call h handles.
func serve(t *testing.T, h *propagationtest.Hop) string {
	return echotest.Serve(t, func(string) echopb.EchoServiceServer { return h })
}

// TestOneHop checks that trace context, baggage, persistent and transient
// keys arrive unchanged over each protocol, as ordinary metadata.
func TestOneHop(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.String(), func(t *testing.T) {
			h := &propagationtest.Hop{}
			call := propagationtest.Call(t, serve(t, h), p)
			ctx := metadata.AppendToOutgoing(context.Background(),
				"traceparent", traceparent, "tracestate", tracestate, "x-transient", "t")
			ctx = metadata.AppendPersistent(ctx, "x-tenant", "acme")
			ctx, err := metadata.SetBaggage(ctx, "sluice-lane", "canary 1")
			if err != nil {
				t.Fatal(err)
			}
			if err := call(ctx); err != nil {
				t.Fatal(err)
			}
			seen := h.Seen()
			if len(seen) != 1 {
				t.Fatalf("%d calls seen", len(seen))
			}
			in := seen[0].Incoming
			for k, want := range map[string]string{
				"traceparent":          traceparent,
				"tracestate":           tracestate,
				"x-transient":          "t",
				"rpc-persist-x-tenant": "acme",
				"baggage":              "sluice-lane=canary%201",
			} {
				if got := in.Get(k); len(got) != 1 || got[0] != want {
					t.Errorf("%s arrived as %q, want %q", k, got, want)
				}
			}
			if got := seen[0].Persistent.Value("x-tenant"); got != "acme" {
				t.Errorf("persistent x-tenant = %q", got)
			}
			if got := seen[0].Baggage["sluice-lane"]; got != "canary 1" {
				t.Errorf("baggage sluice-lane = %q", got)
			}
		})
	}
}

// TestChain sends a call through three services, native then gRPC then
// Connect: persistent keys and baggage reach the last one, a key the middle
// service adds reaches the last too, and transient keys (trace context
// among them) stop after the first hop.
func TestChain(t *testing.T) {
	s3 := &propagationtest.Hop{}
	s2 := &propagationtest.Hop{Next: propagationtest.Call(t, serve(t, s3), client.Connect)}
	next2 := propagationtest.Call(t, serve(t, s2), client.GRPC)
	s1 := &propagationtest.Hop{Next: func(ctx context.Context) error {
		return next2(metadata.AppendPersistent(ctx, "x-added-by", "s1"))
	}}
	call := propagationtest.Call(t, serve(t, s1), client.Native)

	ctx := metadata.AppendToOutgoing(context.Background(), "x-transient", "t", "traceparent", traceparent)
	ctx = metadata.AppendPersistent(ctx, "x-tenant", "acme")
	ctx, _ = metadata.SetBaggage(ctx, "sluice-lane", "canary")
	if err := call(ctx); err != nil {
		t.Fatal(err)
	}
	for i, h := range []*propagationtest.Hop{s1, s2, s3} {
		seen := h.Seen()
		if len(seen) != 1 {
			t.Fatalf("service %d saw %d calls", i+1, len(seen))
		}
		s := seen[0]
		if got := s.Persistent.Get("x-tenant"); len(got) != 1 || got[0] != "acme" {
			t.Errorf("service %d: persistent x-tenant = %q", i+1, got)
		}
		if got := s.Baggage["sluice-lane"]; got != "canary" {
			t.Errorf("service %d: baggage sluice-lane = %q", i+1, got)
		}
		if got := s.Persistent.Get("x-added-by"); i > 0 && (len(got) != 1 || got[0] != "s1") {
			t.Errorf("service %d: persistent x-added-by = %q", i+1, got)
		}
		for _, k := range []string{"x-transient", "traceparent"} {
			if got := s.Incoming.Get(k); (i == 0) != (len(got) == 1) {
				t.Errorf("service %d: transient %s arrived as %q", i+1, k, got)
			}
		}
	}
}

// BenchmarkCall prices persistent metadata: one native call to an echo
// server with none, and with a persistent key and a baggage member that the
// server's handler context carries on (allocs/op counts both sides).
func BenchmarkCall(b *testing.B) {
	addr := echotest.Start(b, 0)
	c, err := client.New(addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	echo := echopb.NewEchoServiceClient(c)
	req := &echopb.EchoRequest{Message: "bench"}
	chain := metadata.AppendPersistent(context.Background(), "x-tenant", "acme")
	chain, _ = metadata.SetBaggage(chain, "sluice-lane", "canary")
	for _, bc := range []struct {
		name string
		ctx  context.Context
	}{
		{"none", context.Background()},
		{"transient", metadata.AppendToOutgoing(context.Background(), "x-tenant", "acme", "x-lane", "canary")},
		{"persistent+baggage", chain},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := echo.Echo(bc.ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
