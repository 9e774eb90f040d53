package config

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
)

// Watcher follows a Source and keeps its newest snapshot for the readers of
// hot paths: Current is one atomic load, and each snapshot is whole, so a
// reader sees all of a change or none of it, never half.
type Watcher struct {
	cur    atomic.Pointer[Snapshot]
	closer io.Closer

	deliver sync.Mutex // held while subscribers are called, so they see snapshots in order
	mu      sync.Mutex // guards subs
	subs    []*subscriber
}

type subscriber struct {
	fn      func(*Snapshot)
	stopped atomic.Bool
}

// Watch starts following src. The first snapshot is in place when Watch
// returns (if src delivers it before returning, as Source says it must).
// Close the Watcher to stop following.
func Watch(ctx context.Context, src Source) (*Watcher, error) {
	w := &Watcher{}
	w.cur.Store(&Snapshot{})
	c, err := src.Watch(ctx, w.publish)
	if err != nil {
		return nil, err
	}
	w.closer = c
	return w, nil
}

// Current returns the newest snapshot; never nil.
func (w *Watcher) Current() *Snapshot { return w.cur.Load() }

// Subscribe calls fn with the current snapshot now, and then with every new
// one, in order, after Current already returns it. fn runs on the Source's
// goroutine: it must return quickly and must not call Subscribe. Call the
// returned cancel (from anywhere, fn included) to stop; after cancel
// returns, fn gets at most the one snapshot being delivered at that moment.
func (w *Watcher) Subscribe(fn func(*Snapshot)) (cancel func()) {
	s := &subscriber{fn: fn}
	w.deliver.Lock()
	w.mu.Lock()
	w.subs = append(w.subs, s)
	w.mu.Unlock()
	fn(w.cur.Load())
	w.deliver.Unlock()
	return func() {
		s.stopped.Store(true)
		w.mu.Lock()
		for i, x := range w.subs {
			if x == s {
				w.subs = append(w.subs[:i:i], w.subs[i+1:]...)
				break
			}
		}
		w.mu.Unlock()
	}
}

// Close stops following the Source. Current keeps returning the last
// snapshot.
func (w *Watcher) Close() error { return w.closer.Close() }

func (w *Watcher) publish(s *Snapshot) {
	w.deliver.Lock()
	defer w.deliver.Unlock()
	w.cur.Store(s)
	w.mu.Lock()
	subs := w.subs
	w.mu.Unlock()
	for _, x := range subs {
		if !x.stopped.Load() {
			x.fn(s)
		}
	}
}
