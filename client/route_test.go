package client_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/discovery/static"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/examples/echo/echotest"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/retry"
	"github.com/sluicerpc/sluice/route"
	"github.com/sluicerpc/sluice/server"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// hop is one instance of a service in a chain: it answers with its name,
// followed by the path of the call it makes to the next service, if any.
type hop struct {
	echopb.UnimplementedEchoServiceServer
	name string
	next echopb.EchoServiceClient
}

func (h *hop) Echo(ctx context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	path := h.name
	if h.next != nil {
		r, err := h.next.Echo(ctx, req)
		if err != nil {
			return nil, err
		}
		path += ">" + r.Message
	}
	return &echopb.EchoResponse{Message: path}, nil
}

// chainInstance starts one instance named name with labels, calling next.
func chainInstance(t *testing.T, name string, labels map[string]string, next echopb.EchoServiceClient, opts ...server.Option) discovery.Instance {
	t.Helper()
	addr := echotest.ServeWith(t, func(string) echopb.EchoServiceServer { return &hop{name: name, next: next} }, opts...)
	return discovery.Instance{Addr: addr, Labels: labels}
}

// routedClient returns a client of the instances, routed by tb.
func routedClient(t *testing.T, tb *route.Table, p client.Protocol, ins ...discovery.Instance) echopb.EchoServiceClient {
	t.Helper()
	c, err := client.New("chain", client.WithResolver(static.Of(ins...)), client.WithRoutes(tb), client.WithProtocol(p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return echopb.NewEchoServiceClient(c)
}

// TestLaneChain: three services A -> B -> C, A and C with an instance in
// lane blue, B without one. A call in the lane goes A-blue, falls back to
// B's base instance, and is back in the lane at C: the lane rides in the
// baggage through the base hop, over the native protocol (A to B) and gRPC
// (B to C). A call without a lane stays on the base instances; a call that
// enters through the lane's ingress header joins it at A's server; a call
// in a STRICT lane with no instance fails with Unavailable.
func TestLaneChain(t *testing.T) {
	tb, err := route.NewTable(nil, []route.Lane{
		{Name: "blue", Ingress: &route.Ingress{Headers: []route.StringMatch{{Key: "x-lane", Exact: "blue"}}}},
		{Name: "green", Mode: "STRICT"},
	})
	if err != nil {
		t.Fatal(err)
	}
	blue := map[string]string{"lane": "blue"}
	cBase := chainInstance(t, "C-base", nil, nil)
	cBlue := chainInstance(t, "C-blue", blue, nil)
	toC := routedClient(t, tb, client.GRPC, cBase, cBlue)
	bBase := chainInstance(t, "B-base", nil, toC)
	toB := routedClient(t, tb, client.Native, bBase)
	aBase := chainInstance(t, "A-base", nil, toB, server.WithRoutes(tb))
	aBlue := chainInstance(t, "A-blue", blue, toB, server.WithRoutes(tb))

	for _, p := range []client.Protocol{client.Native, client.GRPC} {
		t.Run(p.String(), func(t *testing.T) {
			toA := routedClient(t, tb, p, aBase, aBlue)
			inLane := func(lane string) context.Context {
				ctx, err := metadata.SetBaggage(context.Background(), route.LaneKey, lane)
				if err != nil {
					t.Fatal(err)
				}
				return ctx
			}
			for _, tc := range []struct {
				name string
				ctx  context.Context
				want string
			}{
				{"no lane", context.Background(), "A-base>B-base>C-base"},
				{"lane blue", inLane("blue"), "A-blue>B-base>C-blue"},
				{"ingress header", metadata.AppendToOutgoing(context.Background(), "x-lane", "blue"), "A-base>B-base>C-blue"},
				{"undefined lane", inLane("purple"), "A-base>B-base>C-base"},
			} {
				for i := 0; i < 10; i++ {
					r, err := toA.Echo(tc.ctx, &echopb.EchoRequest{Message: "x"})
					if err != nil {
						t.Fatalf("%s: %v", tc.name, err)
					}
					if r.Message != tc.want {
						t.Fatalf("%s: path %s, want %s", tc.name, r.Message, tc.want)
					}
				}
			}
			_, err := toA.Echo(inLane("green"), &echopb.EchoRequest{Message: "x"})
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "lane green") || !strings.Contains(err.Error(), "STRICT") {
				t.Fatalf("STRICT lane without instances: %v, want Unavailable naming the lane", err)
			}
		})
	}
}

// counting is an echo instance that counts its calls, after an optional
// delay.
type counting struct {
	echo.Service
	calls atomic.Int64
}

func (c *counting) Echo(ctx context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	c.calls.Add(1)
	return c.Service.Echo(ctx, req)
}

func countingInstance(t *testing.T, version string, delay time.Duration) (discovery.Instance, *counting) {
	t.Helper()
	var impl *counting
	addr := echotest.Serve(t, func(addr string) echopb.EchoServiceServer {
		impl = &counting{Service: echo.Service{ServedBy: version, Delay: delay}}
		return impl
	})
	return discovery.Instance{Addr: addr, Labels: map[string]string{"version": version}}, impl
}

func ruleDoc(routes ...route.Route) []route.Rule {
	return []route.Rule{{Name: "echo", Service: echopb.EchoService_ServiceName, Routes: routes}}
}

// TestMirrorDoesNotTouchTheCaller: every call is mirrored to a shadow
// subset that is slow, or down; the caller's calls all succeed, as fast as
// without the mirror, and the slow shadow does receive copies.
func TestMirrorDoesNotTouchTheCaller(t *testing.T) {
	v1, _ := countingInstance(t, "v1", 0)
	slow, slowImpl := countingInstance(t, "shadow", 200*time.Millisecond)
	down := discovery.Instance{Addr: "127.0.0.1:1", Labels: map[string]string{"version": "down"}}
	for _, shadow := range []string{"shadow", "down"} {
		t.Run(shadow, func(t *testing.T) {
			tb, err := route.NewTable(ruleDoc(route.Route{
				Name:         "mirrored",
				Destinations: []route.Destination{{Subset: map[string]string{"version": "v1"}}},
				Mirror:       &route.Mirror{Subset: map[string]string{"version": shadow}},
			}), nil)
			if err != nil {
				t.Fatal(err)
			}
			cl := routedClient(t, tb, client.Native, v1, slow, down)
			var worst time.Duration
			for i := 0; i < 50; i++ {
				start := time.Now()
				r, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "x"})
				if err != nil || r.ServedBy != "v1" {
					t.Fatalf("call %d: %v, %v", i, r, err)
				}
				worst = max(worst, time.Since(start))
			}
			t.Logf("slowest of 50 mirrored calls: %v", worst)
			if worst >= 150*time.Millisecond {
				t.Errorf("a call took %v: the shadow's 200ms leaked into the caller", worst)
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for slowImpl.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if slowImpl.calls.Load() == 0 {
		t.Error("the shadow received no mirrored call")
	}
}

// TestWeightShiftUnderLoad: a rule moving traffic from v1 to v2 in steps,
// 0 -> 25 -> 50 -> 100%, applied while calls run, fails no call, and at
// 100% every call reaches v2.
func TestWeightShiftUnderLoad(t *testing.T) {
	v1, _ := countingInstance(t, "v1", 0)
	v2, _ := countingInstance(t, "v2", 0)
	split := func(w2 int) []route.Rule {
		return ruleDoc(route.Route{Name: "split", Destinations: []route.Destination{
			{Subset: map[string]string{"version": "v1"}, Weight: 100 - w2},
			{Subset: map[string]string{"version": "v2"}, Weight: w2},
		}})
	}
	tb, err := route.NewTable(split(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := routedClient(t, tb, client.Native, v1, v2)
	var failed atomic.Int64
	var firstErr atomic.Value
	var mu sync.Mutex
	served := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "x"})
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				mu.Lock()
				served[r.ServedBy]++
				mu.Unlock()
			}
		}()
	}
	for _, w := range []int{25, 50, 100} {
		time.Sleep(50 * time.Millisecond)
		if err := tb.Update(split(w), nil); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	served = map[string]int{}
	mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d calls failed during the shift; first: %v", failed.Load(), firstErr.Load())
	}
	if served["v1"] != 0 || served["v2"] == 0 {
		t.Fatalf("after the shift to 100%% v2: served %v", served)
	}
}

