package rawtcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicerpc/sluice/internal/loadgen/loadgentest"
)

func TestImpl(t *testing.T) { loadgentest.Check(t, Impl()) }

// pair starts a Server on loopback and a Client to it.
func pair(t *testing.T) (*Server, *Client) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ln)
	c, err := Dial(ln.Addr().String())
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	return srv, c
}

// request returns a payload unique to (caller, i), with lengths from 0 to
// beyond the 64 KiB buffers.
func request(caller, i int) []byte {
	n := (caller*131 + i*17) % 3000
	if caller%500 == 7 {
		n = 70<<10 + caller
	}
	p := make([]byte, n)
	for j := range p {
		p[j] = byte(caller ^ i<<5 ^ j ^ j>>8)
	}
	if n >= 8 {
		binary.BigEndian.PutUint32(p, uint32(caller))
		binary.BigEndian.PutUint32(p[4:], uint32(i))
	}
	return p
}

func TestConcurrentCallsGetTheirOwnReplies(t *testing.T) {
	defer goleak.VerifyNone(t)
	srv, c := pair(t)
	defer srv.Close()
	defer c.Close()

	const callers, calls = 3000, 3
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for caller := range callers {
		wg.Go(func() {
			for i := range calls {
				req := request(caller, i)
				var got int
				err := c.Do(ctx, req, func(reply []byte) error {
					got = len(reply)
					if !bytes.Equal(reply, req) {
						return fmt.Errorf("caller %d call %d: reply of %d bytes does not match request of %d", caller, i, len(reply), len(req))
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
				if got != len(req) {
					errs <- fmt.Errorf("caller %d call %d: fn saw %d bytes, want %d", caller, i, got, len(req))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(*c.slots.Load()); n > callers {
		t.Errorf("%d slots for %d callers", n, callers)
	}
}

func TestDoDoesNotAllocate(t *testing.T) {
	srv, c := pair(t)
	defer srv.Close()
	defer c.Close()
	req := bytes.Repeat([]byte("x"), 1024)
	ctx := context.Background()
	check := func(reply []byte) error {
		if len(reply) != len(req) {
			return ErrMismatch
		}
		return nil
	}
	for range 100 { // warm the buffers
		if err := c.Do(ctx, req, check); err != nil {
			t.Fatal(err)
		}
	}
	// AllocsPerRun counts the whole process: client and server.
	if n := testing.AllocsPerRun(1000, func() { c.Do(ctx, req, check) }); n != 0 {
		t.Errorf("Do allocates %v times per call", n)
	}
}

// slowEcho serves one connection, echoing each frame after delay.
func slowEcho(t *testing.T, delay time.Duration) (addr string, closeFn func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conn net.Conn
	var mu sync.Mutex
	quit := make(chan struct{})
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		mu.Lock()
		conn = c
		mu.Unlock()
		r := bufio.NewReader(c)
		hdr := make([]byte, headerLen)
		for {
			if _, err := io.ReadFull(r, hdr); err != nil {
				return
			}
			body := make([]byte, binary.BigEndian.Uint32(hdr))
			if _, err := io.ReadFull(r, body); err != nil {
				return
			}
			select {
			case <-time.After(delay):
			case <-quit:
				return
			}
			if _, err := c.Write(append(hdr, body...)); err != nil {
				return
			}
		}
	})
	return ln.Addr().String(), func() {
		close(quit)
		ln.Close()
		mu.Lock()
		if conn != nil {
			conn.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

func TestContextEndsBeforeReply(t *testing.T) {
	defer goleak.VerifyNone(t)
	addr, closeSrv := slowEcho(t, 100*time.Millisecond)
	defer closeSrv()
	c, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	called := false
	err = c.Do(ctx, []byte("late"), func([]byte) error { called = true; return nil })
	if !errors.Is(err, context.DeadlineExceeded) || called {
		t.Fatalf("Do = %v (fn called: %v), want DeadlineExceeded without fn", err, called)
	}
	// The abandoned slot is reclaimed when its late reply arrives and is
	// then reused; the late reply does not reach the next call.
	for deadline := time.Now().Add(10 * time.Second); c.busy.Load() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("abandoned slot not reclaimed after its late reply")
		}
	}
	err = c.Do(context.Background(), []byte("next"), func(reply []byte) error {
		if string(reply) != "next" {
			return fmt.Errorf("reply %q, want %q", reply, "next")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(*c.slots.Load()); n != 1 {
		t.Errorf("%d slots, want the abandoned one reused", n)
	}
}

func TestServerGoneFailsCalls(t *testing.T) {
	defer goleak.VerifyNone(t)
	addr, closeSrv := slowEcho(t, time.Hour)
	c, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errc := make(chan error, 10)
	for range 10 {
		go func() { errc <- c.Do(context.Background(), []byte("x"), func([]byte) error { return nil }) }()
	}
	time.Sleep(50 * time.Millisecond) // let the calls reach the server
	closeSrv()
	for range 10 {
		select {
		case err := <-errc:
			if err == nil {
				t.Error("call succeeded after the server went away")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("call still waiting after the server went away")
		}
	}
	if err := c.Do(context.Background(), []byte("x"), func([]byte) error { return nil }); err == nil {
		t.Error("call on a failed client succeeded")
	}
}

func TestClosedClient(t *testing.T) {
	defer goleak.VerifyNone(t)
	srv, c := pair(t)
	defer srv.Close()
	c.Close()
	c.Close() // idempotent
	if err := c.Do(context.Background(), nil, func([]byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Do on closed client = %v, want ErrClosed", err)
	}
}

func TestTooLarge(t *testing.T) {
	srv, c := pair(t)
	defer srv.Close()
	defer c.Close()
	if err := c.Do(context.Background(), make([]byte, MaxPayload+1), nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Do = %v, want ErrTooLarge", err)
	}
}

// rw feeds serve from a byte slice and collects what it writes.
type rw struct {
	io.Reader
	bytes.Buffer
}

func (x *rw) Read(p []byte) (int, error) { return x.Reader.Read(p) }

// wantEcho returns the prefix of in that serve must echo: every complete
// frame up to the first incomplete or oversized one.
func wantEcho(in []byte) []byte {
	k := 0
	for len(in)-k >= headerLen {
		n := binary.BigEndian.Uint32(in[k:])
		if n > MaxPayload || len(in)-k-headerLen < int(n) {
			break
		}
		k += headerLen + int(n)
	}
	return in[:k]
}

func frame(id uint64, payload string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	b = binary.BigEndian.AppendUint64(b, id)
	return append(b, payload...)
}

func FuzzServe(f *testing.F) {
	f.Add([]byte{})
	f.Add(frame(1, "hello"))
	f.Add(append(frame(1, "a"), frame(2, "")...))
	f.Add(append(frame(1, "abc"), 0, 0, 0, 9, 1, 2))
	f.Add(append(frame(3, "x"), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, in []byte) {
		x := &rw{Reader: bytes.NewReader(in)}
		serve(x)
		if want := wantEcho(in); !bytes.Equal(x.Buffer.Bytes(), want) {
			t.Errorf("serve echoed %d bytes, want the %d bytes of complete frames", x.Buffer.Len(), len(want))
		}
	})
}
