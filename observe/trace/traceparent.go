package trace

import (
	"context"
	"encoding/binary"
	"errors"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/status"
	oteltrace "go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
)

// The W3C Trace Context metadata keys.
const (
	TraceparentKey = metadata.KeyTraceparent
	TracestateKey  = metadata.KeyTracestate
)

// The reasons parseTraceparent gives for a malformed traceparent. They
// follow the checks of propagation.TraceContext, which a fuzz test holds
// this parser to.
var (
	errTPFormat   = errors.New("want 00-<32 hex trace id>-<16 hex span id>-<2 hex flags> in lower case")
	errTPVersion  = errors.New("version ff is invalid")
	errTPTraceID  = errors.New("the trace id is all zeros")
	errTPSpanID   = errors.New("the span id is all zeros")
	errTPVersion0 = errors.New("version 00 allows no fields after the flags and no flags above 03")
)

// parseTraceparent parses a W3C traceparent value without allocating. It
// accepts what propagation.TraceContext accepts: a future version may carry
// more fields after the flags; version 00 may not.
func parseTraceparent(h string) (tid oteltrace.TraceID, sid oteltrace.SpanID, flags oteltrace.TraceFlags, err error) {
	// version(2) - trace id(32) - span id(16) - flags(2)
	if len(h) < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-' {
		return tid, sid, 0, errTPFormat
	}
	var ver, fl [1]byte
	ok := unhex(ver[:], h[0:2]) && unhex(fl[:], h[53:55])
	var w [6]uint32 // the ids, four bytes each
	for i, at := range [...]int{3, 11, 19, 27, 36, 44} {
		var good bool
		w[i], good = unhexWord(load64(h[at : at+8]))
		ok = ok && good
	}
	if !ok {
		return tid, sid, 0, errTPFormat
	}
	for i := range 4 {
		binary.LittleEndian.PutUint32(tid[4*i:], w[i])
	}
	binary.LittleEndian.PutUint32(sid[:], w[4])
	binary.LittleEndian.PutUint32(sid[4:], w[5])
	rest := h[55:]
	switch {
	case ver[0] == 0xff:
		return tid, sid, 0, errTPVersion
	case ver[0] == 0 && (rest != "" || fl[0] > 3):
		return tid, sid, 0, errTPVersion0
	case rest != "" && rest[0] != '-':
		return tid, sid, 0, errTPFormat
	case w[0]|w[1]|w[2]|w[3] == 0: // tid.IsValid, cheaper
		return tid, sid, 0, errTPTraceID
	case w[4]|w[5] == 0:
		return tid, sid, 0, errTPSpanID
	}
	return tid, sid, oteltrace.TraceFlags(fl[0]) & (oteltrace.FlagsSampled | oteltrace.FlagsRandom), nil
}

