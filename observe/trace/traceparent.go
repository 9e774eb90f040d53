package trace

import (
	"context"
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
	if !unhex(ver[:], h[0:2]) || !unhex(tid[:], h[3:35]) || !unhex(sid[:], h[36:52]) || !unhex(fl[:], h[53:55]) {
		return tid, sid, 0, errTPFormat
	}
	rest := h[55:]
	switch {
	case ver[0] == 0xff:
		return tid, sid, 0, errTPVersion
	case ver[0] == 0 && (rest != "" || fl[0] > 3):
		return tid, sid, 0, errTPVersion0
	case rest != "" && rest[0] != '-':
		return tid, sid, 0, errTPFormat
	case !tid.IsValid():
		return tid, sid, 0, errTPTraceID
	case !sid.IsValid():
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
	putTraceparent(&b, sc)
	return string(b[:])
}

// putTraceparent writes sc into b as a version 00 traceparent.
func putTraceparent(b *[traceparentLen]byte, sc *oteltrace.SpanContext) {
	tid, sid := sc.TraceID(), sc.SpanID()
	b[0], b[1], b[2] = '0', '0', '-'
	putHex(b[3:35], tid[:])
	b[35] = '-'
	putHex(b[36:52], sid[:])
	b[52] = '-'
	putHex(b[53:55], []byte{byte(sc.TraceFlags() & (oteltrace.FlagsSampled | oteltrace.FlagsRandom))})
}

func putHex(dst, src []byte) {
	_ = dst[2*len(src)-1]
	for i, c := range src {
		p := &hexPairs[c]
		dst[2*i], dst[2*i+1] = p[0], p[1]
	}
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
//	server.New(server.WithMiddleware(tr.Server(), trace.RequireContext()))
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
