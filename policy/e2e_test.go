package policy_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicerpc/sluice/balancer/balancertest"
	"github.com/sluicerpc/sluice/balancer/roundrobin"
	"github.com/sluicerpc/sluice/breaker"
	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/config/etcdstore"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/examples/echo/echotest"
	"github.com/sluicerpc/sluice/fallback"
	"github.com/sluicerpc/sluice/internal/etcdtest"
	"github.com/sluicerpc/sluice/limit"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/policy"
	"github.com/sluicerpc/sluice/server"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// counted is an echo instance that counts the calls it receives and, when
// asked, the calls that arrived with a deadline.
type counted struct {
	echo.Service
	calls, withDeadline atomic.Int64
}

func (c *counted) Echo(ctx context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	c.calls.Add(1)
	if _, ok := ctx.Deadline(); ok {
		c.withDeadline.Add(1)
	}
	return c.Service.Echo(ctx, req)
}

// start starts an echo instance failing failRate of its calls, slowed by
// delay.
func start(t *testing.T, failRate float64, delay time.Duration) (string, *counted) {
	t.Helper()
	var impl *counted
	addr := echotest.Serve(t, func(addr string) echopb.EchoServiceServer {
		impl = &counted{Service: echo.Service{ServedBy: addr, FailRate: failRate, Delay: delay}}
		return impl
	})
	return addr, impl
}

