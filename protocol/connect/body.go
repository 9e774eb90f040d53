package connect

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// Content codings. Sluice reads and writes gzip; identity is no coding.
const (
	EncodingGzip     = "gzip"
	EncodingIdentity = "identity"
	// AcceptEncoding is the Accept-Encoding value Sluice sends.
	AcceptEncoding = EncodingGzip
	// CompressMinBytes is the smallest body worth compressing; smaller ones
	// are sent as they are even when the peer accepts gzip.
	CompressMinBytes = 1 << 10
)

// AcceptsGzip reports whether an Accept-Encoding value lists gzip (with a
// non-zero quality, should the peer send qualities).
func AcceptsGzip(acceptEncoding string) bool {
	for part := range strings.SplitSeq(acceptEncoding, ",") {
		name, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(name), EncodingGzip) {
			continue
		}
		q, ok := strings.CutPrefix(strings.TrimSpace(params), "q=")
		if !ok {
			return true
		}
		q = strings.TrimRight(strings.TrimSpace(q), "0")
		return q != "" && q != "0." && q != "0"
	}
	return false
}

// ReadBody reads a body of at most limit bytes into dst, decompressing it
// as its Content-Encoding says (empty, "identity" or "gzip"). The limit
// applies to the bytes on the wire and, for gzip, to the bytes they expand
// to. Failures are status errors: ResourceExhausted over the limit,
// Unimplemented for another coding, InvalidArgument for broken gzip,
// Unavailable when reading fails.
func ReadBody(dst *bytes.Buffer, r io.Reader, contentEncoding string, limit int) error {
	switch contentEncoding {
	case "", EncodingIdentity:
		return readLimited(dst, r, limit)
	case EncodingGzip:
	default:
		return status.Errorf(codes.Unimplemented, "connect: content encoding %q is not supported; supported: %s", contentEncoding, EncodingGzip)
	}
	raw := getBuffer()
	defer putBuffer(raw)
	if err := readLimited(raw, r, limit); err != nil {
		return err
	}
	if raw.Len() == 0 { // the protocol forbids decompressing empty content
		return nil
	}
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(raw)
	} else {
		err = zr.Reset(raw)
	}
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "connect: decompressing gzip body: %v", err)
	}
	defer gzipReaders.Put(zr)
	err = readLimited(dst, zr, limit)
	var st *status.Error
	if errors.As(err, &st) && st.Status().Code() == codes.Unavailable { // a decoding error, not I/O
		return status.Errorf(codes.InvalidArgument, "connect: decompressing gzip body: %v", errors.Unwrap(err))
	}
	return err
}

// readLimited appends r to dst, failing once it has more than limit bytes.
func readLimited(dst *bytes.Buffer, r io.Reader, limit int) error {
	n, err := dst.ReadFrom(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return status.Wrap(codes.Unavailable, fmt.Sprintf("connect: reading body: %v", err), err)
	}
	if n > int64(limit) {
		return status.Errorf(codes.ResourceExhausted, "connect: body larger than the limit of %d bytes", limit)
	}
	return nil
}

// Compress appends the gzip encoding of src to dst.
func Compress(dst *bytes.Buffer, src []byte) error {
	zw, _ := gzipWriters.Get().(*gzip.Writer)
	if zw == nil {
		zw = gzip.NewWriter(dst)
	} else {
		zw.Reset(dst)
	}
	defer gzipWriters.Put(zw)
	if _, err := zw.Write(src); err != nil {
		return err
	}
	return zw.Close()
}

var (
	gzipReaders sync.Pool
	gzipWriters sync.Pool
	buffers     = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

// maxPooledBuffer keeps one huge body from pinning its memory in the pool.
const maxPooledBuffer = 64 << 10

func getBuffer() *bytes.Buffer { return buffers.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	buffers.Put(b)
}
