package fallback_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/balancer/balancertest"
	"github.com/sluicerpc/sluice/breaker"
	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/fallback"
	"github.com/sluicerpc/sluice/limit"
	"github.com/sluicerpc/sluice/status"
)

var (
	unavailable = status.Err(codes.Unavailable, "backend down")
	invalid     = status.Err(codes.InvalidArgument, "bad request")
)

// call is one call in a table case: the request, what the backend does,
// how long after the previous call it comes, and what the caller sees.
type call struct {
	msg     string        // the request's Message
	after   time.Duration // clock advance before the call
	backend error         // nil: the backend answers "backend:<msg>"

	wantCode codes.Code
	wantResp string // the response's ServedBy when the call succeeds
	wantMark string // the sluice-fallback metadata, "" for none
}

func newCall() *callinfo.Carrier {
	return &callinfo.Carrier{Context: context.Background(), Info: callinfo.Info{
		Side: callinfo.Client, Service: "echo.EchoService", Method: "Echo", FullMethod: "/echo.EchoService/Echo", Attempt: 1,
	}}
}

// fillFunc is a Config.Func that answers "func:<msg>".
func fillFunc(ctx context.Context, req, resp any, err error) error {
	r := resp.(*echopb.EchoResponse)
	if r.ServedBy != "" {
		return fmt.Errorf("func handed a response holding %q", r.ServedBy)
	}
	r.ServedBy = "func:" + req.(*echopb.EchoRequest).Message
	return nil
}

