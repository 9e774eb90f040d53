package configtest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// Wait is how long Suite waits for a store to deliver a change.
const Wait = 10 * time.Second

// Suite checks the behaviour every config.Store must have. newStore returns
// an empty store that no other check uses; Suite registers the Widget kind.
func Suite(t *testing.T, newStore func(t *testing.T) config.Store) {
	Register()
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s config.Store)
	}{
		{"ApplyGet", testApplyGet},
		{"InvalidBatchAppliesNothing", testInvalidBatch},
		{"Versions", testVersions},
		{"BatchConflictWritesNothing", testBatchConflict},
		{"ConcurrentWriters", testConcurrentWriters},
		{"Delete", testDelete},
		{"WatchHotApply", testWatchHotApply},
		{"WatchSkipsUnchanged", testWatchSkipsUnchanged},
		{"AtomicSwap", testAtomicSwap},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newStore(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), Wait)
	t.Cleanup(cancel)
	return c
}

func mustApply(t *testing.T, s config.Store, docs ...config.Document) int64 {
	t.Helper()
	rev, err := s.Apply(ctx(t), docs)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return rev
}

func mustGet(t *testing.T, s config.Store) *config.Snapshot {
	t.Helper()
	snap, err := s.Get(ctx(t))
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return snap
}

func version(t *testing.T, s config.Store, name string) int64 {
	t.Helper()
	d, _, ok := mustGet(t, s).Get(WidgetKind, name)
	if !ok {
		t.Fatalf("%s missing", name)
	}
	return d.Metadata.Version
}

// Eventually waits up to Wait for cond, failing t with what if it never holds.
func Eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func testApplyGet(t *testing.T, s config.Store) {
	rev := mustApply(t, s, Doc("a", Widget{Size: 1, Timeout: config.Duration(time.Second)}), Doc("b", Widget{Size: 2}))
	if rev <= 0 {
		t.Errorf("Apply revision = %d, want > 0", rev)
	}
	snap := mustGet(t, s)
	if snap.Len() != 2 || snap.Revision() < rev {
		t.Fatalf("Get: %d documents at revision %d, want 2 at >= %d", snap.Len(), snap.Revision(), rev)
	}
	d, spec, ok := snap.Get(WidgetKind, "a")
	if !ok || spec.(*Widget).Size != 1 || spec.(*Widget).Timeout != config.Duration(time.Second) {
		t.Fatalf("Get(a) = %v %+v %v", d, spec, ok)
	}
	if d.Metadata.Version <= 0 {
		t.Errorf("version of a = %d, want > 0", d.Metadata.Version)
	}
	if l := snap.List(WidgetKind); len(l) != 2 || l[0].Doc.Metadata.Name != "a" || l[1].Doc.Metadata.Name != "b" {
		t.Errorf("List = %v, want a, b", l)
	}
}

func testInvalidBatch(t *testing.T, s config.Store) {
	_, err := s.Apply(ctx(t), []config.Document{Doc("good", Widget{Size: 1}), Doc("bad", Widget{Size: -1})})
	var ie *config.InvalidError
	if !errors.Is(err, config.ErrInvalid) || !errors.As(err, &ie) {
		t.Fatalf("Apply = %v, want an *InvalidError", err)
	}
	if ie.Index != 2 || ie.Name != "bad" || len(ie.Fields) != 1 || ie.Fields[0].Path != "spec.size" {
		t.Errorf("error = %+v (%v), want document 2, bad, spec.size", ie, ie)
	}
	if c := status.Code(err); c != codes.InvalidArgument {
		t.Errorf("code = %v, want InvalidArgument", c)
	}
	if n := mustGet(t, s).Len(); n != 0 {
		t.Errorf("%d documents stored after a rejected batch, want 0", n)
	}
}

func wantConflict(t *testing.T, err error, expected, actual int64) {
	t.Helper()
	var ce *config.ConflictError
	if !errors.Is(err, config.ErrConflict) || !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *ConflictError", err)
	}
	if ce.Expected != expected || ce.Actual != actual {
		t.Errorf("conflict %+v, want expected %d, actual %d", ce, expected, actual)
	}
	if c := status.Code(err); c != codes.Aborted {
		t.Errorf("code = %v, want Aborted", c)
	}
}

func testVersions(t *testing.T, s config.Store) {
	c := ctx(t)
	mustApply(t, s, WithVersion(Doc("a", Widget{Generation: 1}), config.Absent))
	v1 := version(t, s, "a")
	_, err := s.Apply(c, []config.Document{WithVersion(Doc("a", Widget{Generation: 2}), config.Absent)})
	wantConflict(t, err, config.Absent, v1)

	mustApply(t, s, WithVersion(Doc("a", Widget{Generation: 2}), v1))
	v2 := version(t, s, "a")
	if v2 <= v1 {
		t.Fatalf("version after update = %d, want > %d", v2, v1)
	}
	_, err = s.Apply(c, []config.Document{WithVersion(Doc("a", Widget{Generation: 3}), v1)})
	wantConflict(t, err, v1, v2)
	_, err = s.Apply(c, []config.Document{WithVersion(Doc("new", Widget{}), v1)})
	wantConflict(t, err, v1, 0)

	mustApply(t, s, Doc("a", Widget{Generation: 4})) // version 0: any
	if g := Spec(mustGet(t, s), "a").Generation; g != 4 {
		t.Errorf("generation = %d, want 4", g)
	}
}

