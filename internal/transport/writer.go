// Package transport holds the machinery under the native protocol:
// frame reading, write coalescing, multiplexed client connections and the
// server's inline dispatch with hand-off of blocked handlers.
package transport

import (
	"io"
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
		if cap(out) <= 1<<20 { // do not keep a giant buffer after a burst
			w.spare = out[:0]
		} else {
			w.spare = make([]byte, 0, 16<<10)
		}
		if err != nil {
			w.err = err
		}
	}
	w.flushing = false
	err := w.err
	w.mu.Unlock()
	return err
}
