package connect

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/codec/proto"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/status"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestCodecFor(t *testing.T) {
	for _, tc := range []struct {
		in        string
		codec     string // "" for unsupported
		replyType string
	}{
		{"application/proto", "proto", "application/proto"},
		{"application/json", "json", "application/json"},
		{"application/json; charset=utf-8", "json", "application/json; charset=utf-8"},
		{"application/json;charset=UTF-8", "json", "application/json; charset=utf-8"},
		{"Application/JSON", "json", "application/json"},
		{"application/json; charset=latin1", "", ""},
		{"application/json; foo=bar", "", ""},
		{"application/proto; charset=utf-8", "", ""},
		{"application/connect+proto", "", ""},
		{"application/grpc", "", ""},
		{"text/plain", "", ""},
		{"", "", ""},
		{"application/", "", ""},
		{";;;", "", ""},
	} {
		c, rt, ok := CodecFor(tc.in)
		if ok != (tc.codec != "") {
			t.Errorf("CodecFor(%q): ok = %v", tc.in, ok)
			continue
		}
		if ok && (c.Name() != tc.codec || rt != tc.replyType) {
			t.Errorf("CodecFor(%q) = %s, %q; want %s, %q", tc.in, c.Name(), rt, tc.codec, tc.replyType)
		}
	}
}

