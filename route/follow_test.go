package route_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/route"
)

// source is a config.Source whose snapshots the test pushes.
type source struct {
	mu     sync.Mutex
	cur    *config.Snapshot
	update func(*config.Snapshot)
}

func (s *source) Watch(_ context.Context, update func(*config.Snapshot)) (io.Closer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.update = update
	update(s.cur)
	return io.NopCloser(nil), nil
}

func (s *source) push(t *testing.T, rev int64, yaml string) {
	t.Helper()
	ds, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := config.NewSnapshot(rev, ds)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = snap
	if s.update != nil {
		s.update(snap)
	}
}

func rule(name, service, version string) string {
	return `
apiVersion: sluice/v1
kind: RouteRule
metadata: {name: ` + name + `}
spec:
  service: ` + service + `
  routes: [{name: r, destinations: [{subset: {version: ` + version + `}}]}]
---`
}

func TestFollow(t *testing.T) {
	src := &source{}
	src.push(t, 1, rule("orders", svc, "v1"))
	w, err := config.Watch(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var logs bytes.Buffer
	tb, err := route.NewTable(nil, nil, route.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	stop := tb.Follow(w)
	defer stop()
	decide := func() route.Decision { return tb.Decide(route.Input{Service: svc, Baggage: lane("blue")}) }
	if d := decide(); d.Rule != "orders" || d.Subset.Key != "version=v1" {
		t.Fatalf("first snapshot: %+v", d)
	}

	// A new snapshot: two rules for one service (the first by name wins),
	// a lane named by its document.
	src.push(t, 2, rule("b-orders", svc, "v3")+rule("a-orders", svc, "v2")+`
apiVersion: sluice/v1
kind: Lane
metadata: {name: blue}
spec: {mode: STRICT}
`)
	if d := decide(); d.Rule != "a-orders" || d.Subset.Key != "version=v2" || d.Lane != "blue" || d.LaneMode != route.Strict {
		t.Errorf("second snapshot: %+v", d)
	}
	if !strings.Contains(logs.String(), "two RouteRule documents for one service") {
		t.Errorf("duplicate not logged:\n%s", logs.String())
	}
	if rs := tb.Rules(); len(rs) != 1 || rs[0].Name != "a-orders" {
		t.Errorf("Rules() = %+v", rs)
	}

	// Documents valid one by one but not together: logged, not applied.
	src.push(t, 3, rule("a-orders", svc, "v4")+`
apiVersion: sluice/v1
kind: Lane
metadata: {name: blue}
spec: {ingress: {percent: 60}}
---
apiVersion: sluice/v1
kind: Lane
metadata: {name: green}
spec: {ingress: {percent: 60}}
`)
	if d := decide(); d.Subset.Key != "version=v2" || d.LaneMode != route.Strict {
		t.Errorf("a bad snapshot was applied: %+v", d)
	}
	if !strings.Contains(logs.String(), "snapshot not applied") || !strings.Contains(logs.String(), "spec.ingress.percent") {
		t.Errorf("bad snapshot not logged:\n%s", logs.String())
	}

	// After stop, snapshots no longer apply.
	stop()
	src.push(t, 4, rule("a-orders", svc, "v5"))
	if d := decide(); d.Subset.Key != "version=v2" {
		t.Errorf("applied after stop: %+v", d)
	}
}
