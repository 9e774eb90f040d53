package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/server"
	"google.golang.org/grpc/codes"
)

// TestTraceContextAcrossProtocols: on every protocol the server keeps the
// W3C trace context out of the call info's Metadata and the handler reads
// it as ordinary incoming metadata all the same, whether the call carries
// other metadata or only that; the call info's Start is set, once, before
// the chain runs.
func TestTraceContextAcrossProtocols(t *testing.T) {
	const (
		tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		ts = "congo=t61rcWkgMzE"
	)
	type seenCall struct {
		info                   callinfo.Info
		tp, ts                 string
		incoming               metadata.MD
		startBefore, startSame bool
	}
	var (
		mu   sync.Mutex
		seen []seenCall
	)
	record := func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			info := callinfo.FromContext(ctx)
			start := info.Start
			s := seenCall{info: *info, startBefore: !start.IsZero() && !start.After(time.Now())}
			s.tp, _ = metadata.IncomingValue(ctx, metadata.KeyTraceparent)
			s.ts, _ = metadata.IncomingValue(ctx, metadata.KeyTracestate)
			in, _ := metadata.FromIncoming(ctx)
			s.incoming = in.Copy()
			err := next(ctx, req, resp)
			s.startSame = info.Start.Equal(start)
			mu.Lock()
			seen = append(seen, s)
			mu.Unlock()
			return err
		}
	}
	f := start(t, server.WithMiddleware(record))
	for _, c := range callers(t, f.addr) {
		for _, md := range []map[string]string{
			{"traceparent": tp, "tracestate": ts, "x-tenant": "acme"},
			{"traceparent": tp},
		} {
			mu.Lock()
			seen = nil
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, code, err := c.call(ctx, "x", md)
			cancel()
			if code != codes.OK {
				t.Fatalf("%s: %v", c.name, err)
			}
			mu.Lock()
			if len(seen) != 1 {
				t.Fatalf("%s: middleware saw %d calls", c.name, len(seen))
			}
			s := seen[0]
			mu.Unlock()
			if s.tp != tp || s.ts != md["tracestate"] {
				t.Errorf("%s %v: IncomingValue gave traceparent %q, tracestate %q", c.name, md, s.tp, s.ts)
			}
			for k, v := range md {
				if got := s.incoming.Get(k); len(got) != 1 || got[0] != v {
					t.Errorf("%s %v: FromIncoming has %s = %q, want %q", c.name, md, k, got, v)
				}
			}
			if s.info.Metadata.Get(metadata.KeyTraceparent) != nil || s.info.Metadata.Get(metadata.KeyTracestate) != nil {
				t.Errorf("%s %v: Info.Metadata holds the trace context: %v", c.name, md, s.info.Metadata)
			}
			if got := s.info.Metadata.Value("x-tenant"); got != md["x-tenant"] {
				t.Errorf("%s %v: Info.Metadata x-tenant = %q", c.name, md, got)
			}
			if !s.startBefore || !s.startSame {
				t.Errorf("%s %v: Info.Start %v not set before the chain, or changed in it", c.name, md, s.info.Start)
			}
		}
	}
}

// TestCallerAcrossProtocols: a client with WithCaller names its service on
// every protocol; the server has it as Info.Caller, not as metadata. A
// client without one sends none.
func TestCallerAcrossProtocols(t *testing.T) {
	type seenCall struct {
		caller string
		md     metadata.MD
	}
	var (
		mu   sync.Mutex
		seen []seenCall
	)
	record := func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			info := callinfo.FromContext(ctx)
			mu.Lock()
			seen = append(seen, seenCall{info.Caller, info.Metadata.Copy()})
			mu.Unlock()
			return next(ctx, req, resp)
		}
	}
	f := start(t, server.WithMiddleware(record))
	for _, p := range []client.Protocol{client.Native, client.GRPC, client.Connect} {
		for _, caller := range []string{"checkout.v1.CartService", ""} {
			var opts []client.Option
			if caller != "" {
				opts = append(opts, client.WithCaller(caller, nil))
			}
			cl := dial(t, f.addr, append(opts, client.WithProtocol(p))...)
			mu.Lock()
			seen = nil
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := cl.Echo(ctx, &echopb.EchoRequest{Message: "x"})
			cancel()
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			mu.Lock()
			s := seen
			mu.Unlock()
			if len(s) != 1 {
				t.Fatalf("%s: middleware saw %d calls", p, len(s))
			}
			if s[0].caller != caller {
				t.Errorf("%s: Info.Caller = %q, want %q", p, s[0].caller, caller)
			}
			for k := range s[0].md {
				if strings.Contains(k, "caller") {
					t.Errorf("%s: the caller name is in the metadata too: %s", p, k)
				}
			}
		}
	}
}
