package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/config/configtest"
	"github.com/sluicerpc/sluice/internal/etcdtest"
)

// endpoint is the client address of the etcd server embedded for the tests.
var endpoint string

func TestMain(m *testing.M) {
	configtest.Register()
	before := goleak.IgnoreCurrent()
	dir, err := os.MkdirTemp("", "etcdstore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	e, ep, err := etcdtest.Start(dir)
	if err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, "embedded etcd:", err)
		os.Exit(1)
	}
	endpoint = ep
	code := m.Run()
	e.Close()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(before); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func newClient(t *testing.T, ep string) *clientv3.Client {
	t.Helper()
	return etcdtest.Client(t, ep)
}

var (
	prefixes sync.Map // *testing.T -> string
	runs     atomic.Int64
)

// prefix returns a key prefix of t's own, also with -count > 1.
func prefix(t *testing.T) string {
	p, _ := prefixes.LoadOrStore(t, fmt.Sprintf("/test/%d/%s/", runs.Add(1), t.Name()))
	return p.(string)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestSuite(t *testing.T) {
	cli := newClient(t, endpoint)
	configtest.Suite(t, func(t *testing.T) config.Store { return New(cli, WithPrefix(prefix(t))) })
}

func TestKeyLayout(t *testing.T) {
	cli := newClient(t, endpoint)
	s := New(cli, WithPrefix(prefix(t)))
	doc := configtest.Doc("a", configtest.Widget{Size: 1})
	doc.Metadata.Labels = map[string]string{"team": "pay"}
	rev, err := s.Apply(ctx(t), []config.Document{doc})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx(t), prefix(t)+"Widget/a")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("Get key: %v, %v", resp, err)
	}
	kv := resp.Kvs[0]
	if kv.ModRevision != rev {
		t.Errorf("ModRevision %d, Apply revision %d", kv.ModRevision, rev)
	}
	var stored map[string]any
	if err := json.Unmarshal(kv.Value, &stored); err != nil {
		t.Fatal(err)
	}
	md := stored["metadata"].(map[string]any)
	if _, has := md["version"]; has || md["name"] != "a" || stored["kind"] != "Widget" {
		t.Errorf("stored value %s: want kind, name, and no version", kv.Value)
	}
	if got := New(cli).key(config.Key{Kind: "Widget", Name: "a"}); got != "/sluice/config/Widget/a" {
		t.Errorf("default key = %q", got)
	}
}

