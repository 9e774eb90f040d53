package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/examples/echo/echotest"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// mdEcho echoes the message, adds the x-tenant metadata it received, and
// fails with NotFound for "missing".
type mdEcho struct{}

func (mdEcho) Echo(ctx context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	if req.Message == "missing" {
		return nil, status.Err(codes.NotFound, "no such thing")
	}
	md, _ := metadata.FromIncoming(ctx)
	return &echopb.EchoResponse{Message: req.Message, Payload: req.Payload, ServedBy: md.Value("x-tenant")}, nil
}

func TestCall(t *testing.T) {
	addr := echotest.Serve(t, func(string) echopb.EchoServiceServer { return mdEcho{} })
	for _, proto := range []string{"native", "grpc", "connect"} {
		t.Run(proto, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := call([]string{addr, "sluice.examples.echo.v1.EchoService/Echo", `{"message":"hi","payload":"AQI="}`,
				"-H", "x-tenant: acme", "--protocol", proto, "--timeout", "5s"}, nil, &out, &errOut)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			var got map[string]string
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out.String())
			}
			if got["message"] != "hi" || got["payload"] != "AQI=" || got["servedBy"] != "acme" {
				t.Fatalf("got %v", got)
			}

			out.Reset()
			errOut.Reset()
			code = call([]string{"--protocol", proto, addr, "sluice.examples.echo.v1.EchoService/Echo", `{"message":"missing"}`}, nil, &out, &errOut)
			if code != 1 || !strings.Contains(errOut.String(), "ERROR NotFound: no such thing") {
				t.Fatalf("failed call: exit %d, %q", code, errOut.String())
			}
		})
	}
}

func TestCallInputs(t *testing.T) {
	addr := echotest.Serve(t, func(string) echopb.EchoServiceServer { return mdEcho{} })
	tests := []struct {
		name  string
		args  []string
		stdin string
		code  int
		want  string // in stdout for 0, stderr otherwise
	}{
		{"stdin", []string{addr, "sluice.examples.echo.v1.EchoService/Echo", "-"}, `{"message":"from stdin"}`, 0, `"from stdin"`},
		{"default body", []string{addr, "/sluice.examples.echo.v1.EchoService/Echo"}, "", 0, "{}"},
		{"health", []string{addr, "grpc.health.v1.Health/Check"}, "", 0, `"SERVING"`},
		{"unknown method", []string{addr, "sluice.examples.echo.v1.EchoService/Nope"}, "", 1, "ERROR Unimplemented"},
		{"unknown service", []string{addr, "nope.Svc/M"}, "", 1, "ERROR NotFound"},
		{"bad json", []string{addr, "sluice.examples.echo.v1.EchoService/Echo", `{"nope":1}`}, "", 2, "request is not a sluice.examples.echo.v1.EchoRequest"},
		{"bad method", []string{addr, "EchoService"}, "", 2, "want pkg.Service/Method"},
		{"bad header", []string{"-H", "novalue", addr, "a.B/C"}, "", 2, "want 'key: value'"},
		{"bad protocol", []string{"--protocol", "smtp", addr, "a.B/C"}, "", 2, "unknown protocol"},
		{"too few args", []string{addr}, "", 2, "usage: sluice call"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := call(tt.args, strings.NewReader(tt.stdin), &out, &errOut)
			where := out.String()
			if tt.code != 0 {
				where = errOut.String()
			}
			if code != tt.code || !strings.Contains(where, tt.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d with %q", code, out.String(), errOut.String(), tt.code, tt.want)
			}
		})
	}
}
