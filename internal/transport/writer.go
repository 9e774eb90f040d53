// Package transport holds the machinery under the native protocol:
// frame reading, write coalescing, multiplexed client connections and the
// server's inline dispatch with hand-off of blocked handlers.
package transport

import (
	"io"
	"runtime"
	"sync"
)

// flushThreshold is the buffered size past which a writer flushes even when
// it was asked to hold.
const flushThreshold = 64 << 10

// Writer coalesces frames from many goroutines into few syscalls. Whoever
// finds no flush in progress becomes the flusher and writes everything
// pending, including frames others append while it writes; the others only
// append and return.
type Writer struct {
	w        io.Writer
	mu       sync.Mutex
	buf      []byte
	spare    []byte
	flushing bool
	err      error
}

// NewWriter returns a Writer over w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, buf: make([]byte, 0, 16<<10), spare: make([]byte, 0, 16<<10)}
}

// Write appends frame. With hold set and less than flushThreshold pending
// the bytes wait for a later Write or Flush; otherwise they are written
// before Write returns or by a flush already in progress. The frame is
// copied, so the caller may reuse it at once.
func (w *Writer) Write(frame []byte, hold bool) error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	w.buf = append(w.buf, frame...)
	if (hold && len(w.buf) < flushThreshold) || w.flushing {
		w.mu.Unlock()
		return nil
	}
	return w.flushLocked()
}

// Flush writes everything pending unless a flush is already in progress.
func (w *Writer) Flush() error {
	w.mu.Lock()
	if w.err != nil || w.flushing || len(w.buf) == 0 {
		err := w.err
		w.mu.Unlock()
		return err
	}
	return w.flushLocked()
}

// flushLocked is called with mu held and returns with it released.
func (w *Writer) flushLocked() error {
	w.flushing = true
	for len(w.buf) > 0 && w.err == nil {
		out := w.buf
		w.buf = w.spare[:0]
		w.mu.Unlock()
		_, err := w.w.Write(out)
		w.mu.Lock()
		w.spare = reuse(out)
		if err != nil {
			w.err = err
		}
	}
	w.flushing = false
	err := w.err
	w.mu.Unlock()
	return err
}

// AsyncWriter batches frames from many goroutines onto one writer
// goroutine: callers append and return; the writer goroutine wakes, takes
// everything pending, and writes it in one syscall. Under load a syscall
// carries many frames, and callers never block on the socket.
type AsyncWriter struct {
	w         io.Writer
	mu        sync.Mutex
	buf       []byte
	spare     []byte
	err       error
	wake      chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

// NewAsyncWriter starts the writer goroutine; Close stops it.
func NewAsyncWriter(w io.Writer) *AsyncWriter {
	a := &AsyncWriter{
		w:      w,
		buf:    make([]byte, 0, 16<<10),
		spare:  make([]byte, 0, 16<<10),
		wake:   make(chan struct{}, 1),
		closed: make(chan struct{}),
		done:   make(chan struct{}),
	}
	go a.run()
	return a
}

// Write appends frame (copied) for the writer goroutine.
func (a *AsyncWriter) Write(frame []byte) error {
	a.mu.Lock()
	if a.err != nil {
		err := a.err
		a.mu.Unlock()
		return err
	}
	first := len(a.buf) == 0
	a.buf = append(a.buf, frame...)
	a.mu.Unlock()
	if first {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Close stops the writer goroutine after it finishes its current write.
func (a *AsyncWriter) Close() {
	a.mu.Lock()
	if a.err == nil {
		a.err = errClosed
	}
	a.mu.Unlock()
	a.closeOnce.Do(func() { close(a.closed) })
	<-a.done
}

func (a *AsyncWriter) run() {
	defer close(a.done)
	for {
		select {
		case <-a.wake:
		case <-a.closed:
			return
		}
		// Let callers that are already running append too: one syscall
		// then carries their frames as well.
		runtime.Gosched()
		for {
			a.mu.Lock()
			if len(a.buf) == 0 || a.err != nil {
				a.mu.Unlock()
				break
			}
			out := a.buf
			a.buf = a.spare[:0]
			a.mu.Unlock()
			_, err := a.w.Write(out)
			a.mu.Lock()
			a.spare = reuse(out)
			if err != nil && a.err == nil {
				a.err = err
			}
			a.mu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// reuse returns a written buffer emptied for the next swap, or a fresh one
// when a burst grew it past 1 MiB, so a writer does not pin a giant buffer.
func reuse(out []byte) []byte {
	if cap(out) <= 1<<20 {
		return out[:0]
	}
	return make([]byte, 0, 16<<10)
}
