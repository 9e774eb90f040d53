package breaker

import (
	"sync"
	"sync/atomic"
)

// Set holds one Breaker per target, made on first use with the Set's
// Config. Looking up an existing target does not allocate. It is safe for
// concurrent use.
type Set struct {
	cfg Config
	mu  sync.Mutex                          // serialises inserts
	m   atomic.Pointer[map[setKey]*Breaker] // copy-on-write: reads never lock
}

// setKey names a target by one or two parts; a struct of strings is a map
// key that needs no allocation to look up.
type setKey struct{ a, b string }

func (k setKey) name() string {
	if k.b == "" {
		return k.a
	}
	return k.a + "/" + k.b
}

// NewSet returns an empty Set whose breakers use cfg, checked and defaulted
// as by New.
func NewSet(cfg Config) (*Set, error) {
	c, err := cfg.build()
	if err != nil {
		return nil, err
	}
	s := &Set{cfg: c}
	m := map[setKey]*Breaker{}
	s.m.Store(&m)
	return s, nil
}

// Get returns the breaker named name, for example an instance address.
func (s *Set) Get(name string) *Breaker { return s.get(setKey{a: name}) }

// Method returns the breaker of a service method, named service+"/"+method.
func (s *Set) Method(service, method string) *Breaker {
	return s.get(setKey{a: service, b: method})
}

func (s *Set) get(k setKey) *Breaker {
	if b, ok := (*s.m.Load())[k]; ok {
		return b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.m.Load()
	if b, ok := old[k]; ok {
		return b
	}
	b := newBreaker(k.name(), s.cfg)
	m := make(map[setKey]*Breaker, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[k] = b
	s.m.Store(&m)
	return b
}

// Delete forgets the breaker named name, for example when an instance
// leaves discovery.
func (s *Set) Delete(name string) { s.delete(setKey{a: name}) }

func (s *Set) delete(k setKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.m.Load()
	if _, ok := old[k]; !ok {
		return
	}
	m := make(map[setKey]*Breaker, len(old))
	for kk, v := range old {
		if kk != k {
			m[kk] = v
		}
	}
	s.m.Store(&m)
}