func TestJSONCodec(t *testing.T) {
	// lowerCamel names out, either spelling in, unknown fields ignored.
	m, err := structpb.NewStruct(map[string]any{"a": 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := JSON.Marshal([]byte("prefix:"), m)
	if err != nil || !strings.HasPrefix(string(b), "prefix:{") {
		t.Fatalf("Marshal appends: %q, %v", b, err)
	}
	var sv wrapperspb.StringValue
	if err := JSON.Unmarshal([]byte(`"hi"`), &sv); err != nil || sv.Value != "hi" {
		t.Fatalf("got %q, %v", sv.Value, err)
	}
	if err := JSON.Unmarshal(nil, &sv); err == nil {
		t.Fatal("empty JSON body decoded without error")
	}
	if _, err := JSON.Marshal(nil, "not a message"); err == nil {
		t.Fatal("marshalled a non-message")
	}
	if err := JSON.Unmarshal([]byte(`{}`), new(int)); err == nil {
		t.Fatal("unmarshalled into a non-message")
	}
}

func TestTimeout(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1", time.Millisecond, true},
		{"5000", 5 * time.Second, true},
		{"0", 0, true},
		{"0000000001", time.Millisecond, true},
		{"9999999999", 9_999_999_999 * time.Millisecond, true},
		{"10000000000", 0, false}, // 11 digits
		{"", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.5", 0, false},
		{" 1", 0, false},
		{"1s", 0, false},
		{"0x10", 0, false},
		{"١", 0, false}, // a non-ASCII digit
	} {
		got, err := ParseTimeout(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "connect: ") {
			t.Errorf("error %q does not name the package", err)
		}
	}
	for _, tc := range []struct {
		in   time.Duration
		want string
		ok   bool
	}{
		{time.Millisecond, "1", true},
		{1500 * time.Microsecond, "2", true}, // rounded up
		{time.Nanosecond, "1", true},
		{0, "1", true},
		{-time.Second, "1", true},
		{50 * time.Millisecond, "50", true},
		{9_999_999_999 * time.Millisecond, "9999999999", true},
		{9_999_999_999*time.Millisecond + 1, "", false},
		{1<<63 - 1, "", false},
	} {
		got, ok := FormatTimeout(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("FormatTimeout(%v) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestErrorBody(t *testing.T) {
	// Encoding: the code by its Connect name, the message, no details.
	for c := codes.Code(1); c <= codes.Unauthenticated; c++ {
		b := AppendError(nil, status.Errorf(c, "it's <%d>", c))
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%v: %q is not JSON: %v", c, b, err)
		}
		want := map[string]any{"code": status.ConnectName(c), "message": fmt.Sprintf("it's <%d>", c)}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%v: got %v, want %v", c, got, want)
		}
		// And back.
		err := DecodeError(status.HTTPStatus(c), b)
		if status.Code(err) != c || status.Convert(err).Message() != want["message"] {
			t.Errorf("%v: round trip gave %v", c, err)
		}
	}
	if got := string(AppendError(nil, nil)); got != `{"code":"unknown"}` {
		t.Errorf("AppendError(nil) = %s", got)
	}
	if got := string(AppendError([]byte("x"), status.Err(codes.NotFound, ""))); got != `x{"code":"not_found"}` {
		t.Errorf("empty message: %s", got)
	}

	for _, tc := range []struct {
		name   string
		status int
		body   string
		code   codes.Code
		msg    string
	}{
		{"full", 404, `{"code":"not_found","message":"no such order","details":[{"type":"google.rpc.RetryInfo","value":"CgIIPA","debug":{"retryDelay":"30s"}}]}`, codes.NotFound, "no such order"},
		{"code only", 503, `{"code":"unavailable"}`, codes.Unavailable, "connect: HTTP 503 Service Unavailable"},
		{"code disagrees with status", 500, `{"code":"aborted","message":"m"}`, codes.Aborted, "m"},
		{"bad details keep the code", 400, `{"code":"out_of_range","message":"m","details":"oops"}`, codes.OutOfRange, "m"},
		{"unknown code name", 429, `{"code":"teapot","message":"m"}`, codes.Unavailable, "m"},
		{"numeric code", 401, `{"code":16,"message":"m"}`, codes.Unauthenticated, "m"},
		{"code ok is no error", 403, `{"code":"ok"}`, codes.PermissionDenied, "connect: HTTP 403 Forbidden"},
		{"missing code", 404, `{"message":"m"}`, codes.Unimplemented, "m"},
		{"null", 502, `null`, codes.Unavailable, "connect: HTTP 502 Bad Gateway"},
		{"empty object", 400, `{}`, codes.Internal, "connect: HTTP 400 Bad Request"},
		{"array", 504, `[1,2]`, codes.Unavailable, "connect: HTTP 504 Gateway Timeout"},
		{"html", 502, `<html>bad gateway</html>`, codes.Unavailable, "connect: HTTP 502 Bad Gateway"},
		{"no body", 418, ``, codes.Unknown, "connect: HTTP 418 I'm a teapot"},
		{"truncated", 500, `{"code":"internal","mess`, codes.Unknown, "connect: HTTP 500 Internal Server Error"},
		{"status 200 (misuse)", 200, ``, codes.Unknown, "connect: HTTP 200 OK"},
	} {
		err := DecodeError(tc.status, []byte(tc.body))
		if status.Code(err) != tc.code || status.Convert(err).Message() != tc.msg {
			t.Errorf("%s: got %v; want %v %q", tc.name, err, tc.code, tc.msg)
		}
	}
}

func TestMetadataFromHeaders(t *testing.T) {
	h := http.Header{
		"X-Tenant":                 {"acme", "beta"},
		"X-Trace-Bin":              {"AAEC", "AAECAw==", "AQ,Ag"}, // unpadded, padded, joined by a proxy
		"Content-Type":             {"application/json"},
		"Content-Length":           {"5"},
		"Content-Encoding":         {"gzip"},
		"Accept-Encoding":          {"gzip"},
		"Accept":                   {"*/*"},
		"User-Agent":               {"curl/8"},
		"Connect-Protocol-Version": {"1"},
		"Connect-Timeout-Ms":       {"100"},
		"Connect-Anything":         {"x"},
		"Grpc-Timeout":             {"1S"},
		"Te":                       {"trailers"},
		"Connection":               {"keep-alive"},
		"Sluice-Attempt":           {"2"},
		"traceparent":              {"00-abc-def-01"}, // not canonical: set by hand
	}
	md, err := Metadata(h)
	if err != nil {
		t.Fatal(err)
	}
	want := metadata.MD{
		"x-tenant":    {"acme", "beta"},
		"x-trace-bin": {"\x00\x01\x02", "\x00\x01\x02\x03", "\x01", "\x02"},
		"traceparent": {"00-abc-def-01"},
	}
	if !reflect.DeepEqual(md, want) {
		t.Fatalf("got %q, want %q", md, want)
	}
	if md, err := Metadata(http.Header{"Content-Type": {"x"}}); md != nil || err != nil {
		t.Fatalf("only reserved headers: %v, %v", md, err)
	}
	if _, err := Metadata(http.Header{"X-Bad-Bin": {"!!!"}}); err == nil || !strings.Contains(err.Error(), "x-bad-bin") {
		t.Fatalf("bad base64: %v", err)
	}
	for _, k := range []string{"content-type", "Content-Type", "CONTENT-TYPE", "connect-x", "Grpc-Status", "sluice-attempt"} {
		if !Reserved(k) {
			t.Errorf("Reserved(%q) = false", k)
		}
	}
	for _, k := range []string{"x-tenant", "traceparent", "baggage", "connectx", "trailer-x"} {
		if Reserved(k) {
			t.Errorf("Reserved(%q) = true", k)
		}
	}
}

func TestResponseMetadata(t *testing.T) {
	h := http.Header{
		"X-Reply":          {"r1"},
		"Trailer-X-Cost":   {"237"},
		"Trailer-Blob-Bin": {"AAE"},
		"Trailer-Connect-": {"reserved"},
		"Trailer":          {"x"},
		"Content-Type":     {"application/proto"},
		"Date":             {"today"},
		"Accept-Encoding":  {"gzip"},
	}
	md, err := ResponseMetadata(h)
	if err != nil {
		t.Fatal(err)
	}
	want := metadata.MD{"x-reply": {"r1"}, "x-cost": {"237"}, "blob-bin": {"\x00\x01"}}
	if !reflect.DeepEqual(md, want) {
		t.Fatalf("got %q, want %q", md, want)
	}
}

func TestMetadataToHeaders(t *testing.T) {
	h := http.Header{}
	err := SetHeaders(h, metadata.MD{
		"x-tenant":     {"acme", "beta"},
		"X-Upper":      {"v"}, // an MD built by hand
		"blob-bin":     {"\x00\x01\x02\xff"},
		"content-type": {"text/html"}, // reserved: skipped silently
		"connect-x":    {"y"},
		"utf8":         {"café\tok"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{
		"X-Tenant": {"acme", "beta"},
		"X-Upper":  {"v"},
		"Blob-Bin": {"AAEC/w"},
		"Utf8":     {"café\tok"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got %q, want %q", h, want)
	}
	// Back again: the same MD, keys lower-cased.
	md, err := Metadata(h)
	if err != nil || !reflect.DeepEqual(md, metadata.MD{"x-tenant": {"acme", "beta"}, "x-upper": {"v"}, "blob-bin": {"\x00\x01\x02\xff"}, "utf8": {"café\tok"}}) {
		t.Fatalf("round trip: %q, %v", md, err)
	}

	for _, tc := range []struct{ k, v string }{
		{"x y", "v"},
		{"x:y", "v"},
		{"", "v"},
		{"é", "v"},
		{"x-crlf", "a\r\nInjected: 1"},
		{"x-nul", "a\x00"},
		{"x-del", "a\x7f"},
	} {
		h := http.Header{}
		if err := AddHeader(h, tc.k, tc.v); err == nil || len(h) != 0 {
			t.Errorf("AddHeader(%q, %q) = %v, header %v", tc.k, tc.v, err, h)
		}
	}
	h = http.Header{}
	if err := SetHeaders(h, metadata.MD{"ok": {"1"}, "bad key": {"2"}}); err == nil || len(h) != 1 {
		t.Fatalf("SetHeaders with one bad pair: %v, %v", err, h)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for in, want := range map[string]bool{
		"gzip":                true,
		"GZIP":                true,
		"br, gzip":            true,
		"identity,gzip;q=0.5": true,
		"gzip;q=1.0":          true,
		"gzip;q=0":            false,
		"gzip; q=0.000":       false,
		"":                    false,
		"identity":            false,
		"br":                  false,
		"x-gzip":              false,
	} {
		if got := AcceptsGzip(in); got != want {
			t.Errorf("AcceptsGzip(%q) = %v", in, got)
		}
	}
}

func gzipped(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	if err := Compress(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReadBody(t *testing.T) {
	plain := bytes.Repeat([]byte("sluice "), 100) // 700 bytes
	for _, tc := range []struct {
		name  string
		body  []byte
		enc   string
		limit int
		want  []byte
		code  codes.Code
	}{
		{"plain", plain, "", 1000, plain, codes.OK},
		{"identity", plain, "identity", 700, plain, codes.OK},
		{"plain over the limit", plain, "", 699, nil, codes.ResourceExhausted},
		{"gzip", gzipped(t, plain), "gzip", 1000, plain, codes.OK},
		{"gzip expands over the limit", gzipped(t, plain), "gzip", 600, nil, codes.ResourceExhausted},
		{"empty gzip body is not decompressed", nil, "gzip", 10, nil, codes.OK},
		{"broken gzip", []byte("not gzip at all"), "gzip", 100, nil, codes.InvalidArgument},
		{"truncated gzip", gzipped(t, plain)[:20], "gzip", 1000, nil, codes.InvalidArgument},
		{"br", plain, "br", 1000, nil, codes.Unimplemented},
	} {
		var dst bytes.Buffer
		err := ReadBody(&dst, bytes.NewReader(tc.body), tc.enc, tc.limit)
		if status.Code(err) != tc.code {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.code)
			continue
		}
		if err == nil && !bytes.Equal(dst.Bytes(), tc.want) {
			t.Errorf("%s: got %d bytes, want %d", tc.name, dst.Len(), len(tc.want))
		}
	}
	// Compress writes standard gzip.
	zr, err := gzip.NewReader(bytes.NewReader(gzipped(t, plain)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := out.ReadFrom(zr); err != nil || !bytes.Equal(out.Bytes(), plain) {
		t.Fatalf("gzip round trip: %v", err)
	}
}

func TestProtoCodecIsTheDefault(t *testing.T) {
	c, err := NewClient("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.codec != proto.Codec || c.contentType != ContentTypeProto {
		t.Fatalf("default codec %s, %s", c.codec.Name(), c.contentType)
	}
}
