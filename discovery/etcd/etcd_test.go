package etcd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/discovery"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var quiet = slog.New(slog.DiscardHandler)

// node is one embedded etcd member with fixed ports and data dir, so that
// it can be stopped and started again as the same member.
type node struct {
	name      string
	dir       string
	clientURL url.URL
	peerURL   url.URL
	tickMs    uint
	e         *embed.Etcd
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// newNodes makes n members of one cluster, not started.
func newNodes(t testing.TB, n int) []*node {
	if n > 1 {
		t.Cleanup(func() { settle(t) })
	}
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = &node{
			name:      fmt.Sprintf("n%d", i),
			dir:       t.TempDir(),
			clientURL: url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", freePort(t))},
			peerURL:   url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", freePort(t))},
			tickMs:    20,
		}
		if n > 1 {
			nodes[i].tickMs = 50 // fewer spurious elections under -race
		}
		t.Cleanup(nodes[i].stop)
	}
	return nodes
}

// settle waits, after the members of a cluster stopped, for the goroutines
// they leave behind for a few seconds to end (HTTP connections between
// members, closed by a read timeout), so that the leak check at the end
// sees only real leaks.
func settle(t testing.TB) {
	start := time.Now()
	for time.Since(start) < 15*time.Second {
		if goleak.Find() == nil {
			if d := time.Since(start); d > time.Second {
				t.Logf("etcd's goroutines took %v to end", d.Round(time.Millisecond))
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("not settled: %v", goleak.Find())
}

func cluster(nodes []*node) string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.name+"="+n.peerURL.String())
	}
	return strings.Join(s, ",")
}

func endpoints(nodes ...*node) []string {
	var eps []string
	for _, n := range nodes {
		eps = append(eps, n.clientURL.Host)
	}
	return eps
}

// launch starts n without waiting for it to be ready.
func (n *node) launch(t testing.TB, initialCluster string) {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = n.name
	cfg.Dir = n.dir
	cfg.ListenClientUrls = []url.URL{n.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{n.clientURL}
	cfg.ListenPeerUrls = []url.URL{n.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{n.peerURL}
	cfg.InitialCluster = initialCluster
	cfg.InitialClusterToken = "sluice-test"
	cfg.TickMs = n.tickMs
	cfg.ElectionMs = 10 * n.tickMs
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("starting etcd %s: %v", n.name, err)
	}
	n.e = e
}

func (n *node) waitReady(t testing.TB) {
	t.Helper()
	select {
	case <-n.e.Server.ReadyNotify():
	case err := <-n.e.Err():
		t.Fatalf("etcd %s: %v", n.name, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("etcd %s not ready after 30s", n.name)
	}
}

func (n *node) start(t testing.TB, initialCluster string) {
	t.Helper()
	n.launch(t, initialCluster)
	n.waitReady(t)
}

func (n *node) stop() {
	if n.e != nil {
		n.e.Close()
		n.e = nil
	}
}

// startEtcd starts a one-member cluster.
func startEtcd(t testing.TB) *node {
	t.Helper()
	n := newNodes(t, 1)[0]
	n.start(t, cluster([]*node{n}))
	return n
}

func newRegistry(t testing.TB, cfg Config) *Registry {
	t.Helper()
	r, err := NewRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func newResolver(t testing.TB, cfg Config) *Resolver {
	t.Helper()
	r, err := NewResolver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// newClient dials eps the way the package does.
func newClient(t testing.TB, eps []string) *clientv3.Client {
	t.Helper()
	cfg, err := Config{Endpoints: eps}.build()
	if err != nil {
		t.Fatal(err)
	}
	cli, _, err := cfg.client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// recorder keeps every snapshot a Resolver hands over.
type recorder struct {
	mu    sync.Mutex
	snaps [][]discovery.Instance
}

func (r *recorder) update(ins []discovery.Instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps = append(r.snaps, ins)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.snaps)
}

// since returns the snapshots from the i-th on.
func (r *recorder) since(i int) [][]discovery.Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.snaps[i:])
}

// addrs describes the last snapshot: "a,b", "" when empty, "<none>".
func (r *recorder) addrs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snaps) == 0 {
		return "<none>"
	}
	return addrsOf(r.snaps[len(r.snaps)-1])
}

func (r *recorder) last() []discovery.Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snaps) == 0 {
		return nil
	}
	return r.snaps[len(r.snaps)-1]
}