// unhex decodes lower-case hex s into dst, len(s) == 2*len(dst).
func unhex(dst []byte, s string) bool {
	var bad byte
	for i := range dst {
		hi, lo := hexValue[s[2*i]], hexValue[s[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo&0xf
	}
	return bad&0xf0 == 0
}

// Word-at-a-time hex, eight digits (four bytes) per step: a traceparent's
// ids are 48 digits, and a table look-up per digit made decoding them a
// good part of what tracing costs a server.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// load64 returns the first eight bytes of s, the first in the low byte.
func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// unhexWord decodes the eight lower-case hex digits of v, the first in
// its low byte, into the four bytes of the result, the first low; ok is
// false when v holds anything but '0'-'9' and 'a'-'f'.
func unhexWord(v uint64) (uint32, bool) {
	// For bytes below 0x80, x+(0x80-lo) sets a byte's high bit when
	// x >= lo, x+(0x7f-hi) when x > hi, without carries between bytes.
	digit := (v + 0x50*ones) &^ (v + 0x46*ones)
	letter := (v + 0x1f*ones) &^ (v + 0x19*ones)
	ok := v&highs == 0 && (digit|letter)&highs == highs
	// A digit's value is its low nibble, plus 9 for a letter (bit 6).
	v = v&(0x0f*ones) + (v>>6)&ones*9
	// Pairs of nibbles into bytes, then the bytes together.
	v = (v<<4 | v>>8) & 0x00ff00ff00ff00ff
	v = (v | v>>8) & 0x0000ffff0000ffff
	return uint32(v | v>>16), ok
}

// putHexWords writes src, whose length is a multiple of 4, into dst in
// lower-case hex.
func putHexWords(dst, src []byte) {
	for len(src) >= 4 {
		_ = src[3]
		v := uint64(src[0]) | uint64(src[1])<<16 | uint64(src[2])<<32 | uint64(src[3])<<48
		// Each byte's high nibble, then its low one, one per byte.
		v = v>>4&0x000f000f000f000f | v&0x000f000f000f000f<<8
		// '0' + n, and 'a'-'0'-10 more for n >= 10.
		v += 0x30*ones + (v+0x76*ones)>>7&ones*0x27
		_ = dst[7]
		dst[0], dst[1], dst[2], dst[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		dst[4], dst[5], dst[6], dst[7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
		dst, src = dst[8:], src[4:]
	}
}

// hexValue maps a lower-case hex digit to its value and anything else to 0xff.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// traceparentLen is the length of a version 00 traceparent.
const traceparentLen = 55

// formatTraceparent formats sc as a version 00 traceparent, as
// propagation.TraceContext does: one allocation, the string.
func formatTraceparent(sc *oteltrace.SpanContext) string {
	var b [traceparentLen]byte
	ids := spanIDs{tid: sc.TraceID(), sid: sc.SpanID(), flags: sc.TraceFlags()}
	putTraceparent(&b, &ids)
	return string(b[:])
}

// putTraceparent writes ids into b as a version 00 traceparent.
func putTraceparent(b *[traceparentLen]byte, ids *spanIDs) {
	b[0], b[1], b[2] = '0', '0', '-'
	putHexWords(b[3:35], ids.tid[:])
	b[35] = '-'
	putHexWords(b[36:52], ids.sid[:])
	b[52] = '-'
	p := &hexPairs[byte(ids.flags&(oteltrace.FlagsSampled|oteltrace.FlagsRandom))]
	b[53], b[54] = p[0], p[1]
}

// hexPairs maps a byte to its two lower-case hex digits.
var hexPairs = func() (t [256][2]byte) {
	for i := range t {
		t[i] = [2]byte{hexDigits[i>>4], hexDigits[i&0xf]}
	}
	return t
}()

// RequireContext returns a server middleware that rejects, with
// InvalidArgument, a call that carries no valid W3C traceparent in its
// metadata; the message says whether it was missing or how it was
// malformed. Install it on servers that must only be called inside a
// trace (trace-context enforcement is off unless this middleware is in the
// chain):
//
//	server.New(server.WithTracing(tr), server.WithMiddleware(trace.RequireContext()))
//
// After Tracing.Server, a rejected call still gets a server span (a root,
// since its caller sent no context); before it, it gets none.
func RequireContext() endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			tp, _ := metadata.IncomingValue(ctx, TraceparentKey)
			if tp == "" {
				return status.Errorf(codes.InvalidArgument, "trace: %s carries no traceparent metadata; this server requires W3C trace context on every call", callName(ctx))
			}
			if _, _, _, err := parseTraceparent(tp); err != nil {
				return status.Errorf(codes.InvalidArgument, "trace: %s carries a malformed traceparent %q: %v", callName(ctx), clip(tp), err)
			}
			return next(ctx, req, resp)
		}
	}
}

// callName names the call of ctx for messages: "the call to pkg.Service/Method".
func callName(ctx context.Context) string {
	info := callinfo.FromContext(ctx)
	if info == nil {
		return "the call"
	}
	return "the call to " + info.Service + "/" + info.Method
}

// clip keeps a hostile header from filling a message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
