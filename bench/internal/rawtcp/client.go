package rawtcp

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
)

// Slot states. A slot moves idle → waiting (caller sent a request) →
// replying (reader claimed the reply or the connection failed) → idle, or
// waiting → abandoned (caller's context ended) → idle when the late reply
// arrives.
const (
	idle int32 = iota
	waiting
	replying
	abandoned
)

// slot is one in-flight call. A request id is gen<<32 | idx, so a slot is
// found by index without a map and a reply to an older use of the slot is
// recognized by its generation.
type slot struct {
	idx   uint32
	gen   uint32 // touched only by the caller owning the slot
	id    atomic.Uint64
	state atomic.Int32
	done  chan struct{} // capacity 1: the reader's "reply is in buf"
	buf   []byte
	err   error
}

// Client multiplexes concurrent calls over one connection. Do is safe for
// concurrent use; in steady state it does not allocate.
type Client struct {
	conn net.Conn

	wmu     sync.Mutex
	pending []byte // frames not yet handed to the writer
	err     error  // set once: why the client no longer works
	kick    chan struct{}
	spare   []byte // the writer's second buffer

	smu   sync.Mutex
	free  []*slot
	busy  atomic.Int32            // slots handed out and not yet released
	slots atomic.Pointer[[]*slot] // index → slot; grown by copy under smu

	quit       chan struct{}
	quitOnce   sync.Once
	readerDone chan struct{}
	writerDone chan struct{}
}

// Dial connects to a Server at addr.
func Dial(addr string) (*Client, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return NewClient(conn), nil
}

// NewClient runs a Client over conn, which it then owns.
func NewClient(conn net.Conn) *Client {
	c := &Client{
		conn:       conn,
		kick:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	c.slots.Store(new([]*slot))
	go c.readLoop()
	go c.writeLoop()
	return c
}

// Do sends req and calls fn with the reply. The reply is valid only during
// fn. If ctx ends first Do returns ctx.Err() and the reply, once it comes,
// is discarded.
func (c *Client) Do(ctx context.Context, req []byte, fn func(reply []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(req) > MaxPayload {
		return ErrTooLarge
	}
	s := c.acquire()
	s.gen++
	id := uint64(s.gen)<<32 | uint64(s.idx)
	s.id.Store(id)
	s.state.Store(waiting)

	c.wmu.Lock()
	if err := c.err; err != nil {
		c.wmu.Unlock()
		s.state.Store(idle)
		c.release(s)
		return err
	}
	c.pending = binary.BigEndian.AppendUint32(c.pending, uint32(len(req)))
	c.pending = binary.BigEndian.AppendUint64(c.pending, id)
	c.pending = append(c.pending, req...)
	c.wmu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default: // the writer is already due to run
	}

	select {
	case <-s.done:
	case <-ctx.Done():
		if s.state.CompareAndSwap(waiting, abandoned) {
			return ctx.Err() // the reader frees the slot
		}
		<-s.done // the reply is being delivered right now
	}
	err := s.err
	if err == nil {
		err = fn(s.buf)
	}
	s.err = nil
	s.state.Store(idle)
	c.release(s)
	return err
}

func (c *Client) acquire() *slot {
	c.smu.Lock()
	defer c.smu.Unlock()
	c.busy.Add(1)
	if n := len(c.free); n > 0 {
		s := c.free[n-1]
		c.free = c.free[:n-1]
		return s
	}
	// Appending may write past the end of the slice the reader holds, never
	// inside it, so the reader needs no lock.
	old := *c.slots.Load()
	s := &slot{idx: uint32(len(old)), done: make(chan struct{}, 1)}
	grown := append(old, s)
	c.slots.Store(&grown)
	return s
}

func (c *Client) release(s *slot) {
	c.smu.Lock()
	c.free = append(c.free, s)
	c.busy.Add(-1)
	c.smu.Unlock()
}

// writeLoop swaps the pending buffer out and writes everything in it with
// one call, so callers arriving during a write share the next one.
func (c *Client) writeLoop() {
	defer close(c.writerDone)
	for {
		select {
		case <-c.kick:
		case <-c.quit:
			return
		}
		if c.busy.Load() > 1 {
			// Callers the reader just woke are about to append; letting
			// them run first turns many small writes into one.
			runtime.Gosched()
		}
		c.wmu.Lock()
		buf := c.pending
		c.pending = c.spare[:0]
		c.wmu.Unlock()
		if len(buf) > 0 {
			if _, err := c.conn.Write(buf); err != nil {
				c.fail(fmt.Errorf("rawtcp: write: %w", err))
			}
		}
		c.spare = buf[:0]
	}
}

func (c *Client) readLoop() {
	defer close(c.readerDone)
	r := bufio.NewReaderSize(c.conn, bufSize)
	hdr := make([]byte, headerLen)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			c.fail(fmt.Errorf("rawtcp: read: %w", err))
			return
		}
		n := binary.BigEndian.Uint32(hdr)
		id := binary.BigEndian.Uint64(hdr[4:])
		if n > MaxPayload {
			c.fail(fmt.Errorf("rawtcp: reply of %d bytes exceeds %d", n, MaxPayload))
			return
		}
		var s *slot
		if slots := *c.slots.Load(); uint64(uint32(id)) < uint64(len(slots)) {
			s = slots[uint32(id)]
		}
		switch {
		case s == nil || s.id.Load() != id:
			// Not a request of ours in flight: skip it.
		case s.state.CompareAndSwap(waiting, replying):
			if cap(s.buf) < int(n) {
				s.buf = make([]byte, n)
			}
			s.buf = s.buf[:n]
			if _, err := io.ReadFull(r, s.buf); err != nil {
				err = fmt.Errorf("rawtcp: read: %w", err)
				s.err = err
				s.done <- struct{}{}
				c.fail(err)
				return
			}
			s.done <- struct{}{}
			continue
		case s.state.CompareAndSwap(abandoned, idle):
			c.release(s)
		}
		if _, err := r.Discard(int(n)); err != nil {
			c.fail(fmt.Errorf("rawtcp: read: %w", err))
			return
		}
	}
}

// fail records why the client stopped working, closes the connection so
// both loops end, and fails every call still waiting for a reply.
func (c *Client) fail(err error) {
	c.wmu.Lock()
	if c.err == nil {
		c.err = err
	}
	err = c.err
	c.wmu.Unlock()
	c.conn.Close()
	// A call enqueued before c.err was set is in waiting state by now; any
	// later call sees c.err and never waits.
	for _, s := range *c.slots.Load() {
		if s.state.CompareAndSwap(waiting, replying) {
			s.err = err
			s.done <- struct{}{}
		}
	}
}

// Close closes the connection, fails calls in flight with ErrClosed and
// waits for the client's goroutines to return.
func (c *Client) Close() error {
	c.fail(ErrClosed)
	c.quitOnce.Do(func() { close(c.quit) })
	<-c.readerDone
	<-c.writerDone
	return nil
}
