package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/internal/loadgen"
	"github.com/sluicerpc/sluice/observe/metrics"
	"github.com/sluicerpc/sluice/server"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

func newMetrics(t *testing.T) *metrics.Metrics {
	t.Helper()
	m, err := metrics.New(metrics.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// get fetches url without keeping connections open.
func get(t *testing.T, method, url string, body io.Reader) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// adminAddr waits for Serve to open the admin listener.
func adminAddr(t *testing.T, s *server.Server) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if a := s.AdminAddr(); a != "" {
			return a
		}
	}
	t.Fatal("no admin listener 5s after Serve")
	return ""
}

func gzipped(b []byte) bool { return len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b }

// TestAdminAndPublicPorts: profiles on the admin port only, /metrics on
// both.
func TestAdminAndPublicPorts(t *testing.T) {
	m := newMetrics(t)
	f := start(t, server.WithMetrics(m), server.WithAdminAddr("127.0.0.1:0"))
	admin := adminAddr(t, f.srv)
	if _, err := dial(t, f.addr).Echo(context.Background(), &echopb.EchoRequest{Message: "hi"}); err != nil {
		t.Fatal(err)
	}
	pc := reflect.ValueOf(TestAdminAndPublicPorts).Pointer()
	for _, c := range []struct {
		port, method, path string
		body               string
		code               int
		check              func([]byte) bool
	}{
		{f.addr, "GET", "/metrics", "", 200, contains(`sluice_server_requests_total{code="OK",method="Echo",peer="unknown",service="sluice.examples.echo.v1.EchoService"} 1`)},
		{admin, "GET", "/metrics", "", 200, contains(`sluice_server_requests_total{code="OK",method="Echo",peer="unknown",service="sluice.examples.echo.v1.EchoService"} 1`)},
		{f.addr, "HEAD", "/metrics", "", 200, nil},
		{f.addr, "GET", "/debug/pprof/", "", 404, nil},
		{f.addr, "GET", "/debug/pprof/goroutine?debug=1", "", 404, nil},
		{f.addr, "GET", "/debug/pprof/profile?seconds=0.1", "", 404, nil},
		{f.addr, "GET", "/debug/pprof/cmdline", "", 404, nil},
		{admin, "GET", "/debug/pprof/", "", 200, contains(`href="goroutine?debug=1"`)},
		{admin, "GET", "/debug/pprof/goroutine?debug=1", "", 200, contains("goroutine profile:")},
		{admin, "GET", "/debug/pprof/goroutine?debug=2", "", 200, contains("goroutine ")},
		{admin, "GET", "/debug/pprof/heap?gc=1", "", 200, gzipped},
		{admin, "GET", "/debug/pprof/allocs", "", 200, gzipped},
		{admin, "GET", "/debug/pprof/profile?seconds=0.2", "", 200, gzipped},
		{admin, "GET", "/debug/pprof/trace?seconds=0.1", "", 200, func(b []byte) bool { return bytes.HasPrefix(b, []byte("go 1.")) }},
		{admin, "GET", "/debug/pprof/cmdline", "", 200, contains("server.test")},
		{admin, "GET", "/debug/pprof/symbol", "", 200, contains("num_symbols: 1")},
		{admin, "POST", "/debug/pprof/symbol", fmt.Sprintf("%#x", pc), 200, contains("server_test.TestAdminAndPublicPorts")},
		{admin, "GET", "/debug/pprof/nosuch", "", 404, nil},
		{admin, "GET", "/", "", 404, nil},
		{admin, "POST", "/metrics", "", 405, nil},
	} {
		code, body, _ := get(t, c.method, "http://"+c.port+c.path, strings.NewReader(c.body))
		where := "public"
		if c.port == admin {
			where = "admin"
		}
		if code != c.code {
			t.Errorf("%s %s on the %s port: %d, want %d", c.method, c.path, where, code, c.code)
			continue
		}
		if c.check != nil && !c.check(body) {
			t.Errorf("%s %s on the %s port: unexpected body %.300q", c.method, c.path, where, body)
		}
	}
}

func contains(s string) func([]byte) bool {
	return func(b []byte) bool { return bytes.Contains(b, []byte(s)) }
}

