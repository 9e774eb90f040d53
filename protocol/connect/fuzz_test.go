package connect

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// FuzzDecodeError: any body with any status decodes to an error with a
// canonical code other than OK, and what AppendError writes decodes to the
// same code and message.
func FuzzDecodeError(f *testing.F) {
	f.Add(404, []byte(`{"code":"not_found","message":"m","details":[]}`))
	f.Add(503, []byte(`{"code":"unavailable"}`))
	f.Add(400, []byte(`{"code":"ok"}`))
	f.Add(502, []byte(`<html></html>`))
	f.Add(500, []byte(`{"code":null,"message":7}`))
	f.Add(200, []byte{})
	f.Add(-1, []byte(`{"code":"internal","details":[{"type":"t","value":"AA","debug":{}}]}`))
	f.Fuzz(func(t *testing.T, httpStatus int, body []byte) {
		err := DecodeError(httpStatus, body)
		if err == nil {
			t.Fatal("nil error")
		}
		code := status.Code(err)
		if code == codes.OK || code > codes.Unauthenticated {
			t.Fatalf("code %v", code)
		}
		// Whatever came in, what goes out is read back the same.
		back := DecodeError(httpStatus, AppendError(nil, err))
		if status.Code(back) != code || status.Convert(back).Message() != status.Convert(err).Message() && utf8.ValidString(status.Convert(err).Message()) {
			t.Fatalf("re-encoding %v gave %v", err, back)
		}
	})
}

// FuzzAppendError: every code and message survives the trip.
func FuzzAppendError(f *testing.F) {
	f.Add(uint32(5), "not found")
	f.Add(uint32(0), "")
	f.Add(uint32(99), "\x00\"\\<>&\u2028")
	f.Fuzz(func(t *testing.T, c uint32, msg string) {
		in := status.Err(codes.Code(c), msg)
		want := codes.Code(c)
		if want == codes.OK {
			return // nil error
		}
		if want > codes.Unauthenticated {
			want = codes.Unknown
		}
		out := DecodeError(http.StatusInternalServerError, AppendError(nil, in))
		if status.Code(out) != want {
			t.Fatalf("code %v came back as %v", codes.Code(c), status.Code(out))
		}
		if utf8.ValidString(msg) && msg != "" && status.Convert(out).Message() != msg {
			t.Fatalf("message %q came back as %q", msg, status.Convert(out).Message())
		}
	})
}

// FuzzParseTimeout: ParseTimeout accepts exactly one to ten ASCII digits,
// and FormatTimeout writes what it parses back.
func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"1", "0", "5000", "9999999999", "10000000000", "", "-1", "+5", "1e3", " 7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseTimeout(s)
		digits := len(s) >= 1 && len(s) <= 10
		for i := 0; i < len(s); i++ {
			digits = digits && '0' <= s[i] && s[i] <= '9'
		}
		if (err == nil) != digits {
			t.Fatalf("ParseTimeout(%q) error %v", s, err)
		}
		if err != nil {
			return
		}
		ms, _ := strconv.ParseInt(s, 10, 64)
		if d != time.Duration(ms)*time.Millisecond {
			t.Fatalf("ParseTimeout(%q) = %v", s, d)
		}
		out, ok := FormatTimeout(d)
		if ms == 0 {
			ms = 1 // FormatTimeout never sends zero
		}
		if !ok || out != strconv.FormatInt(ms, 10) {
			t.Fatalf("FormatTimeout(%v) = %q, %v", d, out, ok)
		}
	})
}

// FuzzMetadata: any header decodes without panicking, and the metadata it
// gives survives a trip through headers unchanged.
func FuzzMetadata(f *testing.F) {
	f.Add("X-Tenant", "acme")
	f.Add("X-Trace-Bin", "AAEC")
	f.Add("X-Trace-Bin", "AA==,AQ")
	f.Add("Trailer-X-Bin", "!!")
	f.Add("Content-Type", "application/json")
	f.Fuzz(func(t *testing.T, k, v string) {
		md, err := Metadata(http.Header{k: {v}})
		if err != nil {
			return
		}
		h := http.Header{}
		if err := SetHeaders(h, md); err != nil {
			return // a key or value HTTP cannot carry
		}
		back, err := Metadata(h)
		if err != nil {
			t.Fatalf("re-decoding %q: %v", h, err)
		}
		if len(back) != len(md) {
			t.Fatalf("%q became %q", md, back)
		}
		for k, vs := range md {
			if strings.Join(back[k], "\x00") != strings.Join(vs, "\x00") {
				t.Fatalf("%q became %q", md, back)
			}
		}
	})
}
