package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/sluicerpc/sluice/balancer/balancertest"
	"github.com/sluicerpc/sluice/breaker"
	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/internal/transport"
	"github.com/sluicerpc/sluice/observe/metrics"
	"github.com/sluicerpc/sluice/protocol/ttheader"
	"github.com/sluicerpc/sluice/server"
	"github.com/sluicerpc/sluice/status"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	echoService = echopb.EchoService_ServiceName
	echoMethod  = "Echo"
)

// echoImpl echoes, except for "err:N" (fails with code N), "panic", and
// "block" (waits for release or the end of the call).
type echoImpl struct {
	release chan struct{}
	started chan struct{}
}

func (e *echoImpl) Echo(ctx context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	switch msg := req.Message; {
	case strings.HasPrefix(msg, "err:"):
		n, _ := strconv.Atoi(msg[4:])
		return nil, status.Errorf(codes.Code(n), "asked for %v", codes.Code(n))
	case msg == "panic":
		panic("boom")
	case msg == "block":
		e.started <- struct{}{}
		select {
		case <-e.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &echopb.EchoResponse{Message: req.Message, Payload: req.Payload, ServedBy: "echo"}, nil
}

// startServer serves echoImpl on loopback with opts until the test ends.
func startServer(t *testing.T, opts ...server.Option) (string, *echoImpl) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	impl := &echoImpl{release: make(chan struct{}), started: make(chan struct{}, 1)}
	s := server.New(append([]server.Option{server.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	echopb.RegisterEchoServiceServer(s, impl)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-done; !errors.Is(err, server.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), impl
}

func dial(t *testing.T, addr string, opts ...client.Option) echopb.EchoServiceClient {
	t.Helper()
	c, err := client.New(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return echopb.NewEchoServiceClient(c)
}

func newMetrics(t *testing.T, cfg metrics.Config) *metrics.Metrics {
	t.Helper()
	m, err := metrics.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sample finds the metric name{labels} in g: a counter's or gauge's value,
// a histogram's sample count; ok is false when there is none.
func sample(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			got := map[string]string{}
			for _, lp := range m.Label {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.Counter.GetValue(), true
			case dto.MetricType_GAUGE:
				return m.Gauge.GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func value(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	v, _ := sample(t, g, name, labels)
	return v
}

func lbl(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestCalls makes calls through a real server and client and checks every
// per-call metric of both sides.
func TestCalls(t *testing.T) {
	ms := newMetrics(t, metrics.Config{})
	mc := newMetrics(t, metrics.Config{})
	addr, _ := startServer(t, server.WithMetrics(ms))
	echo := dial(t, addr, client.WithMiddleware(mc.Client()))
	ctx := context.Background()

	var reqBytes, respBytes int
	const ok = 5
	for i := range ok {
		req := &echopb.EchoRequest{Message: fmt.Sprint("hello ", i), Payload: make([]byte, 100*i)}
		resp, err := echo.Echo(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		reqBytes += proto.Size(req)
		respBytes += proto.Size(resp)
	}
	// Bytes: exactly the encoded messages, on both sides.
	for _, c := range []struct {
		g    prometheus.Gatherer
		name string
		want int
	}{
		{ms.Gatherer(), "sluice_server_received_bytes_total", reqBytes},
		{ms.Gatherer(), "sluice_server_sent_bytes_total", respBytes},
		{mc.Gatherer(), "sluice_client_sent_bytes_total", reqBytes},
		{mc.Gatherer(), "sluice_client_received_bytes_total", respBytes},
	} {
		// The server counts a reply's bytes once it has written it, so
		// the client may have the last reply a moment before.
		labels := lbl("service", echoService, "method", echoMethod)
		got := value(t, c.g, c.name, labels)
		for deadline := time.Now().Add(5 * time.Second); got != float64(c.want) && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
			got = value(t, c.g, c.name, labels)
		}
		if got != float64(c.want) {
			t.Errorf("%s = %v, want %d", c.name, got, c.want)
		}
	}

	for _, msg := range []string{"err:5", "err:5", "err:14", "panic"} {
		if _, err := echo.Echo(ctx, &echopb.EchoRequest{Message: msg}); err == nil {
			t.Fatalf("%s: no error", msg)
		}
	}

	// The native client sends no caller name: the server's peer is "unknown".
	want := fmt.Sprintf(`
# HELP sluice_server_requests_total Calls the server handled, by service, method, status code and calling service (peer).
# TYPE sluice_server_requests_total counter
sluice_server_requests_total{code="INTERNAL",method="Echo",peer="unknown",service="%[1]s"} 1
sluice_server_requests_total{code="NOT_FOUND",method="Echo",peer="unknown",service="%[1]s"} 2
sluice_server_requests_total{code="OK",method="Echo",peer="unknown",service="%[1]s"} 5
sluice_server_requests_total{code="UNAVAILABLE",method="Echo",peer="unknown",service="%[1]s"} 1
`, echoService)
	if err := testutil.GatherAndCompare(ms.Gatherer(), strings.NewReader(want), "sluice_server_requests_total"); err != nil {
		t.Error(err)
	}
	want = fmt.Sprintf(`
# HELP sluice_client_requests_total Calls the client made, by service, method, status code, instance address (peer), and the route and subset that route rules chose.
# TYPE sluice_client_requests_total counter
sluice_client_requests_total{code="INTERNAL",method="Echo",peer="%[2]s",route="",service="%[1]s",subset=""} 1
sluice_client_requests_total{code="NOT_FOUND",method="Echo",peer="%[2]s",route="",service="%[1]s",subset=""} 2
sluice_client_requests_total{code="OK",method="Echo",peer="%[2]s",route="",service="%[1]s",subset=""} 5
sluice_client_requests_total{code="UNAVAILABLE",method="Echo",peer="%[2]s",route="",service="%[1]s",subset=""} 1
`, echoService, addr)
	if err := testutil.GatherAndCompare(mc.Gatherer(), strings.NewReader(want), "sluice_client_requests_total"); err != nil {
		t.Error(err)
	}

	// Latency: one observation per call, in the default buckets.
	for _, c := range []struct {
		m    *metrics.Metrics
		name string
	}{{ms, "sluice_server_handling_seconds"}, {mc, "sluice_client_request_seconds"}} {
		if got := value(t, c.m.Gatherer(), c.name, lbl("service", echoService, "method", echoMethod)); got != 9 {
			t.Errorf("%s count = %v, want 9", c.name, got)
		}
		mfs, _ := c.m.Gatherer().Gather()
		for _, mf := range mfs {
			if mf.GetName() == c.name {
				if n := len(mf.Metric[0].Histogram.Bucket); n != len(metrics.DefaultBuckets) {
					t.Errorf("%s has %d buckets, want %d", c.name, n, len(metrics.DefaultBuckets))
				}
			}
		}
	}

	// Error replies count on both sides alike (the server's once it has
	// written the last one: the client may have it a moment before).
	received := value(t, mc.Gatherer(), "sluice_client_received_bytes_total", nil)
	sent := value(t, ms.Gatherer(), "sluice_server_sent_bytes_total", nil)
	for deadline := time.Now().Add(5 * time.Second); sent != received && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		sent = value(t, ms.Gatherer(), "sluice_server_sent_bytes_total", nil)
	}
	if sent != received || sent <= float64(respBytes) {
		t.Errorf("server sent %v bytes, client received %v; want equal and > %d", sent, received, respBytes)
	}
}

// TestServerPeerIsCaller sends raw frames naming their calling service:
// the server's peer label is that name, never the remote address.
func TestServerPeerIsCaller(t *testing.T) {
	ms := newMetrics(t, metrics.Config{MaxPeers: 2})
	addr, _ := startServer(t, server.WithMetrics(ms))
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for i, caller := range []string{"frontend", "billing", "frontend", "", "cron", "batch"} {
		var h ttheader.Header
		h.SeqID = uint32(i + 1)
		h.AddString(ttheader.KeyServiceName, echoService)
		if caller != "" {
			h.AddInt(ttheader.KeyFromService, []byte(caller))
		}
		writeCall(t, nc, &h, &echopb.EchoRequest{Message: "hi"})
		readReply(t, nc)
	}
	want := fmt.Sprintf(`
# HELP sluice_server_requests_total Calls the server handled, by service, method, status code and calling service (peer).
# TYPE sluice_server_requests_total counter
sluice_server_requests_total{code="OK",method="Echo",peer="billing",service="%[1]s"} 1
sluice_server_requests_total{code="OK",method="Echo",peer="frontend",service="%[1]s"} 2
sluice_server_requests_total{code="OK",method="Echo",peer="other",service="%[1]s"} 3
`, echoService)
	if err := testutil.GatherAndCompare(ms.Gatherer(), strings.NewReader(want), "sluice_server_requests_total"); err != nil {
		t.Error(err)
	}
}

func writeCall(t *testing.T, nc net.Conn, h *ttheader.Header, req proto.Message) {
	t.Helper()
	buf, fs, err := ttheader.AppendHeader(nil, h)
	if err != nil {
		t.Fatal(err)
	}
	buf, ps := ttheader.AppendPayloadHeader(buf, ttheader.Call, echoMethod, h.SeqID)
	buf, err = proto.MarshalOptions{}.MarshalAppend(buf, req)
	if err != nil {
		t.Fatal(err)
	}
	ttheader.FinishPayload(buf, ps)
	if buf, err = ttheader.FinishFrame(buf, fs, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
}

func readReply(t *testing.T, nc net.Conn) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := transport.NewFrameReader(nc, 0).Next(); err != nil {
		t.Fatal(err)
	}
}

// TestInFlight holds a call in the handler and reads the gauges.
func TestInFlight(t *testing.T) {
	ms := newMetrics(t, metrics.Config{})
	mc := newMetrics(t, metrics.Config{})
	addr, impl := startServer(t, server.WithMetrics(ms))
	echo := dial(t, addr, client.WithMiddleware(mc.Client()))
	done := make(chan error, 1)
	go func() {
		_, err := echo.Echo(context.Background(), &echopb.EchoRequest{Message: "block"})
		done <- err
	}()
	<-impl.started
	labels := lbl("service", echoService, "method", echoMethod)
	if v := value(t, ms.Gatherer(), "sluice_server_in_flight_requests", labels); v != 1 {
		t.Errorf("server in flight = %v during the call, want 1", v)
	}
	if v := value(t, mc.Gatherer(), "sluice_client_in_flight_requests", labels); v != 1 {
		t.Errorf("client in flight = %v during the call, want 1", v)
	}
	close(impl.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v, ok := sample(t, ms.Gatherer(), "sluice_server_in_flight_requests", labels); !ok || v != 0 {
		t.Errorf("server in flight = %v (present %v) after the call, want 0", v, ok)
	}
	if v, ok := sample(t, mc.Gatherer(), "sluice_client_in_flight_requests", labels); !ok || v != 0 {
		t.Errorf("client in flight = %v (present %v) after the call, want 0", v, ok)
	}
}

// TestClientDialFailure: a call whose instance cannot be reached counts
// under that instance.
func TestClientDialFailure(t *testing.T) {
	mc := newMetrics(t, metrics.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there
	echo := dial(t, addr, client.WithMiddleware(mc.Client()))
	if _, err := echo.Echo(context.Background(), &echopb.EchoRequest{Message: "hi"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("call to a closed port: %v, want Unavailable", err)
	}
	if v := value(t, mc.Gatherer(), "sluice_client_requests_total", lbl("code", "UNAVAILABLE", "peer", addr)); v != 1 {
		t.Errorf("UNAVAILABLE calls to %s = %v, want 1", addr, v)
	}
}

// TestMiddlewareDirect runs the middlewares without a transport: codes
// outside the canonical range, panics, nil replies, calls without info.
func TestMiddlewareDirect(t *testing.T) {
	m := newMetrics(t, metrics.Config{NoRuntimeMetrics: true})
	peer := "10.0.0.1:1"
	call := func(side callinfo.Side, ep endpoint.Endpoint) (panicked any) {
		defer func() { panicked = recover() }()
		mw := m.Server()
		if side == callinfo.Client {
			mw = m.Client()
		}
		ctx := &callinfo.Carrier{Context: context.Background()}
		ctx.Info = callinfo.Info{Side: side, Service: "svc", Method: "M", Caller: "c", Peer: peer}
		mw(ep)(ctx, nil, &endpoint.Reply{})
		return nil
	}
	fail := func(c codes.Code) endpoint.Endpoint {
		return func(context.Context, any, any) error { return status.Err(c, "x") }
	}
	call(callinfo.Server, fail(codes.Code(99)))
	call(callinfo.Server, func(context.Context, any, any) error { return errors.New("plain") })
	call(callinfo.Server, func(context.Context, any, any) error { return context.DeadlineExceeded })
	call(callinfo.Server, func(context.Context, any, any) error { return nil }) // nil reply: Internal
	if p := call(callinfo.Server, func(context.Context, any, any) error { panic("boom") }); p != "boom" {
		t.Errorf("panic = %v, want it to pass through", p)
	}
	if p := call(callinfo.Client, func(context.Context, any, any) error { panic("boom") }); p != "boom" {
		t.Errorf("client panic = %v, want it to pass through", p)
	}
	call(callinfo.Client, fail(codes.ResourceExhausted))
	peer = "" // no instance picked
	call(callinfo.Client, fail(codes.Unavailable))

	// No call info: passed through, nothing counted.
	called := false
	m.Client()(func(context.Context, any, any) error { called = true; return nil })(context.Background(), nil, nil)
	if !called {
		t.Error("a call without info did not reach the endpoint")
	}

	want := `
# HELP sluice_server_requests_total Calls the server handled, by service, method, status code and calling service (peer).
# TYPE sluice_server_requests_total counter
sluice_server_requests_total{code="DEADLINE_EXCEEDED",method="M",peer="c",service="svc"} 1
sluice_server_requests_total{code="INTERNAL",method="M",peer="c",service="svc"} 2
sluice_server_requests_total{code="UNKNOWN",method="M",peer="c",service="svc"} 2
# HELP sluice_client_requests_total Calls the client made, by service, method, status code, instance address (peer), and the route and subset that route rules chose.
# TYPE sluice_client_requests_total counter
sluice_client_requests_total{code="INTERNAL",method="M",peer="10.0.0.1:1",route="",service="svc",subset=""} 1
sluice_client_requests_total{code="RESOURCE_EXHAUSTED",method="M",peer="10.0.0.1:1",route="",service="svc",subset=""} 1
sluice_client_requests_total{code="UNAVAILABLE",method="M",peer="unknown",route="",service="svc",subset=""} 1
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), "sluice_server_requests_total", "sluice_client_requests_total"); err != nil {
		t.Error(err)
	}
	for _, name := range []string{"sluice_server_in_flight_requests", "sluice_client_in_flight_requests"} {
		if v, ok := sample(t, m.Gatherer(), name, nil); !ok || v != 0 {
			t.Errorf("%s = %v (present %v) after panics, want 0", name, v, ok)
		}
	}
}

// TestLatencyFromCallInfo: the middlewares time a call by its call info's
// Start (both sides) and End (the client's), reading the clock only for
// what the call info lacks: a later attempt's start, a missing End.
func TestLatencyFromCallInfo(t *testing.T) {
	t0 := time.Now().Add(-2 * time.Second)
	for _, tc := range []struct {
		name     string
		info     callinfo.Info
		min, max time.Duration
	}{
		{"client start and end", callinfo.Info{Side: callinfo.Client, Attempt: 1, Start: t0, End: t0.Add(1500 * time.Millisecond)}, 1500 * time.Millisecond, 1500 * time.Millisecond},
		{"client without end", callinfo.Info{Side: callinfo.Client, Attempt: 1, Start: t0}, 2 * time.Second, time.Minute},
		{"client later attempt", callinfo.Info{Side: callinfo.Client, Attempt: 2, Start: t0, End: t0.Add(time.Second)}, 0, time.Second},
		{"client without start", callinfo.Info{Side: callinfo.Client, Attempt: 1}, 0, time.Second},
		{"server start", callinfo.Info{Side: callinfo.Server, Attempt: 1, Start: t0}, 2 * time.Second, time.Minute},
		{"server without start", callinfo.Info{Side: callinfo.Server, Attempt: 1}, 0, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMetrics(t, metrics.Config{NoRuntimeMetrics: true})
			mw, name := m.Server(), "sluice_server_handling_seconds"
			if tc.info.Side == callinfo.Client {
				mw, name = m.Client(), "sluice_client_request_seconds"
			}
			ctx := &callinfo.Carrier{Context: context.Background(), Info: tc.info}
			ctx.Info.Service, ctx.Info.Method = "svc", "M"
			mw(okEndpoint)(ctx, nil, &endpoint.Reply{})
			got := time.Duration(histogramSum(t, m.Gatherer(), name) * float64(time.Second))
			if got < tc.min-time.Millisecond || got > tc.max+time.Millisecond {
				t.Errorf("latency %v, want %v to %v", got, tc.min, tc.max)
			}
		})
	}
}

// histogramSum returns the sum of the one histogram series named name.
func histogramSum(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			return mf.Metric[0].Histogram.GetSampleSum()
		}
	}
	t.Fatalf("no single %s series", name)
	return 0
}

// TestServerSent: the size of a reply, known after the middlewares,
// counts under its method.
func TestServerSent(t *testing.T) {
	m := newMetrics(t, metrics.Config{NoRuntimeMetrics: true})
	m.ServerSent(&callinfo.Info{Service: "svc", Method: "M", SentBytes: 42})
	m.ServerSent(&callinfo.Info{Service: "svc", Method: "N", SentBytes: 7}) // another method
	m.ServerSent(&callinfo.Info{Service: "svc", Method: "M", SentBytes: 8})
	m.ServerSent(&callinfo.Info{Service: "svc", Method: "M"}) // nothing sent: no-op
	m.ServerSent(nil)
	if v := value(t, m.Gatherer(), "sluice_server_sent_bytes_total", lbl("service", "svc", "method", "M")); v != 50 {
		t.Errorf("sent bytes = %v, want 50", v)
	}
	if v := value(t, m.Gatherer(), "sluice_server_sent_bytes_total", lbl("service", "svc", "method", "N")); v != 7 {
		t.Errorf("sent bytes of N = %v, want 7", v)
	}
	var nilM *metrics.Metrics
	nilM.ServerSent(&callinfo.Info{SentBytes: 1})
}

// TestBreaker trips a real breaker whose OnStateChange is the hook.
func TestBreaker(t *testing.T) {
	m := newMetrics(t, metrics.Config{NoRuntimeMetrics: true})
	clock := balancertest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b, err := breaker.New("order.Order/Get", breaker.Config{
		MinRequests:   4,
		Probes:        1,
		BaseSleep:     time.Second,
		Clock:         clock,
		OnStateChange: m.BreakerStateChange,
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if tok, err := b.Allow(); err == nil {
			b.Record(tok, status.Err(codes.Unavailable, "down"), time.Millisecond)
		}
	}
	if b.State() != breaker.Open {
		t.Fatalf("breaker %v, want open", b.State())
	}
	state := func() float64 {
		return value(t, m.Gatherer(), "sluice_breaker_state", lbl("breaker", "order.Order/Get"))
	}
	if s := state(); s != 1 {
		t.Errorf("sluice_breaker_state = %v when open, want 1", s)
	}
	clock.Advance(2 * time.Second)
	tok, err := b.Allow() // the probe: half-open
	if err != nil {
		t.Fatal(err)
	}
	if s := state(); s != 2 {
		t.Errorf("sluice_breaker_state = %v when half-open, want 2", s)
	}
	b.Record(tok, nil, time.Millisecond)
	if s := state(); s != 0 {
		t.Errorf("sluice_breaker_state = %v when closed again, want 0", s)
	}
	want := `
# HELP sluice_breaker_transitions_total Circuit breaker state changes, by breaker and states.
# TYPE sluice_breaker_transitions_total counter
sluice_breaker_transitions_total{breaker="order.Order/Get",from="closed",to="open"} 1
sluice_breaker_transitions_total{breaker="order.Order/Get",from="half-open",to="closed"} 1
sluice_breaker_transitions_total{breaker="order.Order/Get",from="open",to="half-open"} 1
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), "sluice_breaker_transitions_total"); err != nil {
		t.Error(err)
	}
}

// TestGovernanceHooks counts each hook, from many goroutines at once.
func TestGovernanceHooks(t *testing.T) {
	m := newMetrics(t, metrics.Config{NoRuntimeMetrics: true})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				m.Rejected("server", "svc", "Get", "rate_limit")
				m.Retry("svc", "Get")
				m.Hedge("svc", "Get")
				m.Fallback("svc", "List")
				m.Ejection("10.0.0.1:80")
			}
		})
	}
	wg.Wait()
	m.Rejected("client", "svc", "Get", "concurrency")
	m.Ejection("10.0.0.2:80")
	want := `
# HELP sluice_client_ejections_total Times an instance was ejected by outlier detection.
# TYPE sluice_client_ejections_total counter
sluice_client_ejections_total{peer="10.0.0.1:80"} 80
sluice_client_ejections_total{peer="10.0.0.2:80"} 1
# HELP sluice_client_fallbacks_total Calls answered by a fallback.
# TYPE sluice_client_fallbacks_total counter
sluice_client_fallbacks_total{method="List",service="svc"} 80
# HELP sluice_client_hedges_total Hedged attempts the client sent.
# TYPE sluice_client_hedges_total counter
sluice_client_hedges_total{method="Get",service="svc"} 80
# HELP sluice_client_retries_total Retry attempts the client made (the first attempt not included).
# TYPE sluice_client_retries_total counter
sluice_client_retries_total{method="Get",service="svc"} 80
# HELP sluice_rejected_requests_total Calls refused by admission control (rate limits, concurrency limits, load shedding), by side and reason.
# TYPE sluice_rejected_requests_total counter
sluice_rejected_requests_total{method="Get",reason="concurrency",service="svc",side="client"} 1
sluice_rejected_requests_total{method="Get",reason="rate_limit",service="svc",side="server"} 80
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want),
		"sluice_client_ejections_total", "sluice_client_fallbacks_total", "sluice_client_hedges_total",
		"sluice_client_retries_total", "sluice_rejected_requests_total"); err != nil {
		t.Error(err)
	}

	// A nil *Metrics ignores every hook.
	var nilM *metrics.Metrics
	nilM.BreakerStateChange("b", breaker.Closed, breaker.Open)
	nilM.Rejected("server", "s", "m", "r")
	nilM.Retry("s", "m")
	nilM.Hedge("s", "m")
	nilM.Fallback("s", "m")
	nilM.Ejection("a")
}

// The hook has the shape of breaker.Config.OnStateChange.
var _ = breaker.Config{OnStateChange: (*metrics.Metrics)(nil).BreakerStateChange}

func TestConfig(t *testing.T) {
	notGatherer := prometheus.WrapRegistererWith(prometheus.Labels{"x": "y"}, prometheus.NewRegistry())
	for _, c := range []struct {
		name  string
		cfg   metrics.Config
		field string // in the error; "" when valid
	}{
		{"zero", metrics.Config{}, ""},
		{"own registry", metrics.Config{Registerer: prometheus.NewRegistry()}, ""},
		{"buckets", metrics.Config{Buckets: []float64{0.1, 1, 10}}, ""},
		{"const labels", metrics.Config{ConstLabels: prometheus.Labels{"zone": "a"}}, ""},
		{"buckets not increasing", metrics.Config{Buckets: []float64{1, 0.5}}, "Buckets"},
		{"buckets repeated", metrics.Config{Buckets: []float64{1, 1}}, "Buckets"},
		{"max peers negative", metrics.Config{MaxPeers: -1}, "MaxPeers"},
		{"no runtime with registerer", metrics.Config{Registerer: prometheus.NewRegistry(), NoRuntimeMetrics: true}, "NoRuntimeMetrics"},
		{"registerer not gatherer", metrics.Config{Registerer: notGatherer}, "Gatherer"},
		{"registerer and gatherer", metrics.Config{Registerer: notGatherer, Gatherer: prometheus.NewRegistry()}, ""},
		{"const label clashes", metrics.Config{ConstLabels: prometheus.Labels{"service": "a"}}, "registering"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := metrics.New(c.cfg)
			switch {
			case c.field == "" && err != nil:
				t.Fatalf("New: %v", err)
			case c.field != "" && err == nil:
				t.Fatalf("New accepted a bad %s", c.field)
			case err != nil && !strings.Contains(err.Error(), c.field):
				t.Fatalf("New: %v; want it to name %s", err, c.field)
			case err != nil && !strings.HasPrefix(err.Error(), "metrics: "):
				t.Fatalf("New: %v; want the package name first", err)
			case err == nil && m.Handler() == nil:
				t.Fatal("no Handler")
			}
		})
	}
}

// TestBuckets: configured buckets are the histograms'.
func TestBuckets(t *testing.T) {
	m := newMetrics(t, metrics.Config{NoRuntimeMetrics: true, Buckets: []float64{0.1, 1}})
	ctx := &callinfo.Carrier{Context: context.Background()}
	ctx.Info = callinfo.Info{Side: callinfo.Server, Service: "svc", Method: "M"}
	m.Server()(func(_ context.Context, _, resp any) error { resp.(*endpoint.Reply).Msg = 1; return nil })(ctx, nil, &endpoint.Reply{})
	mfs, _ := m.Gatherer().Gather()
	for _, mf := range mfs {
		if mf.GetName() != "sluice_server_handling_seconds" {
			continue
		}
		var got []float64
		for _, b := range mf.Metric[0].Histogram.Bucket {
			got = append(got, b.GetUpperBound())
		}
		if fmt.Sprint(got) != "[0.1 1]" {
			t.Errorf("buckets %v, want [0.1 1]", got)
		}
		return
	}
	t.Error("no sluice_server_handling_seconds")
}

// TestSharedRegisterer: two Metrics on one registerer collide, loudly.
func TestSharedRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	newMetrics(t, metrics.Config{Registerer: reg})
	_, err := metrics.New(metrics.Config{Registerer: reg})
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Fatalf("second New on one registry: %v, want an AlreadyRegisteredError", err)
	}
}

// TestRuntimeMetrics: the default registry has the Go and process
// collectors unless told not to.
func TestRuntimeMetrics(t *testing.T) {
	for _, no := range []bool{false, true} {
		m := newMetrics(t, metrics.Config{NoRuntimeMetrics: no})
		n, err := testutil.GatherAndCount(m.Gatherer(), "go_goroutines")
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 1, true: 0}[no]; n != want {
			t.Errorf("NoRuntimeMetrics %v: %d go_goroutines, want %d", no, n, want)
		}
	}
}

// scrape GETs url and returns the body; it fails the test unless 200.
func scrape(t *testing.T, url string) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

// TestMaxPeersConcurrent: however callers race, a method keeps at most
// MaxPeers peers and counts the rest under "other", losing no call.
func TestMaxPeersConcurrent(t *testing.T) {
	m := newMetrics(t, metrics.Config{NoRuntimeMetrics: true, MaxPeers: 10})
	ep := m.Server()(func(_ context.Context, _, resp any) error { resp.(*endpoint.Reply).Msg = 1; return nil })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				ctx := &callinfo.Carrier{Context: context.Background()}
				ctx.Info = callinfo.Info{Side: callinfo.Server, Service: "svc", Method: "M", Caller: fmt.Sprintf("caller-%d-%d", g, i)}
				ep(ctx, nil, &endpoint.Reply{})
			}
		})
	}
	wg.Wait()
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	peers, total, other := 0, 0.0, 0.0
	for _, mf := range mfs {
		if mf.GetName() != "sluice_server_requests_total" {
			continue
		}
		for _, s := range mf.Metric {
			peers++
			total += s.Counter.GetValue()
			for _, l := range s.Label {
				if l.GetName() == "peer" && l.GetValue() == metrics.OtherPeer {
					other = s.Counter.GetValue()
				}
			}
		}
	}
	if peers != 11 || total != 400 || other != 390 {
		t.Errorf("%d peer series, %v calls, %v under other; want 11, 400, 390", peers, total, other)
	}
}

// TestConcurrentCounts: calls on many goroutines, to more peers than the
// per-core shards keep, with several codes, add up exactly, and a scrape
// in the middle never sees fewer calls in flight than none (nor a count
// that wrapped around).
func TestConcurrentCounts(t *testing.T) {
	m := newMetrics(t, metrics.Config{NoRuntimeMetrics: true})
	notFound := status.Err(codes.NotFound, "x")
	ep := m.Client()(func(_ context.Context, _, _ any) error { return nil })
	failing := m.Client()(func(_ context.Context, _, _ any) error { return notFound })
	const goroutines, calls, peers = 8, 300, 12
	stop := make(chan struct{})
	scraped := make(chan error, 1)
	go func() {
		defer close(scraped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			mfs, err := m.Gatherer().Gather()
			if err != nil {
				scraped <- err
				return
			}
			for _, mf := range mfs {
				if mf.GetName() != "sluice_client_in_flight_requests" {
					continue
				}
				if v := mf.Metric[0].Gauge.GetValue(); v < 0 || v > goroutines*calls {
					scraped <- fmt.Errorf("in flight %v", v)
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				ctx := &callinfo.Carrier{Context: context.Background()}
				ctx.Info = callinfo.Info{Side: callinfo.Client, Service: "svc", Method: "M", Attempt: 1,
					Peer: fmt.Sprintf("10.0.0.%d:1", (g+i)%peers), SentBytes: 3, ReceivedBytes: 5}
				if i%3 == 0 {
					failing(ctx, nil, nil)
				} else {
					ep(ctx, nil, nil)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-scraped; err != nil {
		t.Error(err)
	}
	const total = goroutines * calls
	want := map[string]float64{}
	for g := range goroutines {
		for i := range calls {
			code := "OK"
			if i%3 == 0 {
				code = "NOT_FOUND"
			}
			want[fmt.Sprintf("10.0.0.%d:1/%s", (g+i)%peers, code)]++
		}
	}
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "sluice_client_requests_total":
			for _, s := range mf.Metric {
				l := map[string]string{}
				for _, lp := range s.Label {
					l[lp.GetName()] = lp.GetValue()
				}
				got[l["peer"]+"/"+l["code"]] = s.Counter.GetValue()
			}
		case "sluice_client_request_seconds":
			if n := mf.Metric[0].Histogram.GetSampleCount(); n != total {
				t.Errorf("latency count %d, want %d", n, total)
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	for name, per := range map[string]float64{"sluice_client_sent_bytes_total": 3, "sluice_client_received_bytes_total": 5} {
		if v := value(t, m.Gatherer(), name, nil); v != per*total {
			t.Errorf("%s = %v, want %v", name, v, per*total)
		}
	}
	if v := value(t, m.Gatherer(), "sluice_client_in_flight_requests", nil); v != 0 {
		t.Errorf("in flight %v after the calls, want 0", v)
	}
}
