package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/sluicerpc/sluice/protocol/ttheader"
	"golang.org/x/net/http2/hpack"
)

// Protocol is what a connection speaks, as sniffed from its first bytes.
type Protocol int

// The protocols one Sluice port serves.
const (
	Native Protocol = iota + 1 // TTHeader frames
	GRPC                       // HTTP/2 whose first request is application/grpc
	HTTP                       // HTTP/1.x, or HTTP/2 (h2c) carrying anything else
)

func (p Protocol) String() string {
	switch p {
	case Native:
		return "native"
	case GRPC:
		return "grpc"
	case HTTP:
		return "http"
	}
	return "unknown"
}

// ErrGarbage is returned for a connection whose first bytes match no protocol.
var ErrGarbage = errors.New("transport: first bytes match no protocol (native TTHeader, HTTP/2, HTTP/1.x)")

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// SniffTimeouts bound how long Sniff waits.
type SniffTimeouts struct {
	// First bounds the wait for enough bytes to tell the protocol.
	First time.Duration
	// H2Headers bounds the wait for the first request of an HTTP/2
	// connection; a connection that sends none by then is taken for gRPC
	// (an idle gRPC channel).
	H2Headers time.Duration
}

// Sniff reads from c until it knows the protocol, and returns a connection
// that replays what was read. Bytes arriving one at a time are fine.
//
// HTTP/2 connections need one step more, because gRPC and Connect (h2c)
// share the preface: Sniff sends an empty SETTINGS frame (so clients that
// wait for the server's settings go on), reads until the first HEADERS
// frame, and looks at its content-type. The client's acknowledgement of
// that SETTINGS frame is removed from the stream, before or after the
// hand-off, so the real server never sees an acknowledgement it did not ask for.
func Sniff(c net.Conn, t SniffTimeouts) (Protocol, net.Conn, error) {
	buf := make([]byte, 0, 1024)
	if t.First > 0 {
		c.SetReadDeadline(time.Now().Add(t.First))
	}
	var p Protocol
	for p == 0 {
		var more bool
		var err error
		p, more, err = classify(buf)
		if err != nil {
			return 0, nil, err
		}
		if !more {
			break
		}
		if buf, err = readMore(c, buf); err != nil {
			return 0, nil, fmt.Errorf("transport: sniffing %d bytes in: %w", len(buf), err)
		}
	}
	if p != GRPC {
		c.SetReadDeadline(time.Time{})
		return p, &replayConn{Conn: c, pending: buf}, nil
	}
	return sniffH2(c, buf, t.H2Headers)
}

func readMore(c net.Conn, buf []byte) ([]byte, error) {
	if len(buf) == cap(buf) {
		buf = append(buf, 0)[:len(buf)]
	}
	n, err := c.Read(buf[len(buf):cap(buf)])
	buf = buf[:len(buf)+n]
	if n > 0 {
		return buf, nil
	}
	if err == nil {
		err = errors.New("empty read")
	}
	return buf, err
}

var httpMethods = []string{"GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE", "PATCH", "CONNECT", "TRACE"}

// classify decides from the bytes so far: a protocol (GRPC meaning "an
// HTTP/2 preface"), more=true to read on, or an error.
func classify(b []byte) (p Protocol, more bool, err error) {
	if len(b) == 0 {
		return 0, true, nil
	}
	if b[0] < 'A' || b[0] > 'Z' {
		// TTHeader: a length word (first byte 0 for frames under 16 MiB), then the magic.
		if len(b) < 6 {
			return 0, true, nil
		}
		if ttheader.IsFrameStart(b) {
			return Native, false, nil
		}
		return 0, false, ErrGarbage
	}
	if n := min(len(b), len(h2Preface)); string(b[:n]) == h2Preface[:n] {
		if len(b) < len(h2Preface) {
			return 0, true, nil
		}
		return GRPC, false, nil
	}
	i := bytes.IndexByte(b, ' ')
	if i < 0 {
		for _, c := range b {
			if c < 'A' || c > 'Z' {
				return 0, false, ErrGarbage
			}
		}
		if len(b) > len("OPTIONS") {
			return 0, false, ErrGarbage
		}
		return 0, true, nil
	}
	for _, m := range httpMethods {
		if string(b[:i]) == m {
			return HTTP, false, nil
		}
	}
	return 0, false, ErrGarbage
}

// HTTP/2 frame types and flags the sniffer reads.
const (
	frameHeaders      = 0x1
	frameSettings     = 0x4
	frameContinuation = 0x9
	flagAck           = 0x1
	flagEndHeaders    = 0x4
	flagPadded        = 0x8
	flagPriority      = 0x20
	frameHeaderLen    = 9
)

