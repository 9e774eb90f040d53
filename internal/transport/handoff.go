package transport

import (
	"sync"
	"sync/atomic"
	"time"
)

// Inline dispatch runs a handler on the goroutine that read its request,
// which saves a goroutine switch per call. A handler that blocks would then
// stall every later call on its connection, so a Monitor watches the
// connections: when one has been inside the same inline call for a whole
// tick, the Monitor starts a new reader for it and the blocked goroutine,
// once its handler returns, just finishes that call and exits.

// Inline is a connection's inline-dispatch state.
type Inline struct {
	busy atomic.Uint64 // id of the inline call in progress, 0 when none
	seen uint64        // busy as the monitor saw it on its last tick
	next uint64        // call id counter; only the current reader touches it
	// Resume starts a new reader goroutine for the connection. It is
	// called on the monitor's goroutine and must not block.
	Resume func()
}

// Begin marks the start of an inline call and returns its token.
func (in *Inline) Begin() uint64 {
	// next is read and written only before the Store: the monitor's Load
	// of the token orders this against a reader it starts later.
	n := in.next + 1
	in.next = n
	in.busy.Store(n)
	return n
}

// End marks the end of the inline call with the token; false means the
// monitor handed the connection to a new reader, and the caller must stop reading.
func (in *Inline) End(token uint64) bool {
	return in.busy.CompareAndSwap(token, 0)
}

// handOff is called by the monitor: it takes the reader role away from a
// call that has been busy since the last tick.
func (in *Inline) handOff() {
	cur := in.busy.Load()
	if cur == 0 || cur != in.seen {
		in.seen = cur
		return
	}
	in.seen = 0
	if in.busy.CompareAndSwap(cur, 0) {
		in.Resume()
	}
}

// Monitor ticks over registered connections and hands off blocked readers.
type Monitor struct {
	tick  time.Duration
	mu    sync.Mutex
	conns map[*Inline]struct{}
	stop  chan struct{}
	done  chan struct{}
}

// DefaultHandOffTick is how long an inline handler may run before the
// connection gets a new reader (between one and two ticks).
const DefaultHandOffTick = time.Millisecond

// NewMonitor starts a monitor ticking every tick.
func NewMonitor(tick time.Duration) *Monitor {
	m := &Monitor{tick: tick, conns: map[*Inline]struct{}{}, stop: make(chan struct{}), done: make(chan struct{})}
	go m.run()
	return m
}

// Add registers a connection.
func (m *Monitor) Add(in *Inline) {
	m.mu.Lock()
	m.conns[in] = struct{}{}
	m.mu.Unlock()
}

// Remove unregisters a connection.
func (m *Monitor) Remove(in *Inline) {
	m.mu.Lock()
	delete(m.conns, in)
	m.mu.Unlock()
}

// Close stops the monitor and waits for it.
func (m *Monitor) Close() {
	close(m.stop)
	<-m.done
}

func (m *Monitor) run() {
	defer close(m.done)
	t := time.NewTicker(m.tick)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.mu.Lock()
			for in := range m.conns {
				in.handOff()
			}
			m.mu.Unlock()
		}
	}
}
