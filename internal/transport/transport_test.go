package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicerpc/sluice/protocol/ttheader"
)

// waitTimeout bounds every wait; it is a failure bound, never a delay.
const waitTimeout = 5 * time.Second

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

var errBoom = errors.New("boom")

// testFrame returns a frame of size bytes (length word included) whose
// content depends on seed, so that a misplaced or torn byte shows.
func testFrame(size int, seed byte) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, uint32(size-4))
	if size >= 6 {
		binary.BigEndian.PutUint16(b[4:], ttheader.Magic)
	}
	for i := 6; i < size; i++ {
		b[i] = seed + byte(i*7)
	}
	return b
}

func concat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

// chunkReader returns one chunk per Read, then io.EOF.
type chunkReader struct{ chunks [][]byte }

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	if n == len(r.chunks[0]) {
		r.chunks = r.chunks[1:]
	} else {
		r.chunks[0] = r.chunks[0][n:]
	}
	return n, nil
}

func TestFrameReaderFrames(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int
		max   int
	}{
		{name: "small", sizes: []int{ttheader.FixedHeaderLen, 18, 100, 5000}, max: ttheader.DefaultMaxFrameSize},
		{name: "exactly-read-buffer", sizes: []int{ReadBufferSize, 20, ReadBufferSize}, max: ttheader.DefaultMaxFrameSize},
		{name: "above-read-buffer", sizes: []int{ReadBufferSize + 1, 20, 100 << 10, 30, 200 << 10}, max: ttheader.DefaultMaxFrameSize},
		{name: "above-1MiB", sizes: []int{1<<20 + 1, 40, 3 << 20, 1 << 20, 50}, max: ttheader.DefaultMaxFrameSize},
		{name: "exactly-max", sizes: []int{100 << 10, 100 << 10}, max: 100 << 10},
		{name: "no-limit", sizes: []int{ReadBufferSize + 10}, max: 0},
	}
	for _, tt := range tests {
		var frames [][]byte
		for i, n := range tt.sizes {
			frames = append(frames, testFrame(n, byte(i)))
		}
		stream := concat(frames...)
		readers := map[string]func() io.Reader{
			"whole":    func() io.Reader { return bytes.NewReader(stream) },
			"one-byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) },
			"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) },
		}
		for rname, newReader := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				if rname == "one-byte" && len(stream) > 1<<20 {
					t.Skip("too slow a byte at a time; above-read-buffer covers the path")
				}
				fr := NewFrameReader(newReader(), tt.max)
				for i, want := range frames {
					got, err := fr.Next()
					if err != nil {
						t.Fatalf("frame %d: %v", i, err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("frame %d (%d bytes) differs: got %d bytes", i, len(want), len(got))
					}
				}
				if _, err := fr.Next(); err != io.EOF {
					t.Fatalf("after the last frame: %v, want io.EOF", err)
				}
			})
		}
	}
}