func table(t *testing.T, yaml string, opts ...policy.TableOption) *policy.Table {
	t.Helper()
	var specs []policy.TrafficPolicy
	if yaml != "" {
		p, err := decode(t, "apiVersion: sluice/v1\nkind: TrafficPolicy\nmetadata: {name: echo}\nspec:\n"+yaml)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, *p)
	}
	tb, err := policy.NewTable(specs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// load makes n calls from c callers and returns the errors by message and
// the latencies, sorted.
func load(t *testing.T, cl echopb.EchoServiceClient, n, c int) (errs map[string]int, lat []time.Duration) {
	t.Helper()
	var mu sync.Mutex
	errs = map[string]int{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				start := time.Now()
				_, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "x"})
				d := time.Since(start)
				mu.Lock()
				lat = append(lat, d)
				if err != nil {
					errs[err.Error()]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return errs, lat
}

func total(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

// TestOneInstanceDown: three instances, one failing every call. With the
// default breakers and a retry policy from a document, callers see at most
// 1% errors. Under round robin, which keeps sending the failing instance
// its share, the instance's breaker opens and keeps calls off it; under
// the default balancer (P2C with outlier ejection) the instance hardly
// gets a call.
func TestOneInstanceDown(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []client.Option
	}{
		{"round robin", []client.Option{client.WithBalancer(roundrobin.Builder{})}},
		{"default balancer", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad, badImpl := start(t, 1, 0)
			good1, _ := start(t, 0, 0)
			good2, _ := start(t, 0, 0)
			var opened atomic.Int64
			tb := table(t, "  service: "+svc+"\n  retries: {maxAttempts: 2}\n",
				policy.WithBreakerStateChange(func(name string, from, to breaker.State) {
					if name == bad && to == breaker.Open {
						opened.Add(1)
					}
				}))
			c, err := client.New(bad+","+good1+","+good2, append(tc.opts, client.WithPolicy(tb))...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const n = 3000
			errs, _ := load(t, echopb.NewEchoServiceClient(c), n, 8)
			t.Logf("%d calls: %d errors %v; the failing instance received %d; its breaker opened %d times",
				n, total(errs), errs, badImpl.calls.Load(), opened.Load())
			if e := total(errs); e > n/100 {
				t.Errorf("%d errors in %d calls, want at most 1%%: %v", e, n, errs)
			}
			if got := badImpl.calls.Load(); got > n/10 {
				t.Errorf("the failing instance received %d of %d calls; it should be kept off", got, n)
			}
			if tc.opts != nil {
				if got := tb.Instances(svc).Get(bad).State(); got != breaker.Open || opened.Load() == 0 {
					t.Errorf("the failing instance's breaker is %v (opened %d times), want open", got, opened.Load())
				}
			}
		})
	}
}

// TestRetryBudgetUnderTotalFailure: every instance fails every call; the
// retry budget keeps the calls the servers receive at 1.1× the calls made
// (plus the budget's per-second floor, here 0.1/s × 10s = 1).
func TestRetryBudgetUnderTotalFailure(t *testing.T) {
	var impls []*counted
	var addrs string
	for i := 0; i < 3; i++ {
		a, impl := start(t, 1, 0)
		impls = append(impls, impl)
		if i > 0 {
			addrs += ","
		}
		addrs += a
	}
	tb := table(t, "  service: "+svc+`
  retries: {maxAttempts: 5, initialBackoff: 1ms, maxBackoff: 2ms, budget: {minPerSecond: 0.1}}
  breaker: {disabled: true}
`)
	c, err := client.New(addrs, client.WithPolicy(tb))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 2000
	errs, _ := load(t, echopb.NewEchoServiceClient(c), n, 8)
	var received int64
	for _, impl := range impls {
		received += impl.calls.Load()
	}
	ratio := float64(received) / n
	t.Logf("%d calls made, %d received by the servers (%.3f×), %d failed", n, received, ratio, total(errs))
	if total(errs) != n {
		t.Errorf("%d of %d calls failed; every call should fail", total(errs), n)
	}
	if max := int64(n*1.1) + 1; received > max {
		t.Errorf("servers received %d calls for %d made (%.3f×), want at most %d", received, n, ratio, max)
	}
	if received <= n {
		t.Errorf("servers received %d calls for %d made: no retry at all", received, n)
	}
}

// TestHedgingFromPolicy: with one instance 50ms slower, a policy that
// hedges after 10ms cuts the p99 below the slow instance's delay.
func TestHedgingFromPolicy(t *testing.T) {
	slow, _ := start(t, 0, 50*time.Millisecond)
	fast, _ := start(t, 0, 0)
	run := func(yaml string) time.Duration {
		// Round robin sends the slow instance half the calls; the default
		// balancer would learn to avoid it, hiding what hedging does.
		c, err := client.New(slow+","+fast, client.WithBalancer(roundrobin.Builder{}), client.WithPolicy(table(t, yaml)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		errs, lat := load(t, echopb.NewEchoServiceClient(c), 300, 4)
		if len(errs) > 0 {
			t.Fatalf("errors: %v", errs)
		}
		return lat[len(lat)*99/100]
	}
	plain := run("  service: " + svc + "\n  breaker: {disabled: true}\n")
	hedged := run("  service: " + svc + "\n  breaker: {disabled: true}\n  methods: {Echo: {idempotent: true, hedging: {delay: 10ms}}}\n")
	t.Logf("p99 without hedging %v, with hedging after 10ms %v", plain, hedged)
	if plain < 50*time.Millisecond {
		t.Errorf("p99 without hedging is %v; the slow instance should show (≥ 50ms)", plain)
	}
	if hedged >= 45*time.Millisecond {
		t.Errorf("p99 with hedging is %v, want well below the slow instance's 50ms", hedged)
	}
}

// TestPolicyChangeUnderLoad: a TrafficPolicy applied to etcd while calls
// run takes effect in the running client (calls start carrying the
// policy's timeout) with no failed call and no restart; deleting it takes
// the timeout away again.
func TestPolicyChangeUnderLoad(t *testing.T) {
	dir := t.TempDir()
	e, ep, err := etcdtest.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cli := etcdtest.Client(t, ep)
	store := etcdstore.New(cli)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := config.Watch(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tb := table(t, "")
	stop := tb.Follow(w)
	defer stop()

	a1, i1 := start(t, 0, 0)
	a2, i2 := start(t, 0, 0)
	c, err := client.New(a1+","+a2, client.WithPolicy(tb))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := echopb.NewEchoServiceClient(c)

	var calls, failed atomic.Int64
	var firstErr atomic.Value
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "x"}); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				calls.Add(1)
			}
		}()
	}
	deadlined := func() int64 { return i1.withDeadline.Load() + i2.withDeadline.Load() }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		limit := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(limit) {
				t.Fatalf("after 10s: %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("calls run", func() bool { return calls.Load() > 200 })
	if n := deadlined(); n != 0 {
		t.Fatalf("%d calls carried a deadline before any policy", n)
	}

	docs, err := config.Parse([]byte(fmt.Sprintf(`apiVersion: sluice/v1
kind: TrafficPolicy
metadata: {name: echo}
spec:
  service: %s
  timeout: 5s
  retries: {maxAttempts: 2}
`, svc)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Apply(ctx, docs); err != nil {
		t.Fatal(err)
	}
	waitFor("calls carry the policy's timeout", func() bool { return deadlined() > 100 })
	if got := tb.Policies(); len(got) != 1 || time.Duration(got[0].Timeout) != 5*time.Second {
		t.Fatalf("table holds %+v", got)
	}

	// A bad document is refused by the store; the running policy stays.
	bad, err := config.Parse([]byte("apiVersion: sluice/v1\nkind: TrafficPolicy\nmetadata: {name: echo}\nspec: {service: " + svc + ", timeout: -1s}\n"))
	if err == nil {
		_, err = store.Apply(ctx, bad)
	}
	if err == nil {
		t.Fatal("a TrafficPolicy with a negative timeout was accepted")
	}
	if got := tb.Policies(); len(got) != 1 || time.Duration(got[0].Timeout) != 5*time.Second {
		t.Fatalf("after a refused document the table holds %+v", got)
	}

	if _, err := store.Delete(ctx, policy.Kind, "echo", 0); err != nil {
		t.Fatal(err)
	}
	waitFor("the policy is gone from the table", func() bool { return len(tb.Policies()) == 0 })
	before := deadlined()
	n0 := calls.Load()
	waitFor("more calls run", func() bool { return calls.Load() > n0+200 })
	close(done)
	wg.Wait()
	if after := deadlined(); after-before > 8 { // calls already in flight at the switch
		t.Errorf("%d calls carried a deadline after the policy was deleted", after-before)
	}
	t.Logf("%d calls, %d failed", calls.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d calls failed during the policy changes; first: %v", failed.Load(), firstErr.Load())
	}
}

// TestTimeoutFromPolicy: a method timeout bounds a call to a slow instance
// and names the deadline; a caller's sooner deadline wins.
func TestTimeoutFromPolicy(t *testing.T) {
	slow, _ := start(t, 0, time.Second)
	tb := table(t, "  service: "+svc+"\n  breaker: {disabled: true}\n  methods: {Echo: {timeout: 50ms}}\n")
	c, err := client.New(slow, client.WithPolicy(tb))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := echopb.NewEchoServiceClient(c)
	start := time.Now()
	_, err = cl.Echo(context.Background(), &echopb.EchoRequest{Message: "x"})
	if took := time.Since(start); status.Code(err) != codes.DeadlineExceeded || took > 500*time.Millisecond {
		t.Fatalf("call to a 1s-slow instance under a 50ms policy timeout: err %v after %v, want DeadlineExceeded soon after 50ms", err, took)
	}
	if !strings.Contains(err.Error(), "50ms") {
		t.Errorf("the error does not name the 50ms deadline: %v", err)
	}
}

// TestServerLimitsFromPolicy: a server under server.WithPolicy turns calls
// over the method's rate away with ResourceExhausted and retry-after-ms;
// an update raising the rate applies to the running server.
func TestServerLimitsFromPolicy(t *testing.T) {
	clk := balancertest.NewClock(time.Unix(1_700_000_000, 0))
	tb := table(t, "  service: "+svc+"\n  limits: {methods: {Echo: {qps: 1, burst: 2}}}\n", policy.WithClock(clk))
	addr := echotest.ServeWith(t, func(addr string) echopb.EchoServiceServer { return &echo.Service{ServedBy: addr} }, server.WithPolicy(tb))
	c, err := client.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := echopb.NewEchoServiceClient(c)
	call := func() (metadata.MD, error) {
		var md metadata.MD
		_, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "x"}, client.ResponseMetadata(&md))
		return md, err
	}
	for i := 0; i < 2; i++ {
		if _, err := call(); err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	md, err := call()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "Echo") {
		t.Fatalf("third call = %v, want ResourceExhausted naming the method", err)
	}
	if got := md.Value(limit.RetryAfterKey); got != "1000" {
		t.Errorf("retry-after-ms = %q, want 1000", got)
	}
	clk.Advance(time.Second)
	if _, err := call(); err != nil {
		t.Fatalf("after a second a token is back: %v", err)
	}
	p := tb.Policies()[0]
	p.Limits.Methods = map[string]limit.Rate{"Echo": {QPS: 1000, Burst: 100}}
	if err := tb.Update([]policy.TrafficPolicy{p}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := call(); err != nil {
			t.Fatalf("call %d after raising the rate: %v", i, err)
		}
	}
}

// TestFallbackCacheFromPolicy: once a request has had a good answer, a
// failing instance's reply to the same request is replaced by the cached
// one, marked in the response metadata; another request still fails.
func TestFallbackCacheFromPolicy(t *testing.T) {
	var failing atomic.Bool
	addr := echotest.Serve(t, func(addr string) echopb.EchoServiceServer {
		return flaky{Service: &echo.Service{ServedBy: addr}, failing: &failing}
	})
	tb := table(t, "  service: "+svc+"\n  breaker: {disabled: true}\n  fallback: {cache: true, ttl: 1m}\n")
	c, err := client.New(addr, client.WithPolicy(tb))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := echopb.NewEchoServiceClient(c)
	if _, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "a"}); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	var md metadata.MD
	resp, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "a"}, client.ResponseMetadata(&md))
	if err != nil || resp.Message != "a" || md.Value(fallback.MetadataKey) != "cache" {
		t.Fatalf("failing call with a cached answer = %v, %v, md %v; want the cached reply marked cache", resp, err, md)
	}
	if _, err := cl.Echo(context.Background(), &echopb.EchoRequest{Message: "b"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("failing call without a cached answer = %v, want Unavailable", err)
	}
}

