// Package connect implements the unary half of the Connect protocol
// (https://connectrpc.com/docs/protocol): a plain HTTP POST to
// /pkg.Service/Method whose body is the bare request message, protobuf
// (application/proto) or the protobuf JSON mapping (application/json), and
// whose response is the bare reply or, on failure, a JSON error with an HTTP
// status derived from its code. curl, connect-go and connect-es speak it.
//
// The package holds what the server (server.Server) and the client transport
// (Client) share: codec selection by Content-Type, the Connect-Timeout-Ms
// header, the error body, metadata as headers, gzip, and body limits.
//
//	c, err := connect.NewClient("http://127.0.0.1:8080")
//	if err != nil { ... }
//	defer c.Close()
//	info := &callinfo.Info{Service: "pkg.v1.EchoService", Method: "Echo"}
//	err = c.Call(ctx, info, req, resp)
package connect

import (
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/sluicerpc/sluice/codec"
	"github.com/sluicerpc/sluice/codec/proto"
	"google.golang.org/protobuf/encoding/protojson"
	protov2 "google.golang.org/protobuf/proto"
)

// Header names and values of the unary protocol.
const (
	HeaderProtocolVersion = "Connect-Protocol-Version"
	HeaderTimeout         = "Connect-Timeout-Ms"
	// HeaderAttempt carries the attempt number of a retried call (absent on
	// the first), as sluice-attempt does on the native protocol.
	HeaderAttempt = "Sluice-Attempt"
	// HeaderCaller names the calling service, as FromService does on the
	// native protocol.
	HeaderCaller = "Sluice-Caller"
	// TrailerPrefix marks trailing metadata sent as headers on a unary reply.
	TrailerPrefix = "Trailer-"

	ProtocolVersion = "1"

	ContentTypeProto = "application/proto"
	ContentTypeJSON  = "application/json"
	// contentTypeJSONUTF8 is the other spelling connect-go and connect-es send.
	contentTypeJSONUTF8 = "application/json; charset=utf-8"
)

// JSON is the codec of application/json: the protobuf JSON mapping with
// lowerCamelCase field names (what Connect clients send by default), and
// unknown fields ignored when decoding so peers need not share one schema
// version.
var JSON codec.Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) Name() string { return "json" }

func (jsonCodec) Marshal(buf []byte, v any) ([]byte, error) {
	m, ok := v.(protov2.Message)
	if !ok {
		return buf, fmt.Errorf("connect: %T is not a proto.Message", v)
	}
	return protojson.MarshalOptions{}.MarshalAppend(buf, m)
}

func (jsonCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(protov2.Message)
	if !ok {
		return fmt.Errorf("connect: %T is not a proto.Message", v)
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, m)
}

// CodecFor returns the codec for a unary request's Content-Type and the
// Content-Type of a successful reply to it (the request's, in canonical
// form). ok is false for any other type; the server answers those with
// HTTP 415. application/json may carry charset=utf-8 and nothing else.
func CodecFor(contentType string) (c codec.Codec, replyType string, ok bool) {
	switch contentType { // the spellings clients send, without parsing
	case ContentTypeProto:
		return proto.Codec, ContentTypeProto, true
	case ContentTypeJSON:
		return JSON, ContentTypeJSON, true
	case contentTypeJSONUTF8:
		return JSON, contentTypeJSONUTF8, true
	}
	base, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, "", false
	}
	switch base {
	case ContentTypeProto:
		if len(params) == 0 {
			return proto.Codec, ContentTypeProto, true
		}
	case ContentTypeJSON:
		cs, has := params["charset"]
		switch {
		case len(params) == 0:
			return JSON, ContentTypeJSON, true
		case len(params) == 1 && has && strings.EqualFold(cs, "utf-8"):
			return JSON, contentTypeJSONUTF8, true
		}
	}
	return nil, "", false
}

// maxTimeoutDigits is the protocol's limit on Connect-Timeout-Ms.
const (
	maxTimeoutDigits = 10
	maxTimeout       = 9_999_999_999 * time.Millisecond
)

// ParseTimeout parses a Connect-Timeout-Ms value: one to ten ASCII digits,
// in milliseconds. "0" parses as zero, an already expired deadline (the
// specification asks for a positive value; connect-go accepts zero too).
func ParseTimeout(s string) (time.Duration, error) {
	if len(s) == 0 || len(s) > maxTimeoutDigits {
		return 0, fmt.Errorf("connect: %s %q: want 1 to %d digits", HeaderTimeout, s, maxTimeoutDigits)
	}
	var ms int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("connect: %s %q: not a decimal number of milliseconds", HeaderTimeout, s)
		}
		ms = ms*10 + int64(c-'0')
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// FormatTimeout formats the time left until a deadline for
// Connect-Timeout-Ms, in milliseconds rounded up (so the server never gives
// up before the caller), at least 1. ok is false when it needs more than ten
// digits (over 115 days); send no header then.
func FormatTimeout(d time.Duration) (s string, ok bool) {
	if d > maxTimeout {
		return "", false
	}
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	if ms < 1 {
		ms = 1
	}
	return strconv.FormatInt(ms, 10), true
}