func TestInvalidValueKeepsLastValid(t *testing.T) {
	cli := newClient(t, endpoint)
	var rj configtest.Rejects
	s := New(cli, WithPrefix(prefix(t)), WithOnReject(rj.Add))
	if _, err := s.Apply(ctx(t), []config.Document{configtest.Doc("a", configtest.Widget{Size: 1})}); err != nil {
		t.Fatal(err)
	}
	w, err := config.Watch(ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var delivered atomic.Int32
	defer w.Subscribe(func(*config.Snapshot) { delivered.Add(1) })()

	raw := func(key, val string) {
		t.Helper()
		if _, err := cli.Put(ctx(t), prefix(t)+key, val); err != nil {
			t.Fatal(err)
		}
	}
	bad := configtest.Doc("a", configtest.Widget{Size: -1})
	badJSON, _ := json.Marshal(bad)
	raw("Widget/a", string(badJSON))                                                      // fails the kind's validation
	raw("Widget/a", "{not json")                                                          // fails to parse
	raw("Widget/b", strings.Replace(string(badJSON), `"name":"a"`, `"name":"c"`, 1))      // key and name differ
	raw("Gadget/x", `{"apiVersion":"sluice/v1","kind":"Gadget","metadata":{"name":"x"}}`) // unknown kind: skipped quietly

	configtest.Eventually(t, "three rejects", func() bool { return len(rj.All()) >= 3 })
	// One report per bad value (a batch may report them in any order),
	// each an *InvalidError naming the key and revision.
	var sawSize, sawSyntax, sawMismatch bool
	for _, err := range rj.All() {
		var ie *config.InvalidError
		if !errors.As(err, &ie) || !strings.HasPrefix(ie.Source, prefix(t)+"Widget/") {
			t.Errorf("reject %v: want an *InvalidError whose Source is the key", err)
			continue
		}
		f := ie.Fields[0]
		switch {
		case f.Path == "spec.size":
			sawSize = true
		case strings.HasPrefix(f.Reason, "invalid character"):
			sawSyntax = true
		case f.Path == "metadata.name" && strings.Contains(f.Reason, "the key says Widget/b"):
			sawMismatch = true
		}
	}
	if !sawSize || !sawSyntax || !sawMismatch {
		t.Errorf("rejects %v: want spec.size, a syntax error and a key/name mismatch", rj.All())
	}

	// The running config is as it was, and nothing was delivered.
	if a := configtest.Spec(w.Current(), "a"); a == nil || a.Size != 1 {
		t.Errorf("after bad writes a = %+v, want size 1", a)
	}
	if w.Current().Len() != 1 || delivered.Load() != 1 {
		t.Errorf("%d documents, %d deliveries; want 1 and 1 (the one at Subscribe)", w.Current().Len(), delivered.Load())
	}

	if n := len(rj.All()); n != 3 {
		t.Errorf("%d rejects, want 3 (the unknown kind is skipped, not rejected): %v", n, rj.All())
	}

	// Get also leaves bad values out, and reports them.
	snap, err := s.Get(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Len() != 0 {
		t.Errorf("Get: %d documents, want 0: every stored value is bad", snap.Len())
	}

	// A good write goes through again.
	if _, err := s.Apply(ctx(t), []config.Document{configtest.Doc("a", configtest.Widget{Size: 3})}); err != nil {
		t.Fatal(err)
	}
	configtest.Eventually(t, "a=3", func() bool {
		a := configtest.Spec(w.Current(), "a")
		return a != nil && a.Size == 3
	})
	if n := len(rj.All()); n != 5 {
		t.Errorf("%d rejects, want 5 (3 from the watch, 2 from Get): %v", n, rj.All())
	}
}

// watchRaw starts a watch and returns the watcher and its current snapshot.
func watchRaw(t *testing.T, s *Store) (*watcher, *atomic.Pointer[config.Snapshot]) {
	t.Helper()
	var cur atomic.Pointer[config.Snapshot]
	w, err := s.watch(ctx(t), func(s *config.Snapshot) { cur.Store(s) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, &cur
}

func TestCompactionDuringWatchResyncs(t *testing.T) {
	direct := newClient(t, endpoint)
	p := newProxy(t, endpoint)
	viaProxy := newClient(t, p.addr())
	writer := New(direct, WithPrefix(prefix(t)))
	s := New(viaProxy, WithPrefix(prefix(t)), WithBackoff(10*time.Millisecond, 100*time.Millisecond))

	doc := configtest.Doc
	if _, err := writer.Apply(ctx(t), []config.Document{doc("a", configtest.Widget{Size: 1}), doc("b", configtest.Widget{Size: 1})}); err != nil {
		t.Fatal(err)
	}
	w, cur := watchRaw(t, s)
	if cur.Load().Len() != 2 {
		t.Fatalf("first snapshot has %d documents, want 2", cur.Load().Len())
	}

	// Cut the watcher off, change things, and compact the history it would
	// need to catch up from.
	p.pause()
	if _, err := writer.Apply(ctx(t), []config.Document{doc("b", configtest.Widget{Size: 2}), doc("c", configtest.Widget{Size: 3})}); err != nil {
		t.Fatal(err)
	}
	rev, err := writer.Delete(ctx(t), configtest.WidgetKind, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Compact(ctx(t), rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	p.resume()

	configtest.Eventually(t, "the resynced snapshot {b=2, c=3}", func() bool {
		s := cur.Load()
		b, c := configtest.Spec(s, "b"), configtest.Spec(s, "c")
		return s.Len() == 2 && b != nil && b.Size == 2 && c != nil && c.Size == 3
	})
	if n := w.resyncs.Load(); n < 1 {
		t.Errorf("resyncs = %d, want >= 1", n)
	}
	if got := cur.Load().Revision(); got < rev {
		t.Errorf("snapshot revision %d < %d", got, rev)
	}

	// And it keeps following afterwards.
	if _, err := writer.Apply(ctx(t), []config.Document{doc("d", configtest.Widget{})}); err != nil {
		t.Fatal(err)
	}
	configtest.Eventually(t, "d after the resync", func() bool { return configtest.Spec(cur.Load(), "d") != nil })
}

func TestProgressNotifyAdvancesRevision(t *testing.T) {
	cli := newClient(t, endpoint)
	s := New(cli, WithPrefix(prefix(t)))
	w, _ := watchRaw(t, s)
	var rev int64
	for i := range 3 { // writes elsewhere move the store revision on
		resp, err := cli.Put(ctx(t), "/elsewhere/"+t.Name(), fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	configtest.Eventually(t, "a progress notification", func() bool { return w.rev.Load() >= rev })
}

func TestWatchStopsOnClose(t *testing.T) {
	cli := newClient(t, endpoint)
	s := New(cli, WithPrefix(prefix(t)))
	var calls atomic.Int32
	c, err := s.Watch(ctx(t), func(*config.Snapshot) { calls.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := s.Apply(ctx(t), []config.Document{configtest.Doc("a", configtest.Widget{})}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // room for a wrong delivery
	if n := calls.Load(); n != 1 {
		t.Errorf("update called %d times, want 1: none after Close", n)
	}
}

func TestWatchFailsWithoutEtcd(t *testing.T) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdtest.FreeAddr()}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := New(cli).Watch(c, func(*config.Snapshot) {}); err == nil || !strings.HasPrefix(err.Error(), "config: etcdstore:") {
		t.Errorf("Watch with no etcd = %v, want a config: etcdstore: error", err)
	}
}

// proxy forwards TCP to target and can cut every connection on demand.
type proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	paused bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.paused {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// pause closes every connection and refuses new ones until resume.
func (p *proxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *proxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
}

func (p *proxy) close() {
	p.ln.Close()
	p.pause()
	p.wg.Wait()
}