// TestNoMetricsNoRoute: without WithMetrics, /metrics is an ordinary
// unknown path on both ports, and the admin port still has profiles.
func TestNoMetricsNoRoute(t *testing.T) {
	f := start(t, server.WithAdminAddr("127.0.0.1:0"))
	admin := adminAddr(t, f.srv)
	if code, _, _ := get(t, "GET", "http://"+f.addr+"/metrics", nil); code != 404 {
		t.Errorf("public /metrics without metrics: %d, want 404", code)
	}
	if code, _, _ := get(t, "GET", "http://"+admin+"/metrics", nil); code != 404 {
		t.Errorf("admin /metrics without metrics: %d, want 404", code)
	}
	if code, _, _ := get(t, "GET", "http://"+admin+"/debug/pprof/", nil); code != 200 {
		t.Errorf("admin /debug/pprof/: %d, want 200", code)
	}
}

// TestPprofNotOnDefaultServeMux: importing the server registers nothing
// on http.DefaultServeMux, as importing net/http/pprof would.
func TestPprofNotOnDefaultServeMux(t *testing.T) {
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/profile", "/metrics"} {
		if _, pattern := http.DefaultServeMux.Handler(httptest.NewRequest("GET", p, nil)); pattern != "" {
			t.Errorf("http.DefaultServeMux serves %s (pattern %q)", p, pattern)
		}
	}
}

// TestAdminLifecycle: the admin listener opens with Serve and closes
// with Stop and with GracefulStop.
func TestAdminLifecycle(t *testing.T) {
	for _, graceful := range []bool{false, true} {
		t.Run(fmt.Sprint("graceful=", graceful), func(t *testing.T) {
			s := server.New(server.WithLogger(slog.New(slog.DiscardHandler)), server.WithAdminAddr("127.0.0.1:0"))
			if a := s.AdminAddr(); a != "" {
				t.Fatalf("AdminAddr before Serve = %q", a)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.Serve(ln) }()
			admin := adminAddr(t, s)
			if code, _, _ := get(t, "GET", "http://"+admin+"/debug/pprof/", nil); code != 200 {
				t.Fatalf("admin port: %d", code)
			}
			if graceful {
				if err := s.GracefulStop(context.Background()); err != nil {
					t.Fatal(err)
				}
			} else {
				s.Stop()
			}
			if err := <-done; !errors.Is(err, server.ErrServerStopped) {
				t.Errorf("Serve = %v", err)
			}
			if a := s.AdminAddr(); a != "" {
				t.Errorf("AdminAddr after stop = %q", a)
			}
			if c, err := net.DialTimeout("tcp", admin, time.Second); err == nil {
				c.Close()
				t.Errorf("admin port %s still accepts after stop", admin)
			}
		})
	}
}

// TestAdminAddrInUse: Serve fails, saying why, and serves nothing.
func TestAdminAddrInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s := server.New(server.WithLogger(slog.New(slog.DiscardHandler)), server.WithAdminAddr(busy.Addr().String()))
	defer s.Stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = s.Serve(ln)
	if err == nil || errors.Is(err, server.ErrServerStopped) || !strings.HasPrefix(err.Error(), "server: admin listener") {
		t.Fatalf("Serve with a busy admin address = %v", err)
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the public listener still accepts after Serve failed")
	}
}