func testBatchConflict(t *testing.T, s config.Store) {
	mustApply(t, s, Doc("a", Widget{Generation: 1}))
	v := version(t, s, "a")
	_, err := s.Apply(ctx(t), []config.Document{Doc("b", Widget{}), WithVersion(Doc("a", Widget{Generation: 2}), v+100)})
	wantConflict(t, err, v+100, v)
	snap := mustGet(t, s)
	if snap.Len() != 1 || Spec(snap, "a").Generation != 1 {
		t.Errorf("after a conflicting batch: %d documents, a = %+v; want only a at generation 1", snap.Len(), Spec(snap, "a"))
	}
}

func testConcurrentWriters(t *testing.T, s config.Store) {
	mustApply(t, s, Doc("a", Widget{}))
	for round := range 5 {
		v := version(t, s, "a")
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = s.Apply(ctx(t), []config.Document{WithVersion(Doc("a", Widget{Generation: 10*round + i}), v)})
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, config.ErrConflict):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d writers won with the same expected version (%v), want exactly 1", round, won, errs)
		}
	}
}

func testDelete(t *testing.T, s config.Store) {
	c := ctx(t)
	mustApply(t, s, Doc("a", Widget{}), Doc("b", Widget{}))
	v := version(t, s, "a")
	_, err := s.Delete(c, WidgetKind, "a", v+100)
	wantConflict(t, err, v+100, v)
	if _, err := s.Delete(c, WidgetKind, "a", v); err != nil {
		t.Fatalf("Delete(a, %d): %v", v, err)
	}
	if _, err := s.Delete(c, WidgetKind, "b", 0); err != nil {
		t.Fatalf("Delete(b, any): %v", err)
	}
	_, err = s.Delete(c, WidgetKind, "a", 0)
	var nf *config.NotFoundError
	if !errors.Is(err, config.ErrNotFound) || !errors.As(err, &nf) || nf.Key != (config.Key{Kind: WidgetKind, Name: "a"}) {
		t.Errorf("Delete of a deleted document = %v, want *NotFoundError", err)
	}
	if c := status.Code(err); c != codes.NotFound {
		t.Errorf("code = %v, want NotFound", c)
	}
	if n := mustGet(t, s).Len(); n != 0 {
		t.Errorf("%d documents left, want 0", n)
	}
}

func testWatchHotApply(t *testing.T, s config.Store) {
	mustApply(t, s, Doc("a", Widget{Size: 1}))
	w, err := config.Watch(ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if a := Spec(w.Current(), "a"); a == nil || a.Size != 1 {
		t.Fatalf("first snapshot: a = %+v, want size 1", a)
	}
	var got atomic.Pointer[config.Snapshot]
	cancel := w.Subscribe(func(s *config.Snapshot) { got.Store(s) })
	defer cancel()

	rev := mustApply(t, s, Doc("a", Widget{Size: 2}), Doc("b", Widget{Size: 3}))
	Eventually(t, "the running consumer to see a=2, b=3", func() bool {
		cur := w.Current()
		a, b := Spec(cur, "a"), Spec(cur, "b")
		return a != nil && a.Size == 2 && b != nil && b.Size == 3
	})
	if cur := w.Current(); cur.Revision() < rev {
		t.Errorf("snapshot revision %d < Apply revision %d", cur.Revision(), rev)
	}
	if got.Load() != w.Current() {
		t.Errorf("subscriber did not get the current snapshot")
	}

	if _, err := s.Delete(ctx(t), WidgetKind, "a", 0); err != nil {
		t.Fatal(err)
	}
	Eventually(t, "the delete to reach the consumer", func() bool { return Spec(w.Current(), "a") == nil })
	if Spec(w.Current(), "b") == nil {
		t.Errorf("b went away with a")
	}
}

func testWatchSkipsUnchanged(t *testing.T, s config.Store) {
	same := []config.Document{Doc("a", Widget{Size: 1}), Doc("b", Widget{Size: 2})}
	mustApply(t, s, same...)
	w, err := config.Watch(ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var calls atomic.Int32
	cancel := w.Subscribe(func(*config.Snapshot) { calls.Add(1) })
	defer cancel()

	mustApply(t, s, same...) // same content: nothing for consumers to do
	mustApply(t, s, Doc("marker", Widget{}))
	Eventually(t, "the marker", func() bool { return Spec(w.Current(), "marker") != nil })
	if n := calls.Load(); n != 2 { // the one at Subscribe, and the marker's
		t.Errorf("subscriber called %d times, want 2: a rewrite with the same content must not be delivered", n)
	}
}

func testAtomicSwap(t *testing.T, s config.Store) {
	const gens = 25
	mustApply(t, s, Doc("a", Widget{Generation: 0}), Doc("b", Widget{Generation: 0}))
	w, err := config.Watch(ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	done := make(chan struct{})
	var torn atomic.Pointer[string]
	var seen sync.Map
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				cur := w.Current()
				a, b := Spec(cur, "a"), Spec(cur, "b")
				if a == nil || b == nil || a.Generation != b.Generation {
					msg := "a and b out of step"
					torn.Store(&msg)
					return
				}
				seen.Store(a.Generation, true)
			}
		})
	}
	for g := 1; g <= gens; g++ {
		mustApply(t, s, Doc("a", Widget{Generation: g}), Doc("b", Widget{Generation: g}))
	}
	Eventually(t, "the last generation", func() bool {
		a := Spec(w.Current(), "a")
		return a != nil && a.Generation == gens
	})
	close(done)
	wg.Wait()
	if m := torn.Load(); m != nil {
		t.Fatalf("a reader saw a half-applied change: %s", *m)
	}
}