// sniffH2 decides between gRPC and HTTP for a connection that sent the
// HTTP/2 preface (buf holds at least the preface).
func sniffH2(c net.Conn, buf []byte, wait time.Duration) (Protocol, net.Conn, error) {
	// An empty SETTINGS frame: clients that wait for the server's settings
	// before their first request (grpc-go) now go on.
	if _, err := c.Write([]byte{0, 0, 0, frameSettings, 0, 0, 0, 0, 0}); err != nil {
		return 0, nil, err
	}
	if wait > 0 {
		c.SetReadDeadline(time.Now().Add(wait))
	}
	rc := &replayConn{Conn: c, dropAck: true}
	pos := len(h2Preface)
	var block []byte // header block fragments of the first request
	for {
		// Walk the whole frames in buf[pos:].
		for len(buf)-pos >= frameHeaderLen {
			length := int(binary.BigEndian.Uint32(buf[pos:]) >> 8)
			typ, flags := buf[pos+3], buf[pos+4]
			if rc.dropAck && typ == frameSettings && flags&flagAck != 0 && length == 0 {
				buf = append(buf[:pos], buf[pos+frameHeaderLen:]...)
				rc.dropAck = false
				continue
			}
			if len(buf)-pos-frameHeaderLen < length {
				break // the frame's payload is not all here yet
			}
			payload := buf[pos+frameHeaderLen : pos+frameHeaderLen+length]
			pos += frameHeaderLen + length
			switch typ {
			case frameHeaders:
				frag, err := headerFragment(payload, flags)
				if err != nil {
					return 0, nil, err
				}
				block = append(block, frag...)
			case frameContinuation:
				block = append(block, payload...)
			default:
				continue
			}
			if flags&flagEndHeaders != 0 {
				c.SetReadDeadline(time.Time{})
				rc.handOff(buf, pos)
				if isGRPC(block) {
					return GRPC, rc, nil
				}
				return HTTP, rc, nil
			}
		}
		var err error
		if buf, err = readMore(c, buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && wait > 0 {
				// An idle HTTP/2 client: gRPC channels connect before their first call.
				c.SetReadDeadline(time.Time{})
				rc.handOff(buf, pos)
				return GRPC, rc, nil
			}
			return 0, nil, fmt.Errorf("transport: sniffing HTTP/2: %w", err)
		}
	}
}

// headerFragment strips padding and priority fields from a HEADERS payload.
func headerFragment(p []byte, flags byte) ([]byte, error) {
	pad := 0
	if flags&flagPadded != 0 {
		if len(p) < 1 {
			return nil, errors.New("transport: malformed HTTP/2 HEADERS frame")
		}
		pad = int(p[0])
		p = p[1:]
	}
	if flags&flagPriority != 0 {
		if len(p) < 5 {
			return nil, errors.New("transport: malformed HTTP/2 HEADERS frame")
		}
		p = p[5:]
	}
	if pad > len(p) {
		return nil, errors.New("transport: malformed HTTP/2 HEADERS padding")
	}
	return p[:len(p)-pad], nil
}

// isGRPC reports whether a request header block has a gRPC content type.
func isGRPC(block []byte) bool {
	ct := ""
	d := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == "content-type" {
			ct = f.Value
		}
	})
	if _, err := d.Write(block); err != nil {
		return false
	}
	return strings.HasPrefix(ct, "application/grpc")
}

// replayConn returns the sniffed bytes before reading on, and for HTTP/2
// removes the client's acknowledgement of the sniffer's SETTINGS frame if
// it comes after the hand-off.
type replayConn struct {
	net.Conn
	pending []byte
	// dropAck is set until the acknowledgement has been removed.
	dropAck bool
	// While dropAck: bytes left of the frame being passed through, and a
	// partial frame header.
	remain int
	hdr    [frameHeaderLen]byte
	hn     int
	raw    []byte
}

// handOff queues buf for replay: the whole frames before pos as they are,
// the partial frame after it through the filter, so the filter's position
// in the frame stream is right when live reads begin.
func (c *replayConn) handOff(buf []byte, pos int) {
	c.pending = append(buf[:pos:pos], c.filter(buf[pos:])...)
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if !c.dropAck {
		return c.Conn.Read(p)
	}
	for {
		if cap(c.raw) < len(p) {
			c.raw = make([]byte, len(p))
		}
		n, err := c.Conn.Read(c.raw[:len(p)])
		out := c.filter(c.raw[:n])
		if len(out) > 0 || err != nil {
			k := copy(p, out)
			c.pending = out[k:]
			return k, err
		}
	}
}

// filter passes frames through until it meets the SETTINGS acknowledgement,
// which it drops; after that everything passes.
func (c *replayConn) filter(in []byte) []byte {
	var out []byte
	for len(in) > 0 {
		if !c.dropAck {
			return append(out, in...)
		}
		if c.remain > 0 {
			k := min(c.remain, len(in))
			out = append(out, in[:k]...)
			c.remain -= k
			in = in[k:]
			continue
		}
		k := copy(c.hdr[c.hn:], in)
		c.hn += k
		in = in[k:]
		if c.hn < frameHeaderLen {
			break
		}
		c.hn = 0
		length := int(binary.BigEndian.Uint32(c.hdr[:4]) >> 8)
		if c.hdr[3] == frameSettings && c.hdr[4]&flagAck != 0 && length == 0 {
			c.dropAck = false
			continue
		}
		out = append(out, c.hdr[:]...)
		c.remain = length
	}
	return out
}