// TestWithMetricsPlacement: the metrics middleware is outermost whatever
// the order of the options, so calls rejected by other middlewares count;
// the last WithMetrics wins; WithMetrics(nil) turns metrics off.
func TestWithMetricsPlacement(t *testing.T) {
	reject := func(endpoint.Endpoint) endpoint.Endpoint {
		return func(context.Context, any, any) error {
			return status.Err(codes.ResourceExhausted, "test: over the limit")
		}
	}
	m1, m2 := newMetrics(t), newMetrics(t)
	f := start(t, server.WithMiddleware(reject), server.WithMetrics(m1), server.WithMetrics(m2))
	_, err := dial(t, f.addr).Echo(context.Background(), &echopb.EchoRequest{Message: "hi"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("call: %v", err)
	}
	count := func(m *metrics.Metrics) int {
		mfs, err := m.Gatherer().Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, mf := range mfs {
			if mf.GetName() != "sluice_server_requests_total" {
				continue
			}
			for _, s := range mf.Metric {
				for _, l := range s.Label {
					if l.GetName() == "code" && l.GetValue() != "RESOURCE_EXHAUSTED" {
						t.Errorf("counted with code %s", l.GetValue())
					}
				}
				n += int(s.Counter.GetValue())
			}
		}
		return n
	}
	if n := count(m1); n != 0 {
		t.Errorf("the replaced Metrics counted %d calls", n)
	}
	if n := count(m2); n != 1 {
		t.Errorf("the last Metrics counted %d calls, want 1", n)
	}

	off := start(t, server.WithMetrics(m1), server.WithMetrics(nil))
	if _, err := dial(t, off.addr).Echo(context.Background(), &echopb.EchoRequest{Message: "hi"}); err != nil {
		t.Fatal(err)
	}
	if n := count(m1); n != 0 {
		t.Errorf("WithMetrics(nil) still counted %d calls", n)
	}
	if code, _, _ := get(t, "GET", "http://"+off.addr+"/metrics", nil); code != 404 {
		t.Errorf("/metrics after WithMetrics(nil): %d, want 404", code)
	}
}

// TestCallBytes: every protocol reports the encoded sizes of the request
// and the reply in the call info, on both sides, and the server's metrics
// count them.
func TestCallBytes(t *testing.T) {
	for _, p := range []client.Protocol{client.Native, client.GRPC, client.Connect} {
		t.Run(p.String(), func(t *testing.T) {
			var serverReceived atomic.Int64
			m := newMetrics(t)
			f := start(t, server.WithMetrics(m), server.WithMiddleware(func(next endpoint.Endpoint) endpoint.Endpoint {
				return func(ctx context.Context, req, resp any) error {
					serverReceived.Store(int64(callinfo.FromContext(ctx).ReceivedBytes))
					return next(ctx, req, resp)
				}
			}))
			var clientSent, clientReceived int
			cl := dial(t, f.addr, client.WithProtocol(p), client.WithMiddleware(func(next endpoint.Endpoint) endpoint.Endpoint {
				return func(ctx context.Context, req, resp any) error {
					err := next(ctx, req, resp)
					info := callinfo.FromContext(ctx)
					clientSent, clientReceived = info.SentBytes, info.ReceivedBytes
					return err
				}
			}))
			req := &echopb.EchoRequest{Message: "hello", Payload: bytes.Repeat([]byte{1}, 1000)}
			resp, err := cl.Echo(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if want := proto.Size(req); clientSent != want || serverReceived.Load() != int64(want) {
				t.Errorf("request bytes: client sent %d, server received %d; want %d", clientSent, serverReceived.Load(), want)
			}
			want := proto.Size(resp)
			if clientReceived != want {
				t.Errorf("reply bytes: client received %d, want %d", clientReceived, want)
			}
			// The server reports the reply's size once it is encoded,
			// after the chain: it may land a moment after the client's.
			var sent float64
			for deadline := time.Now().Add(5 * time.Second); sent != float64(want) && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				sent = metricValue(t, m, "sluice_server_sent_bytes_total")
			}
			if sent != float64(want) {
				t.Errorf("sluice_server_sent_bytes_total = %v, want %d", sent, want)
			}
			if got := metricValue(t, m, "sluice_server_received_bytes_total"); got != float64(proto.Size(req)) {
				t.Errorf("sluice_server_received_bytes_total = %v, want %d", got, proto.Size(req))
			}
			// An error reply's body is counted where the protocol has one
			// (gRPC's status travels in trailers).
			if _, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "err:5"}); status.Code(err) != codes.NotFound {
				t.Fatal(err)
			}
			if (clientReceived == 0) != (p == client.GRPC) {
				t.Errorf("an error reply counted %d bytes", clientReceived)
			}
			runtime.KeepAlive(resp)
		})
	}
}

// metricValue is the value of the counter name summed over its series.
func metricValue(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, mt := range mf.GetMetric() {
				v += mt.GetCounter().GetValue()
			}
		}
	}
	return v
}

// BenchmarkMetricsOverhead runs BenchmarkCallParallel's load with and
// without metrics on both sides. cpu-ns/op, the process's CPU time per
// call, is the figure to compare on a busy machine, where ns/op is noise.
func BenchmarkMetricsOverhead(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "metrics"}[on], func(b *testing.B) {
			var sopts []server.Option
			var copts []client.Option
			if on {
				m, err := metrics.New(metrics.Config{})
				if err != nil {
					b.Fatal(err)
				}
				sopts = append(sopts, server.WithMetrics(m))
				copts = append(copts, client.WithMiddleware(m.Client()))
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			s := server.New(sopts...)
			echopb.RegisterEchoServiceServer(s, &testEcho{})
			go s.Serve(ln)
			defer s.Stop()
			c, err := client.New(ln.Addr().String(), copts...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			cl := echopb.NewEchoServiceClient(c)
			req := &echopb.EchoRequest{Message: "bench", Payload: bytes.Repeat([]byte{'x'}, 1024)}
			b.ReportAllocs()
			b.SetParallelism(50)
			b.ResetTimer()
			cpu0 := loadgen.ProcessCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := cl.Echo(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(loadgen.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
