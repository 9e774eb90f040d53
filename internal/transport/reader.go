package transport

import (
	"bufio"
	"io"
	"unsafe"

	"github.com/sluicerpc/sluice/protocol/ttheader"
)

// ReadBufferSize is the size of a connection's read buffer. Frames up to
// this size are decoded in place, without a copy.
const ReadBufferSize = 64 << 10

// FrameReader reads whole TTHeader frames from a buffered connection.
type FrameReader struct {
	r       *bufio.Reader
	max     int
	big     []byte
	pending int // bytes to discard on Release
}

// NewFrameReader returns a FrameReader over r that rejects frames larger
// than max bytes.
func NewFrameReader(r io.Reader, max int) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, ReadBufferSize), max: max}
}

// Next returns the next whole frame, length word included. The frame is
// valid until Release. Errors: io.EOF when the peer closed between frames,
// ttheader.ErrTooLarge or ErrMalformed for a bad frame, or a read error.
func (fr *FrameReader) Next() ([]byte, error) {
	fr.Release()
	head, err := fr.r.Peek(4)
	if err != nil {
		if err == io.EOF && len(head) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	size := ttheader.FrameSize(head)
	if err := ttheader.CheckSize(size, fr.max); err != nil {
		return nil, err
	}
	if size <= fr.r.Size() {
		frame, err := fr.r.Peek(size)
		if err != nil {
			return nil, unexpected(err)
		}
		fr.pending = size
		return frame, nil
	}
	if cap(fr.big) < size {
		fr.big = make([]byte, size)
	}
	frame := fr.big[:size]
	if _, err := io.ReadFull(fr.r, frame); err != nil {
		return nil, unexpected(err)
	}
	return frame, nil
}

// Release gives back the frame returned by Next. Next calls it too.
func (fr *FrameReader) Release() {
	if fr.pending > 0 {
		fr.r.Discard(fr.pending)
		fr.pending = 0
	}
	if cap(fr.big) > 1<<20 {
		fr.big = nil // do not pin a large buffer after one large frame
	}
}

// Buffered reports whether a whole frame is already buffered, so that
// Next will not block.
func (fr *FrameReader) Buffered() bool {
	n := fr.r.Buffered() - fr.pending
	if n < 4 {
		return false
	}
	b, err := fr.r.Peek(fr.pending + 4)
	if err != nil {
		return false
	}
	return ttheader.FrameSize(b[fr.pending:]) <= n
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// s2b views a string as bytes without copying; the result must not be written.
func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
