// Package weakmap keeps per-address state that balancers share across the
// pickers one Builder builds. An entry lives as long as some picker (or an
// in-flight call) still refers to it: the map holds weak pointers, so state
// of instances that left every live picker is collected and dropped, while
// state of instances that stay survives new snapshots, subsets handed out
// by routing, and pickers that wrappers rebuild over a filtered set.
//
//	var m weakmap.Map[stats]
//	m.Sweep()                       // once per Build
//	st := m.Get(addr, newStats)     // per instance
package weakmap

import (
	"sync"
	"weak"
)

// Map maps keys to weakly held *T values. The zero value is empty and
// ready to use; a Map must not be copied after first use.
type Map[T any] struct {
	mu sync.Mutex
	m  map[string]weak.Pointer[T]
}

// Get returns the value for key, calling create for a new one when there
// is none or the old one has been collected.
func (m *Map[T]) Get(key string, create func() *T) *T {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.m[key].Value(); v != nil {
		return v
	}
	v := create()
	if m.m == nil {
		m.m = make(map[string]weak.Pointer[T])
	}
	m.m[key] = weak.Make(v)
	return v
}

// Sweep drops the entries whose values have been collected.
func (m *Map[T]) Sweep() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, p := range m.m {
		if p.Value() == nil {
			delete(m.m, k)
		}
	}
}

// Len returns the number of entries, collected or not, since the last Sweep.
func (m *Map[T]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}