func TestFallback(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   fallback.Config
		calls []call
	}{{
		name: "cache hit after error",
		cfg:  fallback.Config{Cache: true},
		calls: []call{
			{msg: "x", wantResp: "backend:x"},
			{msg: "x", backend: unavailable, wantResp: "backend:x", wantMark: "cache"},
		},
	}, {
		name: "another request misses",
		cfg:  fallback.Config{Cache: true},
		calls: []call{
			{msg: "x", wantResp: "backend:x"},
			{msg: "y", backend: unavailable, wantCode: codes.Unavailable},
		},
	}, {
		name: "the newest good response is served",
		cfg:  fallback.Config{Cache: true},
		calls: []call{
			{msg: "x", wantResp: "backend:x"},
			{msg: "x", backend: unavailable, wantResp: "backend:x", wantMark: "cache"},
			{msg: "x", wantResp: "backend:x"},
		},
	}, {
		name: "ttl expiry",
		cfg:  fallback.Config{Cache: true, TTL: 30 * time.Second},
		calls: []call{
			{msg: "x", wantResp: "backend:x"},
			{msg: "x", after: 29 * time.Second, backend: unavailable, wantResp: "backend:x", wantMark: "cache"},
			{msg: "x", after: time.Second, backend: unavailable, wantCode: codes.Unavailable},
		},
	}, {
		name: "default ttl is a minute",
		cfg:  fallback.Config{Cache: true},
		calls: []call{
			{msg: "x", wantResp: "backend:x"},
			{msg: "x", after: 59 * time.Second, backend: unavailable, wantResp: "backend:x", wantMark: "cache"},
			{msg: "x", after: time.Second, backend: unavailable, wantCode: codes.Unavailable},
		},
	}, {
		name: "caller errors do not fall back",
		cfg:  fallback.Config{Cache: true, Func: fillFunc},
		calls: []call{
			{msg: "x", wantResp: "backend:x"},
			{msg: "x", backend: invalid, wantCode: codes.InvalidArgument},
			{msg: "x", backend: status.Err(codes.NotFound, "no"), wantCode: codes.NotFound},
			{msg: "x", backend: status.Err(codes.Canceled, "caller gave up"), wantCode: codes.Canceled},
		},
	}, {
		name: "func fills the response",
		cfg:  fallback.Config{Func: fillFunc},
		calls: []call{
			{msg: "x", backend: unavailable, wantResp: "func:x", wantMark: "func"},
			{msg: "x", backend: status.Err(codes.DeadlineExceeded, "slow"), wantResp: "func:x", wantMark: "func"},
		},
	}, {
		name: "func error is returned",
		cfg: fallback.Config{Func: func(ctx context.Context, req, resp any, err error) error {
			return status.Errorf(codes.Unavailable, "no fallback either: %v", err)
		}},
		calls: []call{{msg: "x", backend: unavailable, wantCode: codes.Unavailable}},
	}, {
		name: "cache first, then func",
		cfg:  fallback.Config{Cache: true, Func: fillFunc},
		calls: []call{
			{msg: "x", wantResp: "backend:x"},
			{msg: "x", backend: unavailable, wantResp: "backend:x", wantMark: "cache"},
			{msg: "y", backend: unavailable, wantResp: "func:y", wantMark: "func"},
		},
	}, {
		name: "failures are not cached",
		cfg:  fallback.Config{Cache: true},
		calls: []call{
			{msg: "x", backend: unavailable, wantCode: codes.Unavailable},
			{msg: "x", backend: unavailable, wantCode: codes.Unavailable},
		},
	}, {
		name: "custom when",
		cfg: fallback.Config{Func: fillFunc, When: func(err error) bool {
			return status.Code(err) == codes.NotFound
		}},
		calls: []call{
			{msg: "x", backend: unavailable, wantCode: codes.Unavailable},
			{msg: "x", backend: status.Err(codes.NotFound, "no"), wantResp: "func:x", wantMark: "func"},
		},
	}, {
		name: "custom key",
		cfg: fallback.Config{Cache: true, Key: func(info *callinfo.Info, req any) (string, bool) {
			m := req.(*echopb.EchoRequest).Message
			return m[:1], m != "nocache"
		}},
		calls: []call{
			{msg: "x1", wantResp: "backend:x1"},
			{msg: "x2", backend: unavailable, wantResp: "backend:x1", wantMark: "cache"},
			{msg: "nocache", wantResp: "backend:nocache"},
			{msg: "nocache", backend: unavailable, wantCode: codes.Unavailable},
		},
	}, {
		name: "size bounds the cache, least recently used first",
		cfg:  fallback.Config{Cache: true, Size: 2},
		calls: []call{
			{msg: "a", wantResp: "backend:a"},
			{msg: "b", wantResp: "backend:b"},
			// Serving a makes it the most recently used, so c evicts b.
			{msg: "a", backend: unavailable, wantResp: "backend:a", wantMark: "cache"},
			{msg: "c", wantResp: "backend:c"},
			{msg: "b", backend: unavailable, wantCode: codes.Unavailable},
			{msg: "a", backend: unavailable, wantResp: "backend:a", wantMark: "cache"},
			{msg: "c", backend: unavailable, wantResp: "backend:c", wantMark: "cache"},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			clock := balancertest.NewClock(time.Unix(1000, 0))
			cfg := tc.cfg
			cfg.Clock = clock
			f, err := fallback.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var backendErr error
			ep := f.Middleware()(func(ctx context.Context, req, resp any) error {
				r := resp.(*echopb.EchoResponse)
				r.ServedBy = "partial" // what a failed call may leave behind
				if backendErr != nil {
					return backendErr
				}
				r.ServedBy = "backend:" + req.(*echopb.EchoRequest).Message
				return nil
			})
			for i, c := range tc.calls {
				clock.Advance(c.after)
				backendErr = c.backend
				ci := newCall()
				resp := &echopb.EchoResponse{}
				err := ep(ci, &echopb.EchoRequest{Message: c.msg}, resp)
				if got := status.Code(err); got != c.wantCode {
					t.Fatalf("call %d (%s): %v, want code %v", i, c.msg, err, c.wantCode)
				}
				if err == nil && resp.ServedBy != c.wantResp {
					t.Errorf("call %d (%s): served by %q, want %q", i, c.msg, resp.ServedBy, c.wantResp)
				}
				if got := ci.Info.ResponseMetadata.Value(fallback.MetadataKey); got != c.wantMark {
					t.Errorf("call %d (%s): %s = %q, want %q", i, c.msg, fallback.MetadataKey, got, c.wantMark)
				}
			}
		})
	}
}