// TestClientFault: a client-side abort fault fails matching calls with its
// code before they are sent; errors.Is(err, route.ErrInjected) holds.
func TestClientFault(t *testing.T) {
	v1, impl := countingInstance(t, "v1", 0)
	tb, err := route.NewTable(ruleDoc(route.Route{
		Name:  "chaos",
		Match: &route.Match{Headers: []route.StringMatch{{Key: "x-chaos", Present: true}}},
		Fault: &route.Fault{Abort: &route.Abort{Code: "UNAVAILABLE"}},
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen callinfo.Info
	c, err := client.New("chain", client.WithResolver(static.Of(v1)), client.WithRoutes(tb),
		client.WithMiddleware(func(next endpoint.Endpoint) endpoint.Endpoint {
			return func(ctx context.Context, req, resp any) error {
				err := next(ctx, req, resp)
				seen = *callinfo.FromContext(ctx)
				return err
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := echopb.NewEchoServiceClient(c)
	_, err = cl.Echo(metadata.AppendToOutgoing(context.Background(), "x-chaos", "1"), &echopb.EchoRequest{Message: "x"})
	if seen.Rule != "echo" || seen.Route != "chaos" {
		t.Errorf("call info rule %q route %q, want echo, chaos", seen.Rule, seen.Route)
	}
	if status.Code(err) != codes.Unavailable || !errors.Is(err, route.ErrInjected) {
		t.Fatalf("chaos call: %v, want an injected Unavailable", err)
	}
	if _, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "x"}); err != nil {
		t.Fatalf("plain call: %v", err)
	}
	if n := impl.calls.Load(); n != 1 {
		t.Fatalf("the instance received %d calls, want 1: an aborted call is not sent", n)
	}
}

// TestRetriesKeepTheSubset: a call is routed once. Under a 50/50 split
// where every instance fails, all three attempts of each call reach the
// subset the first one drew, and calls still spread over both subsets.
func TestRetriesKeepTheSubset(t *testing.T) {
	var ins []discovery.Instance
	impls := map[string]*counting{}
	for _, v := range []string{"v1", "v1", "v2", "v2"} {
		impl := &counting{Service: echo.Service{ServedBy: v, FailRate: 1}}
		addr := echotest.Serve(t, func(string) echopb.EchoServiceServer { return impl })
		ins = append(ins, discovery.Instance{Addr: addr, Labels: map[string]string{"version": v}})
		impls[addr] = impl
	}
	tb, err := route.NewTable(ruleDoc(route.Route{Name: "split", Destinations: []route.Destination{
		{Subset: map[string]string{"version": "v1"}, Weight: 50},
		{Subset: map[string]string{"version": "v2"}, Weight: 50},
	}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := retry.New(retry.Config{MaxAttempts: 3, InitialBackoff: time.Microsecond, Codes: []codes.Code{codes.Unavailable}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New("chain", client.WithResolver(static.Of(ins...)), client.WithRoutes(tb), client.WithMiddleware(rp.Middleware()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := echopb.NewEchoServiceClient(c)
	bySubset := func() map[string]int64 {
		n := map[string]int64{}
		for _, in := range ins {
			n[in.Labels["version"]] += impls[in.Addr].calls.Load()
		}
		return n
	}
	calls := map[string]int{}
	for i := 0; i < 40; i++ {
		before := bySubset()
		if _, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "x"}); status.Code(err) != codes.Unavailable {
			t.Fatalf("call %d: %v, want Unavailable", i, err)
		}
		after := bySubset()
		d1, d2 := after["v1"]-before["v1"], after["v2"]-before["v2"]
		if d1*d2 != 0 || d1+d2 != 3 {
			t.Fatalf("call %d: attempts reached v1 %d times, v2 %d times; want 3 on one subset", i, d1, d2)
		}
		if d1 > 0 {
			calls["v1"]++
		} else {
			calls["v2"]++
		}
	}
	// 40 calls at 50/50: both subsets get some (all on one: p = 2^-39).
	if calls["v1"] == 0 || calls["v2"] == 0 {
		t.Errorf("calls by subset %v: the split drew one subset only", calls)
	}
}