func TestFrameReaderErrors(t *testing.T) {
	good := testFrame(100, 1)
	tests := []struct {
		name   string
		r      io.Reader
		max    int
		nGood  int // whole frames before the error
		want   error
		wantIs bool // compare with errors.Is rather than ==
	}{
		{name: "empty", r: bytes.NewReader(nil), want: io.EOF},
		{name: "eof-between-frames", r: bytes.NewReader(concat(good, good)), nGood: 2, want: io.EOF},
		{name: "eof-in-length-word", r: bytes.NewReader(good[:2]), want: io.ErrUnexpectedEOF},
		{name: "eof-in-length-word-after-frame", r: bytes.NewReader(concat(good, good[:3])), nGood: 1, want: io.ErrUnexpectedEOF},
		{name: "eof-mid-frame", r: bytes.NewReader(good[:50]), want: io.ErrUnexpectedEOF},
		{name: "eof-mid-frame-one-byte", r: iotest.OneByteReader(bytes.NewReader(concat(good, good[:99]))), nGood: 1, want: io.ErrUnexpectedEOF},
		{name: "eof-mid-large-frame", r: bytes.NewReader(testFrame(200<<10, 2)[:150<<10]), want: io.ErrUnexpectedEOF},
		{name: "eof-right-after-large-length-word", r: bytes.NewReader(testFrame(200<<10, 2)[:4]), want: io.ErrUnexpectedEOF},
		{name: "oversize", r: bytes.NewReader(testFrame(2000, 3)), max: 1000, want: ttheader.ErrTooLarge, wantIs: true},
		{name: "oversize-by-one", r: bytes.NewReader(concat(good, testFrame(1001, 3))), max: 1000, nGood: 1, want: ttheader.ErrTooLarge, wantIs: true},
		// The size is checked before the body is read: only the length word is there.
		{name: "oversize-before-body", r: bytes.NewReader(testFrame(ttheader.DefaultMaxFrameSize+1, 0)[:4]), want: ttheader.ErrTooLarge, wantIs: true},
		{name: "oversize-length-word-2GiB", r: bytes.NewReader([]byte{0x7f, 0xff, 0xff, 0xf0}), want: ttheader.ErrTooLarge, wantIs: true},
		{name: "below-header", r: bytes.NewReader([]byte{0, 0, 0, 5, 0x10, 0, 0, 0, 0}), want: ttheader.ErrMalformed, wantIs: true},
		{name: "read-error", r: io.MultiReader(bytes.NewReader(good), iotest.ErrReader(errBoom)), nGood: 1, want: errBoom},
		{name: "read-error-mid-frame", r: io.MultiReader(bytes.NewReader(good[:10]), iotest.ErrReader(errBoom)), want: errBoom},
		{name: "read-error-mid-large-frame", r: io.MultiReader(bytes.NewReader(testFrame(100<<10, 0)[:80<<10]), iotest.ErrReader(errBoom)), want: errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max := tt.max
			if max == 0 {
				max = ttheader.DefaultMaxFrameSize
			}
			fr := NewFrameReader(tt.r, max)
			for i := 0; i < tt.nGood; i++ {
				if _, err := fr.Next(); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			frame, err := fr.Next()
			if frame != nil {
				t.Errorf("frame of %d bytes returned with error %v", len(frame), err)
			}
			if tt.wantIs && !errors.Is(err, tt.want) || !tt.wantIs && err != tt.want {
				t.Fatalf("Next() = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFrameReaderBuffered(t *testing.T) {
	f1, f2 := testFrame(100, 1), testFrame(200, 2)
	big := testFrame(ReadBufferSize+100, 3)
	tests := []struct {
		name   string
		chunks [][]byte
		// want[i] is Buffered() right after the i-th Next; every frame
		// in frames must still come out of Next whatever Buffered said.
		frames [][]byte
		want   []bool
	}{
		{name: "two-in-one-read", chunks: [][]byte{concat(f1, f2)}, frames: [][]byte{f1, f2}, want: []bool{true, false}},
		{name: "three-in-one-read", chunks: [][]byte{concat(f1, f2, f1)}, frames: [][]byte{f1, f2, f1}, want: []bool{true, true, false}},
		{name: "second-split", chunks: [][]byte{concat(f1, f2[:50]), f2[50:]}, frames: [][]byte{f1, f2}, want: []bool{false, false}},
		{name: "second-length-word-split", chunks: [][]byte{concat(f1, f2[:2]), f2[2:]}, frames: [][]byte{f1, f2}, want: []bool{false, false}},
		{name: "second-missing-last-byte", chunks: [][]byte{concat(f1, f2[:199]), f2[199:]}, frames: [][]byte{f1, f2}, want: []bool{false, false}},
		{name: "separate-reads", chunks: [][]byte{f1, f2}, frames: [][]byte{f1, f2}, want: []bool{false, false}},
		// A frame larger than the read buffer is never wholly buffered.
		{name: "next-larger-than-buffer", chunks: [][]byte{concat(f1, big)}, frames: [][]byte{f1, big}, want: []bool{false, false}},
		{name: "after-large-frame", chunks: [][]byte{big, concat(f1, f2)}, frames: [][]byte{big, f1, f2}, want: []bool{false, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := NewFrameReader(&chunkReader{chunks: tt.chunks}, ttheader.DefaultMaxFrameSize)
			if fr.Buffered() {
				t.Fatal("Buffered() before any read")
			}
			for i, want := range tt.frames {
				got, err := fr.Next()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if b := fr.Buffered(); b != tt.want[i] {
					t.Errorf("Buffered() after frame %d = %v, want %v", i, b, tt.want[i])
				}
				// Buffered must not move the frame Next returned.
				if !bytes.Equal(got, want) {
					t.Fatalf("frame %d differs after Buffered()", i)
				}
			}
		})
	}
}

func TestFrameReaderReleaseThenBuffered(t *testing.T) {
	f1, f2 := testFrame(100, 1), testFrame(300, 2)
	fr := NewFrameReader(bytes.NewReader(concat(f1, f2)), ttheader.DefaultMaxFrameSize)
	if _, err := fr.Next(); err != nil {
		t.Fatal(err)
	}
	fr.Release()
	fr.Release() // twice is harmless
	if !fr.Buffered() {
		t.Fatal("Buffered() after Release = false, want true")
	}
	got, err := fr.Next()
	if err != nil || !bytes.Equal(got, f2) {
		t.Fatalf("second frame: %v", err)
	}
	fr.Release()
	if fr.Buffered() {
		t.Fatal("Buffered() with nothing left = true")
	}
}

// recSink records what a Writer writes and whether two writes overlapped.
type recSink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	calls   int
	active  atomic.Int32
	overlap atomic.Bool
	yield   bool // runtime.Gosched inside Write to widen races

	want int           // when > 0, full is closed once want bytes arrived
	full chan struct{} // see want
}

func (s *recSink) Write(p []byte) (int, error) {
	if s.active.Add(1) != 1 {
		s.overlap.Store(true)
	}
	defer s.active.Add(-1)
	if s.yield {
		runtime.Gosched()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.buf.Write(p)
	if s.want > 0 && s.buf.Len() >= s.want && s.full != nil {
		close(s.full)
		s.full = nil
	}
	return len(p), nil
}

func (s *recSink) snapshot() ([]byte, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.buf.Bytes()...), s.calls
}

// blockSink blocks every Write until release is closed, announcing each on entered.
type blockSink struct {
	entered chan struct{}
	release chan struct{}
	recSink
}

func newBlockSink() *blockSink {
	return &blockSink{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (s *blockSink) Write(p []byte) (int, error) {
	s.entered <- struct{}{}
	<-s.release
	return s.recSink.Write(p)
}

// errSink fails every Write, counting the calls.
type errSink struct {
	calls  atomic.Int32
	called chan struct{} // receives once per call
}

func (s *errSink) Write(p []byte) (int, error) {
	s.calls.Add(1)
	if s.called != nil {
		s.called <- struct{}{}
	}
	return 0, errBoom
}

// record is a frame tagged with its writer and sequence number:
// u32 length | u16 writer | u32 seq | filler derived from both.
func record(writer, seq, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, uint32(size-4))
	binary.BigEndian.PutUint16(b[4:], uint16(writer))
	binary.BigEndian.PutUint32(b[6:], uint32(seq))
	for i := 10; i < size; i++ {
		b[i] = byte(writer*31 + seq + i)
	}
	return b
}

// checkRecords parses out and checks that every record is intact and that
// each writer's records arrived complete and in order.
func checkRecords(t *testing.T, out []byte, writers, perWriter int) {
	t.Helper()
	next := make([]int, writers)
	for n := 0; len(out) > 0; n++ {
		if len(out) < 10 {
			t.Fatalf("record %d: %d trailing bytes", n, len(out))
		}
		size := int(binary.BigEndian.Uint32(out)) + 4
		if size > len(out) {
			t.Fatalf("record %d: length %d, %d bytes left", n, size, len(out))
		}
		w, seq := int(binary.BigEndian.Uint16(out[4:])), int(binary.BigEndian.Uint32(out[6:]))
		if w >= writers || seq != next[w] {
			t.Fatalf("record %d: writer %d seq %d, want seq %d", n, w, seq, next[w])
		}
		if !bytes.Equal(out[:size], record(w, seq, size)) {
			t.Fatalf("record %d (writer %d seq %d) is torn", n, w, seq)
		}
		next[w]++
		out = out[size:]
	}
	for w, n := range next {
		if n != perWriter {
			t.Errorf("writer %d: %d records arrived, want %d", w, n, perWriter)
		}
	}
}

// recordSize varies sizes, with an occasional record past flushThreshold.
func recordSize(w, seq int) int {
	if (w+seq)%97 == 0 {
		return flushThreshold + 100
	}
	return 10 + (w*13+seq*7)%300
}

func TestWriterConcurrent(t *testing.T) {
	const writers, perWriter = 50, 200
	sink := &recSink{yield: true}
	w := NewWriter(sink)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range perWriter {
				if err := w.Write(record(g, seq, recordSize(g, seq)), seq%3 == 0); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	out, calls := sink.snapshot()
	if sink.overlap.Load() {
		t.Error("the underlying writer was called concurrently")
	}
	checkRecords(t, out, writers, perWriter)
	t.Logf("%d records in %d writes", writers*perWriter, calls)
}

func TestWriterHold(t *testing.T) {
	f1, f2, f3 := testFrame(100, 1), testFrame(50, 2), testFrame(70, 3)
	sink := &recSink{}
	w := NewWriter(sink)

	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	caller := append([]byte(nil), f1...)
	if err := w.Write(caller, true); err != nil {
		t.Fatal(err)
	}
	caller[10] ^= 0xff // the Writer copied the frame
	if err := w.Write(f2, true); err != nil {
		t.Fatal(err)
	}
	if out, calls := sink.snapshot(); len(out) != 0 || calls != 0 {
		t.Fatalf("held frames written early: %d bytes in %d writes", len(out), calls)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if out, calls := sink.snapshot(); !bytes.Equal(out, concat(f1, f2)) || calls != 1 {
		t.Fatalf("after Flush: %d bytes in %d writes, want both frames in 1", len(out), calls)
	}

	// A held frame goes out with the next unheld one, in one write.
	if err := w.Write(f3, true); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(f1, false); err != nil {
		t.Fatal(err)
	}
	if out, calls := sink.snapshot(); !bytes.Equal(out, concat(f1, f2, f3, f1)) || calls != 2 {
		t.Fatalf("after unheld write: %d bytes in %d writes", len(out), calls)
	}

	// Past flushThreshold a held frame is written anyway.
	half := testFrame(flushThreshold/2+1, 4)
	if err := w.Write(half, true); err != nil {
		t.Fatal(err)
	}
	if _, calls := sink.snapshot(); calls != 2 {
		t.Fatalf("%d writes; the first half-threshold frame must be held", calls)
	}
	if err := w.Write(half, true); err != nil {
		t.Fatal(err)
	}
	if out, calls := sink.snapshot(); calls != 3 || !bytes.Equal(out[len(out)-2*len(half):], concat(half, half)) {
		t.Fatalf("%d writes; frames past the threshold must be written", calls)
	}
	if err := w.Flush(); err != nil { // nothing pending: no write
		t.Fatal(err)
	}
	if _, calls := sink.snapshot(); calls != 3 {
		t.Fatalf("Flush with nothing pending wrote (%d writes)", calls)
	}
}

// While one goroutine is writing, others only append and return; the
// flusher writes what they appended before it returns.
func TestWriterOthersDoNotWait(t *testing.T) {
	f1, f2, f3 := testFrame(100, 1), testFrame(50, 2), testFrame(70, 3)
	sink := newBlockSink()
	w := NewWriter(sink)
	flushed := make(chan error, 1)
	go func() { flushed <- w.Write(f1, false) }()
	waitFor(t, sink.entered, "the first write")

	returned := make(chan error, 1)
	go func() {
		err := w.Write(f2, false)
		if err == nil {
			err = w.Flush() // a flush is in progress: returns at once
		}
		if err == nil {
			err = w.Write(f3, true)
		}
		returned <- err
	}()
	if err := waitFor(t, returned, "writes during a flush to return"); err != nil {
		t.Fatal(err)
	}
	close(sink.release)
	if err := waitFor(t, flushed, "the flusher"); err != nil {
		t.Fatal(err)
	}
	if out, calls := sink.snapshot(); !bytes.Equal(out, concat(f1, f2, f3)) || calls != 2 {
		t.Fatalf("%d bytes in %d writes, want all three frames in 2", len(out), calls)
	}
}

func TestWriterError(t *testing.T) {
	sink := &errSink{}
	w := NewWriter(sink)
	f := testFrame(100, 1)
	if err := w.Write(f, true); err != nil {
		t.Fatalf("held write: %v", err)
	}
	if err := w.Write(f, false); !errors.Is(err, errBoom) {
		t.Fatalf("failing write: %v, want errBoom", err)
	}
	for i, op := range []func() error{
		func() error { return w.Write(f, false) },
		func() error { return w.Write(f, true) },
		w.Flush,
	} {
		if err := op(); !errors.Is(err, errBoom) {
			t.Errorf("operation %d after the failure: %v, want errBoom", i, err)
		}
	}
	if n := sink.calls.Load(); n != 1 {
		t.Errorf("underlying writer called %d times, want 1 (no retry after an error)", n)
	}
}

func TestAsyncWriterConcurrent(t *testing.T) {
	defer goleak.VerifyNone(t)
	const writers, perWriter = 50, 100
	total := 0
	for g := range writers {
		for seq := range perWriter {
			total += recordSize(g, seq)
		}
	}
	full := make(chan struct{})
	sink := &recSink{yield: true, want: total, full: full}
	a := NewAsyncWriter(sink)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range perWriter {
				if err := a.Write(record(g, seq, recordSize(g, seq))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-full:
	case <-time.After(waitTimeout):
		out, _ := sink.snapshot()
		t.Fatalf("%d of %d bytes arrived", len(out), total)
	}
	a.Close()
	out, calls := sink.snapshot()
	if sink.overlap.Load() {
		t.Error("the underlying writer was called concurrently")
	}
	checkRecords(t, out, writers, perWriter)
	t.Logf("%d records in %d writes", writers*perWriter, calls)
}

func TestAsyncWriterClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	a := NewAsyncWriter(&recSink{})
	a.Close()
	if err := a.Write(testFrame(20, 0)); !errors.Is(err, errClosed) {
		t.Errorf("Write after Close: %v, want errClosed", err)
	}
	a.Close() // a second Close returns
}

// Close waits for the write in progress, then stops the goroutine.
func TestAsyncWriterCloseDuringWrite(t *testing.T) {
	defer goleak.VerifyNone(t)
	sink := newBlockSink()
	a := NewAsyncWriter(sink)
	f := testFrame(100, 1)
	if err := a.Write(f); err != nil {
		t.Fatal(err)
	}
	waitFor(t, sink.entered, "the write")
	closed := make(chan struct{})
	go func() {
		a.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a write was in progress")
	default:
	}
	close(sink.release)
	waitFor(t, closed, "Close")
	if out, _ := sink.snapshot(); !bytes.Equal(out, f) {
		t.Fatalf("%d bytes written, want the frame", len(out))
	}
}

func TestAsyncWriterError(t *testing.T) {
	defer goleak.VerifyNone(t)
	sink := &errSink{called: make(chan struct{}, 10)}
	a := NewAsyncWriter(sink)
	if err := a.Write(testFrame(100, 1)); err != nil {
		t.Fatalf("first write: %v", err)
	}
	waitFor(t, sink.called, "the underlying write")
	waitFor(t, a.done, "the writer goroutine to stop after the error")
	if err := a.Write(testFrame(100, 2)); !errors.Is(err, errBoom) {
		t.Fatalf("write after the failure: %v, want errBoom", err)
	}
	a.Close()
	if n := sink.calls.Load(); n != 1 {
		t.Errorf("underlying writer called %d times, want 1", n)
	}
}

// TestInlineHandOff drives the hand-off state machine with explicit ticks.
func TestInlineHandOff(t *testing.T) {
	type step int
	const (
		begin step = iota // Begin a call (the token is kept)
		end               // End the last call; expect the bool in ok
		tick              // one monitor tick
	)
	type op struct {
		s  step
		ok bool // for end: what End must return
	}
	tests := []struct {
		name    string
		ops     []op
		resumes int
	}{
		{name: "idle", ops: []op{{s: tick}, {s: tick}, {s: tick}}},
		{name: "call-seen-once", ops: []op{{s: begin}, {s: tick}, {s: end, ok: true}, {s: tick}, {s: tick}}},
		{name: "call-not-seen", ops: []op{{s: tick}, {s: begin}, {s: end, ok: true}, {s: tick}}},
		{name: "different-calls-each-seen-once", ops: []op{
			{s: begin}, {s: tick}, {s: end, ok: true},
			{s: begin}, {s: tick}, {s: end, ok: true},
			{s: begin}, {s: tick}, {s: end, ok: true}, {s: tick},
		}},
		{name: "call-seen-twice", ops: []op{{s: begin}, {s: tick}, {s: tick}, {s: end, ok: false}}, resumes: 1},
		{name: "blocked-longer-hands-off-once", ops: []op{{s: begin}, {s: tick}, {s: tick}, {s: tick}, {s: tick}, {s: end, ok: false}}, resumes: 1},
		// The new reader's first call gets a full tick of its own.
		{name: "new-reader-call", ops: []op{
			{s: begin}, {s: tick}, {s: tick},
			{s: begin}, {s: tick}, {s: end, ok: true},
		}, resumes: 1},
		{name: "new-reader-blocks-too", ops: []op{
			{s: begin}, {s: tick}, {s: tick},
			{s: begin}, {s: tick}, {s: tick}, {s: end, ok: false},
		}, resumes: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resumes := 0
			in := &Inline{Resume: func() { resumes++ }}
			var tokens []uint64
			for i, o := range tt.ops {
				switch o.s {
				case begin:
					tok := in.Begin()
					for _, old := range tokens {
						if tok == old {
							t.Fatalf("op %d: token %d reused", i, tok)
						}
					}
					tokens = append(tokens, tok)
				case end:
					if got := in.End(tokens[len(tokens)-1]); got != o.ok {
						t.Fatalf("op %d: End = %v, want %v", i, got, o.ok)
					}
				case tick:
					in.handOff()
				}
			}
			if resumes != tt.resumes {
				t.Fatalf("Resume called %d times, want %d", resumes, tt.resumes)
			}
		})
	}
}

// fakeConn is a connection served inline: each reader goroutine takes the
// next request, runs its handler between Begin and End, and stops reading
// when End reports that the monitor handed the connection on.
type fakeConn struct {
	in      Inline
	reqs    chan fakeReq
	results chan fakeResult
	resumed chan struct{}
	resumes atomic.Int32
	readers atomic.Int32
	wg      sync.WaitGroup
}

type fakeReq struct {
	name   string
	handle func()
}

type fakeResult struct {
	name   string
	reader int32 // which reader goroutine served it, from 1
	still  bool  // End's result
}

func newFakeConn() *fakeConn {
	c := &fakeConn{
		reqs:    make(chan fakeReq),
		results: make(chan fakeResult, 1000),
		resumed: make(chan struct{}, 1000),
	}
	c.in.Resume = func() {
		c.resumes.Add(1)
		select {
		case c.resumed <- struct{}{}:
		default:
		}
		c.startReader()
	}
	c.startReader()
	return c
}

func (c *fakeConn) startReader() {
	c.wg.Add(1)
	id := c.readers.Add(1)
	go func() {
		defer c.wg.Done()
		for req := range c.reqs {
			tok := c.in.Begin()
			req.handle()
			still := c.in.End(tok)
			c.results <- fakeResult{name: req.name, reader: id, still: still}
			if !still {
				return
			}
		}
	}()
}

// stop ends the readers and waits for them.
func (c *fakeConn) stop(t *testing.T) {
	close(c.reqs)
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	waitFor(t, done, "the readers to stop")
}

func TestMonitorHandsOffBlockedHandler(t *testing.T) {
	defer goleak.VerifyNone(t)
	m := NewMonitor(time.Millisecond)
	defer m.Close()
	c := newFakeConn()
	m.Add(&c.in)

	entered, release := make(chan struct{}), make(chan struct{})
	c.reqs <- fakeReq{name: "slow", handle: func() {
		close(entered)
		<-release
	}}
	waitFor(t, entered, "the slow handler to start")
	waitFor(t, c.resumed, "the monitor to resume the connection")

	// The blocked reader cannot take this one: a new reader must.
	c.reqs <- fakeReq{name: "fast", handle: func() {}}
	r := waitFor(t, c.results, "the call behind the blocked one")
	if r.name != "fast" || r.reader == 1 {
		t.Fatalf("got %+v, want the fast call served by a new reader", r)
	}

	close(release)
	r = waitFor(t, c.results, "the slow call")
	if r.name != "slow" || r.reader != 1 || r.still {
		t.Fatalf("got %+v, want the slow call on reader 1 with End = false", r)
	}

	// The connection keeps being served.
	c.reqs <- fakeReq{name: "after", handle: func() {}}
	if r := waitFor(t, c.results, "a call after the hand-off"); r.name != "after" || r.reader == 1 {
		t.Fatalf("got %+v", r)
	}
	m.Remove(&c.in)
	c.stop(t)
	if n := c.resumes.Load(); n < 1 {
		t.Fatalf("%d resumes", n)
	}
}

func TestMonitorLeavesFastHandlers(t *testing.T) {
	defer goleak.VerifyNone(t)
	m := NewMonitor(time.Millisecond)
	c := newFakeConn()
	m.Add(&c.in)

	// Keep calls coming for many ticks.
	start := time.Now()
	n := 0
	for ; n < 200 || time.Since(start) < 30*time.Millisecond; n++ {
		c.reqs <- fakeReq{name: "fast", handle: func() {}}
		if r := waitFor(t, c.results, "a fast call"); !r.still || r.reader != 1 {
			t.Fatalf("call %d: %+v, want reader 1 to keep the connection", n, r)
		}
	}
	m.Close()
	c.stop(t)
	if r := c.resumes.Load(); r != 0 {
		t.Fatalf("Resume called %d times over %d fast calls", r, n)
	}
}

func TestIsTraceKey(t *testing.T) {
	for k, want := range map[string]bool{
		"traceparent": true, "Traceparent": true, "TRACESTATE": true, "tracestate": true,
		"baggage": false, "traceparentx": false, "tracestat": false, "": false, "x-traceparent": false,
	} {
		if got := IsTraceKey(k); got != want {
			t.Errorf("IsTraceKey(%q) = %v, want %v", k, got, want)
		}
	}
}