// TestCachedResponseIsACopy: the caller may change the response it was
// served without changing the cache.
func TestCachedResponseIsACopy(t *testing.T) {
	f, err := fallback.New(fallback.Config{Cache: true})
	if err != nil {
		t.Fatal(err)
	}
	fail := false
	ep := f.Middleware()(func(ctx context.Context, req, resp any) error {
		if fail {
			return unavailable
		}
		resp.(*echopb.EchoResponse).Payload = []byte("good")
		return nil
	})
	req := &echopb.EchoRequest{Message: "x"}
	first := &echopb.EchoResponse{}
	if err := ep(newCall(), req, first); err != nil {
		t.Fatal(err)
	}
	first.Payload[0] = 'X' // the caller owns what it got
	fail = true
	for range 2 {
		resp := &echopb.EchoResponse{}
		if err := ep(newCall(), req, resp); err != nil {
			t.Fatal(err)
		}
		if string(resp.Payload) != "good" {
			t.Fatalf("served %q", resp.Payload)
		}
		resp.Payload[0] = 'Y'
	}
}

// TestBreakerOpenFallsBack: once a real breaker has tripped, calls fail
// with its ErrOpen error without reaching the backend, and are answered
// from the cache.
func TestBreakerOpenFallsBack(t *testing.T) {
	clock := balancertest.NewClock(time.Unix(1000, 0))
	set, err := breaker.NewSet(breaker.Config{MinRequests: 4, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	var seen []error
	f, err := fallback.New(fallback.Config{Cache: true, Clock: clock, When: func(err error) bool {
		seen = append(seen, err)
		return fallback.DefaultWhen(err)
	}})
	if err != nil {
		t.Fatal(err)
	}
	backendCalls := 0
	ep := endpoint.Chain(f.Middleware(), breaker.Middleware(set))(func(ctx context.Context, req, resp any) error {
		backendCalls++
		if backendCalls > 1 {
			return unavailable
		}
		resp.(*echopb.EchoResponse).ServedBy = "backend"
		return nil
	})
	for i := range 6 {
		ci := newCall()
		resp := &echopb.EchoResponse{}
		if err := ep(ci, &echopb.EchoRequest{Message: "x"}, resp); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if resp.ServedBy != "backend" {
			t.Fatalf("call %d: served by %q", i, resp.ServedBy)
		}
		if i > 0 && ci.Info.ResponseMetadata.Value(fallback.MetadataKey) != "cache" {
			t.Fatalf("call %d: not marked as served from the cache", i)
		}
	}
	// 1 success + 3 failures trip the breaker; the last two calls never
	// reach the backend.
	if backendCalls != 4 {
		t.Fatalf("backend called %d times, want 4", backendCalls)
	}
	if s := set.Method("echo.EchoService", "Echo").State(); s != breaker.Open {
		t.Fatalf("breaker %v", s)
	}
	if last := seen[len(seen)-1]; !errors.Is(last, breaker.ErrOpen) {
		t.Fatalf("last failure %v, want the breaker's", last)
	}
}

func TestDefaultWhen(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{status.Wrap(codes.Unavailable, "breaker: x is open", breaker.ErrOpen), true},
		{status.Wrap(codes.ResourceExhausted, "limit: over", limit.ErrLimited), true},
		{fmt.Errorf("wrapped: %w", limit.ErrLimited), true},
		{unavailable, true},
		{status.Err(codes.DeadlineExceeded, ""), true},
		{status.Err(codes.ResourceExhausted, ""), true},
		{status.Err(codes.Internal, ""), true},
		{errors.New("no status: Unknown"), true},
		{invalid, false},
		{status.Err(codes.NotFound, ""), false},
		{status.Err(codes.Canceled, ""), false},
		{context.Canceled, false},
		{status.Err(codes.PermissionDenied, ""), false},
		{status.Err(codes.FailedPrecondition, ""), false},
	} {
		if got := fallback.DefaultWhen(tc.err); got != tc.want {
			t.Errorf("DefaultWhen(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestDefaultKey(t *testing.T) {
	info := &callinfo.Info{FullMethod: "/s/M"}
	a, ok1 := fallback.DefaultKey(info, &echopb.EchoRequest{Message: "x", Payload: []byte{1}})
	b, ok2 := fallback.DefaultKey(info, &echopb.EchoRequest{Message: "x", Payload: []byte{1}})
	c, _ := fallback.DefaultKey(&callinfo.Info{FullMethod: "/s/N"}, &echopb.EchoRequest{Message: "x", Payload: []byte{1}})
	if !ok1 || !ok2 || a != b || a == c || !strings.HasPrefix(a, "/s/M\x00") {
		t.Fatalf("keys %q %q %q", a, b, c)
	}
	if _, ok := fallback.DefaultKey(info, "not a message"); ok {
		t.Fatal("keyed a request that is not a proto.Message")
	}
	if _, ok := fallback.DefaultKey(nil, &echopb.EchoRequest{}); ok {
		t.Fatal("keyed a call without info")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  fallback.Config
		want string
	}{
		{fallback.Config{}, "neither func nor cache"},
		{fallback.Config{Cache: true, TTL: -1}, "ttl"},
		{fallback.Config{Cache: true, Size: -1}, "size"},
	} {
		_, err := fallback.New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
}

// TestSuccessPathDoesNotAllocate: with the cache off, a successful call
// costs the fallback nothing.
func TestSuccessPathDoesNotAllocate(t *testing.T) {
	f, err := fallback.New(fallback.Config{Func: fillFunc})
	if err != nil {
		t.Fatal(err)
	}
	ep := f.Middleware()(func(ctx context.Context, req, resp any) error { return nil })
	ci, req, resp := newCall(), &echopb.EchoRequest{Message: "x"}, &echopb.EchoResponse{}
	if n := testing.AllocsPerRun(100, func() { _ = ep(ci, req, resp) }); n != 0 {
		t.Fatalf("%v allocations per successful call", n)
	}
}

func BenchmarkSuccess(b *testing.B) {
	for _, cache := range []bool{false, true} {
		b.Run(fmt.Sprintf("cache=%v", cache), func(b *testing.B) {
			f, err := fallback.New(fallback.Config{Cache: cache, Func: fillFunc})
			if err != nil {
				b.Fatal(err)
			}
			ep := f.Middleware()(func(ctx context.Context, req, resp any) error {
				resp.(*echopb.EchoResponse).ServedBy = "backend"
				return nil
			})
			ci, req, resp := newCall(), &echopb.EchoRequest{Message: "hello", Payload: make([]byte, 64)}, &echopb.EchoResponse{}
			b.ReportAllocs()
			for b.Loop() {
				_ = ep(ci, req, resp)
			}
		})
	}
}

func BenchmarkServeFromCache(b *testing.B) {
	f, err := fallback.New(fallback.Config{Cache: true})
	if err != nil {
		b.Fatal(err)
	}
	fail := false
	ep := f.Middleware()(func(ctx context.Context, req, resp any) error {
		if fail {
			return unavailable
		}
		resp.(*echopb.EchoResponse).ServedBy = "backend"
		return nil
	})
	ci, req, resp := newCall(), &echopb.EchoRequest{Message: "hello", Payload: make([]byte, 64)}, &echopb.EchoResponse{}
	_ = ep(ci, req, resp)
	fail = true
	b.ReportAllocs()
	for b.Loop() {
		if err := ep(ci, req, resp); err != nil {
			b.Fatal(err)
		}
	}
}