func addrsOf(ins []discovery.Instance) string {
	var s []string
	for _, in := range ins {
		s = append(s, in.Addr)
	}
	return strings.Join(s, ",")
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// consistently checks that cond holds throughout d.
func consistently(t testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !cond() {
			t.Fatalf(format, args...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestEndpoints(t *testing.T) {
	for _, tc := range []struct {
		in, env string
		want    []string
	}{
		{"127.0.0.1:2379", "", []string{"127.0.0.1:2379"}},
		{"etcd://127.0.0.1:2379,127.0.0.1:22379", "", []string{"127.0.0.1:2379", "127.0.0.1:22379"}},
		{" http://a:2379 , ,https://b:2379 ", "", []string{"http://a:2379", "https://b:2379"}},
		{"", "", []string{"127.0.0.1:2379"}},
		{"", "etcd://10.0.0.1:2379,10.0.0.2:2379", []string{"10.0.0.1:2379", "10.0.0.2:2379"}},
		{"10.0.0.9:2379", "10.0.0.1:2379", []string{"10.0.0.9:2379"}},
		{"etcd://", "", []string{"127.0.0.1:2379"}},
	} {
		t.Setenv(EnvEndpoints, tc.env)
		if got := Endpoints(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Endpoints(%q) with %s=%q = %q, want %q", tc.in, EnvEndpoints, tc.env, got, tc.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Setenv(EnvEndpoints, "")
	cfg, err := Config{}.build()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Endpoints, []string{DefaultEndpoint}) || cfg.TTL != 10*time.Second ||
		cfg.DialTimeout != 5*time.Second || cfg.RequestTimeout != 5*time.Second ||
		cfg.Prefix != DefaultPrefix || cfg.Logger == nil {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg, _ = Config{TTL: 1500 * time.Millisecond, Prefix: "/x"}.build()
	if cfg.TTL != 2*time.Second || cfg.Prefix != "/x/" {
		t.Errorf("TTL %v, Prefix %q; want 2s, /x/", cfg.TTL, cfg.Prefix)
	}
	if _, err := (Config{TTL: -time.Second}).build(); err == nil {
		t.Error("negative TTL accepted")
	}
}

func TestInvalidNames(t *testing.T) {
	// Nothing here reaches etcd, so no server is needed.
	cfg := Config{Endpoints: []string{"127.0.0.1:1"}, Logger: quiet}
	reg := newRegistry(t, cfg)
	res := newResolver(t, cfg)
	ctx := context.Background()
	for _, in := range []discovery.Instance{
		{Service: "", Addr: "127.0.0.1:1"},
		{Service: "a/b", Addr: "127.0.0.1:1"},
		{Service: "a", Addr: ""},
	} {
		if err := reg.Register(ctx, in); err == nil {
			t.Errorf("Register(%+v) succeeded", in)
		}
		if err := reg.Deregister(ctx, in); err == nil {
			t.Errorf("Deregister(%+v) succeeded", in)
		}
	}
	for _, s := range []string{"", "a/b"} {
		if _, err := res.Resolve(ctx, s, func([]discovery.Instance) {}); err == nil {
			t.Errorf("Resolve(%q) succeeded", s)
		}
	}
}

func TestEtcdDownAtStart(t *testing.T) {
	n := newNodes(t, 1)[0] // not started yet
	ctx := ctxT(t)
	cfg := Config{Endpoints: endpoints(n), RequestTimeout: 300 * time.Millisecond, Logger: quiet}
	reg := newRegistry(t, cfg)
	res := newResolver(t, cfg)
	a := discovery.Instance{Service: "echo", Addr: "127.0.0.1:1001"}

	// Register fails: nothing is registered behind the caller's back.
	if err := reg.Register(ctx, a); err == nil {
		t.Fatal("Register succeeded with etcd down")
	}
	// Resolve gives up waiting for the first snapshot, not for good.
	var rec recorder
	start := time.Now()
	w, err := res.Resolve(ctx, "echo", rec.update)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if rec.count() != 0 || time.Since(start) > 5*time.Second {
		t.Fatalf("Resolve with etcd down: %v after %v", rec.since(0), time.Since(start))
	}
	// Closing does not wait for etcd.
	w2, err := res.Resolve(ctx, "other", func([]discovery.Instance) {})
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	w2.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("closing a watch with etcd down took %v", d)
	}
	// But a caller's own deadline is final.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := res.Resolve(short, "echo", func([]discovery.Instance) {}); err == nil {
		t.Error("Resolve past its context's deadline succeeded")
	}

	n.start(t, cluster([]*node{n}))
	eventually(t, 10*time.Second, func() bool { return rec.count() == 1 && rec.addrs() == "" }, "no first snapshot: %v", rec.since(0))
	eventually(t, 10*time.Second, func() bool { return reg.Register(ctx, a) == nil }, "cannot register")
	eventually(t, 10*time.Second, func() bool { return rec.addrs() == a.Addr }, "resolver has %q", rec.addrs())
}

func TestRegisterResolve(t *testing.T) {
	n := startEtcd(t)
	ctx := ctxT(t)
	cfg := Config{Endpoints: endpoints(n), TTL: 2 * time.Second, Logger: quiet}
	reg := newRegistry(t, cfg)
	res := newResolver(t, cfg)
	var watches atomic.Int64
	res.beforeWatch = func(string, int64) { watches.Add(1) }

	var rec recorder
	w, err := res.Resolve(ctx, "echo", rec.update)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if rec.count() != 1 || len(rec.last()) != 0 {
		t.Fatalf("Resolve returned with snapshots %v, want one empty snapshot", rec.since(0))
	}

	a := discovery.Instance{Service: "echo", Addr: "127.0.0.1:1001", Weight: 7, Labels: map[string]string{"version": "v2", "lane": "gray"}}
	b := discovery.Instance{Service: "echo", Addr: "127.0.0.1:1002"}
	other := discovery.Instance{Service: "echo2", Addr: "127.0.0.1:1003"} // shares a name prefix
	for _, in := range []discovery.Instance{a, b, other} {
		if err := reg.Register(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	want := []discovery.Instance{a, b}
	eventually(t, 10*time.Second, func() bool { return reflect.DeepEqual(rec.last(), want) },
		"resolver has %v, want %v", rec.last(), want)

	// The key layout is a documented interface.
	cli := newClient(t, endpoints(n))
	got, err := cli.Get(ctx, "/sluice/services/echo/127.0.0.1:1001")
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("get key: %v, %v", got, err)
	}
	kv := got.Kvs[0]
	const wantJSON = `{"service":"echo","addr":"127.0.0.1:1001","weight":7,"labels":{"lane":"gray","version":"v2"}}`
	if string(kv.Value) != wantJSON || kv.Lease == 0 {
		t.Errorf("key value %s, lease %x; want %s under a lease", kv.Value, kv.Lease, wantJSON)
	}

	// A second Resolve has the current snapshot when it returns.
	var rec2 recorder
	w2, err := res.Resolve(ctx, "echo", rec2.update)
	if err != nil {
		t.Fatal(err)
	}
	if snaps := rec2.since(0); len(snaps) != 1 || !reflect.DeepEqual(snaps[0], want) {
		t.Errorf("second Resolve returned with %v, want [%v]", snaps, want)
	}
	w2.Close()

	// Registering again updates, under the same lease.
	a2 := a
	a2.Weight, a2.Labels = 9, map[string]string{"version": "v3"}
	if err := reg.Register(ctx, a2); err != nil {
		t.Fatal(err)
	}
	want = []discovery.Instance{a2, b}
	eventually(t, 10*time.Second, func() bool { return reflect.DeepEqual(rec.last(), want) },
		"resolver has %v, want %v", rec.last(), want)
	if got, err := cli.Get(ctx, "/sluice/services/echo/127.0.0.1:1001"); err != nil || got.Kvs[0].Lease != kv.Lease {
		t.Errorf("update changed the lease: %v, %v", got, err)
	}

	if err := reg.Deregister(ctx, a); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return rec.addrs() == b.Addr }, "resolver has %q after deregistering a", rec.addrs())
	if err := reg.Deregister(ctx, b); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return rec.addrs() == "" }, "resolver has %q after deregistering all", rec.addrs())
	if resp, err := cli.Leases(ctx); err != nil || len(resp.Leases) != 1 { // other's
		t.Errorf("leases after deregistering: %v, %v; want only other's", resp, err)
	}

	// Two Resolves, two watches: no resync without a reason.
	if n := watches.Load(); n != 2 {
		t.Errorf("%d etcd watches started for 2 Resolves", n)
	}

	// Every snapshot is sorted and differs from the one before.
	snaps := rec.since(0)
	for i, s := range snaps {
		if !slices.IsSortedFunc(s, func(x, y discovery.Instance) int { return strings.Compare(x.Addr, y.Addr) }) {
			t.Errorf("snapshot %d not sorted: %v", i, s)
		}
		if i > 0 && reflect.DeepEqual(s, snaps[i-1]) {
			t.Errorf("snapshot %d repeats the one before: %v", i, s)
		}
	}

	// Close deregisters what is left.
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if resp, err := cli.Get(ctx, DefaultPrefix, clientv3.WithPrefix()); err != nil || len(resp.Kvs) != 0 {
		t.Errorf("keys after Close: %v, %v", resp, err)
	}
	if err := reg.Register(ctx, a); err != ErrClosed {
		t.Errorf("Register after Close: %v, want ErrClosed", err)
	}
}

func TestLeaseExpiresWhenProcessDies(t *testing.T) {
	n := startEtcd(t)
	ctx := ctxT(t)
	proc := newClient(t, endpoints(n)) // the registering process's connection
	reg := newRegistry(t, Config{Client: proc, TTL: time.Second, Logger: quiet})
	res := newResolver(t, Config{Endpoints: endpoints(n), Logger: quiet})
	var rec recorder
	w, err := res.Resolve(ctx, "echo", rec.update)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := reg.Register(ctx, discovery.Instance{Service: "echo", Addr: "127.0.0.1:1001"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return rec.addrs() == "127.0.0.1:1001" }, "not registered: %q", rec.addrs())

	// The process dies: its connection goes, nobody deregisters.
	killed := time.Now()
	proc.Close()
	eventually(t, 10*time.Second, func() bool { return rec.addrs() == "" }, "still registered: %q", rec.addrs())
	t.Logf("instance gone %v after its process died (TTL 1s)", time.Since(killed).Round(time.Millisecond))
}

func TestEtcdRestart(t *testing.T) {
	n := startEtcd(t)
	ctx := ctxT(t)
	const ttl = 2 * time.Second
	cfg := Config{Endpoints: endpoints(n), TTL: ttl, Logger: quiet}
	reg := newRegistry(t, cfg)
	res := newResolver(t, cfg)
	var rec recorder
	w, err := res.Resolve(ctx, "echo", rec.update)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	a := discovery.Instance{Service: "echo", Addr: "127.0.0.1:1001"}
	if err := reg.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return rec.addrs() == a.Addr }, "not registered: %q", rec.addrs())
	key := DefaultPrefix + "echo/" + a.Addr
	cli := newClient(t, endpoints(n))
	lease := func() clientv3.LeaseID {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, key)
		if err != nil || len(resp.Kvs) == 0 {
			return 0
		}
		return clientv3.LeaseID(resp.Kvs[0].Lease)
	}
	before := lease()
	mark := rec.count()

	// Down for longer than the TTL: the registry's keep-alive gives up, and
	// it must register anew once etcd is back. (Stopping is graceful: it
	// takes 5 s while our streams are open, serving them.) The sleep is the
	// outage, not a wait for a condition.
	n.stop()
	time.Sleep(ttl + time.Second)
	if got := rec.count(); got != mark {
		t.Errorf("resolver handed over %v while etcd was down", rec.since(mark))
	}
	n.start(t, cluster([]*node{n}))
	restarted := time.Now()

	var after clientv3.LeaseID
	eventually(t, 15*time.Second, func() bool { after = lease(); return after != 0 && after != before },
		"key still under lease %x (or gone) after the restart", before)
	t.Logf("registered again %v after etcd came back", time.Since(restarted).Round(time.Millisecond))
	// Registering fails until etcd answers again; callers retry.
	b := discovery.Instance{Service: "echo", Addr: "127.0.0.1:1002"}
	eventually(t, 15*time.Second, func() bool { return reg.Register(ctx, b) == nil }, "cannot register after the restart")
	eventually(t, 10*time.Second, func() bool { return rec.addrs() == a.Addr+","+b.Addr }, "resolver has %q after the restart", rec.addrs())
	// The old lease (etcd extended it on restart) goes, and does not take
	// the key with it.
	eventually(t, 2*ttl+5*time.Second, func() bool {
		r, err := cli.TimeToLive(ctx, before)
		return err == nil && r.TTL == -1
	}, "old lease %x still alive", before)
	if l := lease(); l != after || rec.addrs() != a.Addr+","+b.Addr {
		t.Errorf("after the old lease went: key under lease %x (want %x), resolver has %q", l, after, rec.addrs())
	}
	// An empty snapshot after the restart would be true (a's old lease
	// expired before a was registered again: possible with a 2 s TTL on a
	// starved machine), so it is reported, not failed.
	for _, s := range rec.since(mark) {
		if len(s) == 0 {
			t.Logf("a's old lease expired before a was registered again: %v", rec.since(mark))
			break
		}
	}
}

