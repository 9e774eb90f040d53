package config

import "sync"

// Subscribers are the functions a table of rule documents (policy.Table,
// route.Table) calls after each update it applies. The zero value is
// ready to use.
type Subscribers struct {
	mu  sync.Mutex
	fns []func()
}

// Add adds fn, to be called by every Notify from now on, and returns a
// function that removes it.
func (s *Subscribers) Add(fn func()) (cancel func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fns = append(s.fns, fn)
	i := len(s.fns) - 1
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.fns[i] = nil
	}
}

// Notify calls the functions added and not removed, in the order they
// were added. They must return quickly and must not call Add.
func (s *Subscribers) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fn := range s.fns {
		if fn != nil {
			fn()
		}
	}
}
