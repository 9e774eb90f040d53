package status_test

import (
	"strconv"
	"testing"

	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

func TestTableRoundTrips(t *testing.T) {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		name := status.ConnectName(c)
		back, ok := status.CodeFromConnectName(name)
		if !ok || back != c {
			t.Errorf("%v: name %q parses back to %v, %v", c, name, back, ok)
		}
		if got, ok := status.ParseCode(strconv.Itoa(int(c))); !ok || got != c {
			t.Errorf("ParseCode(%d) = %v, %v", c, got, ok)
		}
	}
	if _, ok := status.CodeFromConnectName("bogus"); ok {
		t.Error("bogus name parsed")
	}
	for _, s := range []string{"17", "-1", "x", ""} {
		if _, ok := status.ParseCode(s); ok {
			t.Errorf("ParseCode(%q) accepted", s)
		}
	}
}

func TestHTTPStatus(t *testing.T) {
	tests := map[codes.Code]int{
		codes.Unimplemented: 404, codes.InvalidArgument: 400, codes.DeadlineExceeded: 504,
		codes.ResourceExhausted: 429, codes.Unavailable: 503, codes.Unauthenticated: 401,
		codes.Canceled: 499, codes.Internal: 500, codes.Code(99): 500,
	}
	for c, want := range tests {
		if got := status.HTTPStatus(c); got != want {
			t.Errorf("HTTPStatus(%v) = %d, want %d", c, got, want)
		}
	}
	if status.CodeFromHTTPStatus(503) != codes.Unavailable || status.CodeFromHTTPStatus(404) != codes.Unimplemented || status.CodeFromHTTPStatus(418) != codes.Unknown {
		t.Error("CodeFromHTTPStatus")
	}
}

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want codes.Code
		ok   bool
	}{
		{"UNAVAILABLE", codes.Unavailable, true},
		{"Unavailable", codes.Unavailable, true},
		{"deadline_exceeded", codes.DeadlineExceeded, true},
		{"DeadlineExceeded", codes.DeadlineExceeded, true},
		{"CANCELLED", codes.Canceled, true},
		{"Canceled", codes.Canceled, true},
		{" ok ", codes.OK, true},
		{"unauthenticated", codes.Unauthenticated, true},
		{"nope", codes.Unknown, false},
		{"14", codes.Unknown, false},
	} {
		got, ok := status.ParseName(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseName(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestName(t *testing.T) {
	for c, want := range map[codes.Code]string{
		codes.OK: "OK", codes.Canceled: "CANCELLED", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
		codes.Unauthenticated: "UNAUTHENTICATED", codes.Code(99): "UNKNOWN",
	} {
		if got := status.Name(c); got != want {
			t.Errorf("Name(%v) = %q, want %q", c, got, want)
		}
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if back, ok := status.ParseName(status.Name(c)); !ok || back != c {
			t.Errorf("ParseName(Name(%v)) = %v, %v", c, back, ok)
		}
	}
}