func TestEtcdLosesData(t *testing.T) {
	n := startEtcd(t)
	ctx := ctxT(t)
	cfg := Config{Endpoints: endpoints(n), TTL: 2 * time.Second, Logger: quiet}
	reg := newRegistry(t, cfg)
	res := newResolver(t, cfg)
	var rec recorder
	w, err := res.Resolve(ctx, "echo", rec.update)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	a := discovery.Instance{Service: "echo", Addr: "127.0.0.1:1001"}
	if err := reg.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	for i := range 20 { // revisions the new etcd will not reach soon
		if err := reg.Register(ctx, discovery.Instance{Service: "other", Addr: "127.0.0.1:1", Weight: i + 1}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() bool { return rec.addrs() == a.Addr }, "not registered: %q", rec.addrs())

	// etcd comes back empty, at revision 1, as an embedded etcd on a
	// temporary directory does. The registry finds its lease gone and
	// registers again; the resolver's watch, resumed at a revision etcd
	// has not reached, would see nothing.
	n.stop()
	n.dir = t.TempDir()
	n.start(t, cluster([]*node{n}))
	b := discovery.Instance{Service: "echo", Addr: "127.0.0.1:1002"}
	eventually(t, 15*time.Second, func() bool { return reg.Register(ctx, b) == nil }, "cannot register after the restart")
	eventually(t, 15*time.Second, func() bool { return rec.addrs() == a.Addr+","+b.Addr },
		"resolver has %q after etcd lost its data", rec.addrs())
}

func TestCompactionResync(t *testing.T) {
	n := startEtcd(t)
	ctx := ctxT(t)
	cfg := Config{Endpoints: endpoints(n), TTL: 5 * time.Second, Logger: quiet}
	reg := newRegistry(t, cfg)
	res := newResolver(t, cfg)
	cli := newClient(t, endpoints(n))

	// Hold the first watch back until history has been compacted past it.
	release := make(chan struct{})
	var mu sync.Mutex
	var revs []int64
	res.beforeWatch = func(_ string, rev int64) {
		mu.Lock()
		revs = append(revs, rev)
		first := len(revs) == 1
		mu.Unlock()
		if first {
			<-release
		}
	}
	watchRevs := func() []int64 { mu.Lock(); defer mu.Unlock(); return slices.Clone(revs) }

	in := func(addr string) discovery.Instance { return discovery.Instance{Service: "echo", Addr: addr} }
	if err := reg.Register(ctx, in("a:1")); err != nil {
		t.Fatal(err)
	}
	var rec recorder
	w, err := res.Resolve(ctx, "echo", rec.update)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	eventually(t, 10*time.Second, func() bool { return len(watchRevs()) == 1 }, "watch never started")

	for _, step := range []struct {
		register bool
		addr     string
	}{
		{true, "b:1"}, {false, "b:1"}, {true, "c:1"}, {true, "b:1"},
		{true, "d:1"}, {false, "a:1"}, {false, "b:1"},
	} {
		var err error
		if step.register {
			err = reg.Register(ctx, in(step.addr))
		} else {
			err = reg.Deregister(ctx, in(step.addr))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	resp, err := cli.Get(ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	compacted := resp.Header.Revision
	if compacted <= watchRevs()[0]+1 {
		t.Fatalf("compaction revision %d does not pass the watch start %d", compacted, watchRevs()[0]+1)
	}
	if _, err := cli.Compact(ctx, compacted, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	close(release)

	eventually(t, 10*time.Second, func() bool { return rec.addrs() == "c:1,d:1" }, "resolver has %q, want c:1,d:1", rec.addrs())
	if r := watchRevs(); len(r) < 2 || r[1] < compacted {
		t.Errorf("watch starts %v; want a second one from %d or later", r, compacted)
	}
	// One snapshot from the first listing, one from the resync: the
	// compacted history is skipped, never replayed half.
	if snaps := rec.since(0); len(snaps) != 2 || addrsOf(snaps[0]) != "a:1" {
		t.Errorf("snapshots %v, want [a:1] then [c:1 d:1]", snaps)
	}
	// And the new watch follows changes.
	if err := reg.Register(ctx, in("e:1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return rec.addrs() == "c:1,d:1,e:1" }, "resolver has %q after the resync", rec.addrs())
}

func TestClusterLosesNode(t *testing.T) {
	nodes := newNodes(t, 3)
	for _, n := range nodes {
		n.launch(t, cluster(nodes))
	}
	for _, n := range nodes {
		n.waitReady(t)
	}
	ctx := ctxT(t)
	const ttl = 2 * time.Second
	cfg := Config{Endpoints: endpoints(nodes...), TTL: ttl, Logger: quiet}
	reg := newRegistry(t, cfg)
	res := newResolver(t, cfg)
	var rec recorder
	w, err := res.Resolve(ctx, "echo", rec.update)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	a := discovery.Instance{Service: "echo", Addr: "127.0.0.1:1001"}
	b := discovery.Instance{Service: "echo", Addr: "127.0.0.1:1002"}
	if err := reg.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return rec.addrs() == a.Addr }, "not registered: %q", rec.addrs())

	// Lose the leader: the worst member to lose.
	var leader *node
	eventually(t, 10*time.Second, func() bool {
		for _, n := range nodes {
			if n.e.Server.Leader() == n.e.Server.MemberID() {
				leader = n
				return true
			}
		}
		return false
	}, "no leader")
	leader.stop()
	t.Logf("stopped the leader, %s", leader.name)

	// Registering may fail while the rest elect a leader; callers retry.
	eventually(t, 15*time.Second, func() bool { return reg.Register(ctx, b) == nil }, "cannot register with two of three members")
	eventually(t, 10*time.Second, func() bool { return rec.addrs() == a.Addr+","+b.Addr }, "resolver has %q", rec.addrs())
	consistently(t, 2*ttl, func() bool { return rec.addrs() == a.Addr+","+b.Addr }, "registration lost with two of three members: %q", rec.addrs())
	if err := reg.Deregister(ctx, a); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return rec.addrs() == b.Addr }, "resolver has %q after deregistering", rec.addrs())
}

// BenchmarkPropagation measures how long one registration change takes to
// reach 50 resolvers, each with its own etcd connection, on an embedded
// etcd. Each op is one change (add an instance, or remove the oldest once
// 100 are registered); run with -benchtime=1000x for 1,000 changes.
// Metrics: p50-ms, p99-ms and max-ms of the time from the start of
// Register/Deregister until the last of the 50 resolvers has the change.
func BenchmarkPropagation(b *testing.B) {
	const resolvers, maxLive = 50, 100
	n := startEtcd(b)
	cfg := Config{Endpoints: endpoints(n), Logger: quiet}
	reg := newRegistry(b, cfg)
	ctx := context.Background()

	var p struct {
		sync.Mutex
		addr    string
		present bool
		seen    [resolvers]bool
		left    int
		start   time.Time
		done    chan struct{}
		delays  []time.Duration
	}
	for i := range resolvers {
		res := newResolver(b, cfg)
		w, err := res.Resolve(ctx, "bench", func(ins []discovery.Instance) {
			p.Lock()
			defer p.Unlock()
			if p.done == nil || p.seen[i] {
				return
			}
			has := slices.ContainsFunc(ins, func(in discovery.Instance) bool { return in.Addr == p.addr })
			if has != p.present {
				return
			}
			p.seen[i] = true
			if p.left--; p.left == 0 {
				p.delays = append(p.delays, time.Since(p.start))
				close(p.done)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { w.Close() })
	}

	var live []string
	b.ResetTimer()
	for i := range b.N {
		in := discovery.Instance{Service: "bench"}
		present := len(live) < maxLive
		if present {
			in.Addr = fmt.Sprintf("10.%d.%d.%d:8080", i>>16&255, i>>8&255, i&255)
			live = append(live, in.Addr)
		} else {
			in.Addr, live = live[0], live[1:]
		}
		done := make(chan struct{})
		p.Lock()
		p.addr, p.present, p.seen, p.left, p.done = in.Addr, present, [resolvers]bool{}, resolvers, done
		p.start = time.Now()
		p.Unlock()
		var err error
		if present {
			err = reg.Register(ctx, in)
		} else {
			err = reg.Deregister(ctx, in)
		}
		if err != nil {
			b.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			b.Fatalf("change %d (%s) did not reach all resolvers in 10s", i, in.Addr)
		}
	}
	b.StopTimer()

	d := slices.Clone(p.delays)
	slices.Sort(d)
	pct := func(q float64) float64 {
		return float64(d[min(len(d)-1, int(q*float64(len(d))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
}