type flaky struct {
	*echo.Service
	failing *atomic.Bool
}

func (f flaky) Echo(ctx context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	if f.failing.Load() {
		return nil, status.Err(codes.Unavailable, "flaky: down")
	}
	return f.Service.Echo(ctx, req)
}

// TestFallbackFuncFromPolicy: a policy naming the program's fallback
// function answers failed calls with it; a policy asking for a function the
// program did not register has no fallback.
func TestFallbackFuncFromPolicy(t *testing.T) {
	addr, _ := start(t, 1, 0)
	fn := func(ctx context.Context, req, resp any, err error) error {
		resp.(*echopb.EchoResponse).Message = "fallback for " + req.(*echopb.EchoRequest).Message
		return nil
	}
	for _, tc := range []struct {
		name string
		opts []policy.TableOption
		want string
	}{
		{"registered", []policy.TableOption{policy.WithFallbackFunc("/"+svc+"/Echo", fn)}, "fallback for a"},
		{"not registered", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := table(t, "  service: "+svc+"\n  breaker: {disabled: true}\n  methods: {Echo: {fallback: {func: true}}}\n", tc.opts...)
			c, err := client.New(addr, client.WithPolicy(tb))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var md metadata.MD
			resp, err := echopb.NewEchoServiceClient(c).Echo(context.Background(), &echopb.EchoRequest{Message: "a"}, client.ResponseMetadata(&md))
			if tc.want == "" {
				if status.Code(err) != codes.Unavailable {
					t.Fatalf("call = %v, %v; want the instance's Unavailable", resp, err)
				}
				return
			}
			if err != nil || resp.Message != tc.want || md.Value(fallback.MetadataKey) != "func" {
				t.Fatalf("call = %v, %v, md %v; want %q marked func", resp, err, md, tc.want)
			}
		})
	}
}

