// Package rawtcp is the floor of the benchmark: a length-prefixed echo over
// one TCP connection with no framework, no codec and no per-call allocation.
// Any RPC framework row can be read against it.
//
// A frame is [u32 payload length][u64 request id][payload], big endian. The
// server echoes every frame as it is. The client multiplexes all callers over
// one connection by request id, batches their frames through one writer
// goroutine and dispatches replies from one reader goroutine.
//
//	srv := rawtcp.NewServer(ln)
//	c, _ := rawtcp.Dial(ln.Addr().String())
//	err := c.Do(ctx, []byte("ping"), func(reply []byte) error { ... })
package rawtcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/sluicerpc/sluice/internal/loadgen"
)

const (
	headerLen = 12
	// MaxPayload is the largest payload a frame may carry; the server drops
	// a connection that announces a larger one.
	MaxPayload = 16 << 20
	bufSize    = 64 << 10
)

var (
	// ErrClosed is returned by calls on a closed Client.
	ErrClosed = errors.New("rawtcp: client closed")
	// ErrTooLarge is returned for a request above MaxPayload.
	ErrTooLarge = errors.New("rawtcp: payload too large")
	// ErrMismatch is returned by the benchmark call when a reply differs
	// from its request.
	ErrMismatch = errors.New("rawtcp: reply does not match request")
)

// Impl returns the "rawtcp" benchmark row: a Server on 127.0.0.1:0 and one
// Client (one connection) to it.
func Impl() loadgen.Impl {
	return loadgen.Impl{Name: "rawtcp", Start: start}
}

func start(payload []byte) (func(context.Context) error, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	srv := NewServer(ln)
	c, err := Dial(ln.Addr().String())
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	check := func(reply []byte) error {
		if !bytes.Equal(reply, payload) {
			return ErrMismatch
		}
		return nil
	}
	call := func(ctx context.Context) error { return c.Do(ctx, payload, check) }
	stop := func() {
		c.Close()
		srv.Close()
	}
	return call, stop, nil
}

// Server echoes frames on every connection accepted from its listener.
type Server struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// NewServer starts serving ln in the background until Close.
func NewServer(ln net.Listener) *Server {
	s := &Server{ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Go(s.accept)
	return s
}

func (s *Server) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Go(func() {
			serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		})
		s.mu.Unlock()
	}
}

// Close stops the listener, closes every connection and waits for all of
// the server's goroutines to return.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// serve echoes frames from rw until a read or write fails or a frame
// announces more than MaxPayload. Replies are flushed only when the reader
// holds no further complete frame, so a burst of requests is answered with
// one write.
func serve(rw io.ReadWriter) {
	r := bufio.NewReaderSize(rw, bufSize)
	w := bufio.NewWriterSize(rw, bufSize)
	for {
		hdr, err := r.Peek(headerLen)
		if err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr)
		if n > MaxPayload {
			return
		}
		for rem := headerLen + int(n); rem > 0; {
			b, err := r.Peek(min(rem, r.Size()))
			if err != nil {
				return
			}
			w.Write(b) // a write error sticks and surfaces at Flush
			r.Discard(len(b))
			rem -= len(b)
		}
		if !frameBuffered(r) {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// frameBuffered reports whether r already holds a complete frame.
func frameBuffered(r *bufio.Reader) bool {
	b := r.Buffered()
	if b < headerLen {
		return false
	}
	hdr, _ := r.Peek(headerLen)
	return b >= headerLen+int(binary.BigEndian.Uint32(hdr))
}