// recorder is an Observer that counts what it is told.
type recorder struct {
	mu     sync.Mutex
	counts map[string]int
}

func (r *recorder) add(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = map[string]int{}
	}
	r.counts[k]++
}

func (r *recorder) get(k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[k]
}

func (r *recorder) BreakerStateChange(name string, from, to breaker.State) {
	r.add("breaker " + to.String())
}
func (r *recorder) Rejected(side, service, method, reason string) {
	r.add("rejected " + side + " " + method + " " + reason)
}
func (r *recorder) Retry(service, method string)    { r.add("retry " + method) }
func (r *recorder) Hedge(service, method string)    { r.add("hedge " + method) }
func (r *recorder) Fallback(service, method string) { r.add("fallback " + method) }

// TestObserver: retries, breaker changes, client and server rejections and
// fallbacks reach the table's Observer.
func TestObserver(t *testing.T) {
	bad, _ := start(t, 1, 0)
	rec := &recorder{}
	tb := table(t, "  service: "+svc+`
  retries: {maxAttempts: 2, initialBackoff: 1ms}
  breaker: {minRequests: 5, perInstance: false}
  fallback: {cache: true}
`, policy.WithObserver(rec))
	c, err := client.New(bad, client.WithPolicy(tb))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := echopb.NewEchoServiceClient(c)
	for i := 0; i < 20; i++ {
		cl.Echo(context.Background(), &echopb.EchoRequest{Message: "x"})
	}
	if rec.get("retry Echo") == 0 || rec.get("breaker open") == 0 || rec.get("rejected client Echo breaker") == 0 {
		t.Errorf("observer saw %v; want retries, the breaker opening, and breaker rejections", rec.counts)
	}

	// Server side: a limit's rejection.
	srec := &recorder{}
	stb := table(t, "  service: "+svc+"\n  limits: {methods: {Echo: {qps: 1, burst: 1}}}\n", policy.WithObserver(srec))
	addr := echotest.ServeWith(t, func(addr string) echopb.EchoServiceServer { return &echo.Service{ServedBy: addr} }, server.WithPolicy(stb))
	sc, err := client.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for i := 0; i < 3; i++ {
		echopb.NewEchoServiceClient(sc).Echo(context.Background(), &echopb.EchoRequest{Message: "x"})
	}
	if srec.get("rejected server Echo limit") == 0 {
		t.Errorf("server observer saw %v; want a limit rejection", srec.counts)
	}

	// A fallback answer.
	frec := &recorder{}
	var failing atomic.Bool
	faddr := echotest.Serve(t, func(addr string) echopb.EchoServiceServer {
		return flaky{Service: &echo.Service{ServedBy: addr}, failing: &failing}
	})
	ftb := table(t, "  service: "+svc+"\n  breaker: {disabled: true}\n  fallback: {cache: true}\n", policy.WithObserver(frec))
	fc, err := client.New(faddr, client.WithPolicy(ftb))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	fcl := echopb.NewEchoServiceClient(fc)
	fcl.Echo(context.Background(), &echopb.EchoRequest{Message: "x"})
	failing.Store(true)
	if _, err := fcl.Echo(context.Background(), &echopb.EchoRequest{Message: "x"}); err != nil || frec.get("fallback Echo") != 1 {
		t.Errorf("fallback call: %v; observer saw %v", err, frec.counts)
	}
}
