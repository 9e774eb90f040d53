package server

// Internal tests of the Connect handler: serveConnect is mounted on an
// httptest server and called by connect-go, by plain net/http, and by
// Sluice's own Connect client transport. (TestMain with goleak lives in
// integration_test.go and covers this file.)

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	connectgo "connectrpc.com/connect"
	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/protocol/connect"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/sourcecontextpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const connectSvc = "sluice.test.v1.Connect"

// connectImpl is steered by the message, like testEcho in the external
// tests: "md" echoes x-tenant and x-blob-bin and sets response metadata,
// "info" reports the call info, "deadline" the time left, "block" waits
// for the context and reports how it ended on ended, "sleep:DUR",
// "err:CODE", "panic", "big:N" replies N bytes.
type connectImpl struct {
	ended chan error
}

func (c *connectImpl) echo(ctx context.Context, msg string) (any, error) {
	switch {
	case msg == "md":
		md, _ := metadata.FromIncoming(ctx)
		if err := SetResponseMetadata(ctx, metadata.Pairs("x-reply", "r1", "x-reply", "r2", "x-blob-bin", "\x00\xff")); err != nil {
			return nil, err
		}
		return wrapperspb.String(strings.Join(md.Get("x-tenant"), ",") + "|" + fmt.Sprintf("%x", md.Value("x-blob-bin")) + "|" + strings.Join(mdKeys(md), ",")), nil
	case msg == "info":
		info := callinfo.FromContext(ctx)
		return wrapperspb.String(fmt.Sprintf("%v %s %s.%s attempt=%d peer=%t", info.Side, info.Protocol, info.Service, info.Method, info.Attempt, info.Peer != "")), nil
	case msg == "deadline":
		d, ok := ctx.Deadline()
		if !ok {
			return wrapperspb.String("none"), nil
		}
		return wrapperspb.String(time.Until(d).Round(100 * time.Millisecond).String()), nil
	case msg == "block":
		<-ctx.Done()
		c.ended <- ctx.Err()
		return nil, ctx.Err()
	case strings.HasPrefix(msg, "sleep:"):
		d, _ := time.ParseDuration(msg[len("sleep:"):])
		select {
		case <-time.After(d):
			return wrapperspb.String("slept"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case strings.HasPrefix(msg, "err:"):
		n, _ := strconv.Atoi(msg[len("err:"):])
		return nil, status.Errorf(codes.Code(n), "asked for %v", codes.Code(n))
	case msg == "panic":
		panic("boom")
	case strings.HasPrefix(msg, "big:"):
		n, _ := strconv.Atoi(msg[len("big:"):])
		return wrapperspb.String(strings.Repeat("b", n)), nil
	}
	return wrapperspb.String(msg), nil
}

func mdKeys(md metadata.MD) []string { return slices.Sorted(maps.Keys(md)) }

var connectDesc = ServiceDesc{
	ServiceName: connectSvc,
	Methods: []MethodDesc{
		{
			MethodName: "Echo",
			NewRequest: func() any { return new(wrapperspb.StringValue) },
			Handler: func(impl any, ctx context.Context, req any) (any, error) {
				return impl.(*connectImpl).echo(ctx, req.(*wrapperspb.StringValue).Value)
			},
		},
		{
			// A message whose JSON form is an object with a two-word field:
			// file_name is "fileName" in Connect's JSON.
			MethodName: "Source",
			NewRequest: func() any { return new(sourcecontextpb.SourceContext) },
			Handler: func(_ any, _ context.Context, req any) (any, error) {
				return &sourcecontextpb.SourceContext{FileName: "got " + req.(*sourcecontextpb.SourceContext).FileName}, nil
			},
		},
	},
}

type connectFixture struct {
	srv  *Server
	ts   *httptest.Server
	url  string // base URL
	impl *connectImpl
	h1   *http.Client
	h2c  *http.Client
}

func startConnect(t *testing.T, opts ...Option) *connectFixture {
	t.Helper()
	opts = append([]Option{WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	f := &connectFixture{srv: New(opts...), impl: &connectImpl{ended: make(chan error, 1)}}
	f.srv.RegisterService(&connectDesc, f.impl)
	f.ts = httptest.NewUnstartedServer(http.HandlerFunc(f.srv.serveConnect))
	var ps http.Protocols
	ps.SetHTTP1(true)
	ps.SetUnencryptedHTTP2(true)
	f.ts.Config.Protocols = &ps
	f.ts.Config.BaseContext = func(net.Listener) context.Context { return f.srv.ctx } // as the server's own HTTP server does
	f.ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.ts.Start()
	f.url = f.ts.URL
	f.h1 = f.ts.Client()
	var cps http.Protocols
	cps.SetUnencryptedHTTP2(true)
	h2t := &http.Transport{Protocols: &cps}
	f.h2c = &http.Client{Transport: h2t}
	t.Cleanup(func() {
		h2t.CloseIdleConnections()
		f.ts.Close()
		f.srv.Stop()
	})
	return f
}

// sluiceClient returns Sluice's Connect client transport for the fixture.
func (f *connectFixture) sluiceClient(t *testing.T, opts ...connect.ClientOption) *connect.Client {
	t.Helper()
	c, err := connect.NewClient(f.url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sluiceCall(ctx context.Context, c *connect.Client, info *callinfo.Info, in string) (string, error) {
	info.Side, info.Service, info.Method, info.Start = callinfo.Client, connectSvc, "Echo", time.Now()
	if info.Attempt == 0 {
		info.Attempt = 1
	}
	if d, ok := ctx.Deadline(); ok {
		info.Deadline = d
	}
	var out wrapperspb.StringValue
	err := c.Call(ctx, info, wrapperspb.String(in), &out)
	return out.Value, err
}

// connectGoClients are connect-go clients of Echo over every codec and
// HTTP version.
func (f *connectFixture) connectGoClients() map[string]*connectgo.Client[wrapperspb.StringValue, wrapperspb.StringValue] {
	u := f.url + "/" + connectSvc + "/Echo"
	return map[string]*connectgo.Client[wrapperspb.StringValue, wrapperspb.StringValue]{
		"proto":     connectgo.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](f.h1, u),
		"json":      connectgo.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](f.h1, u, connectgo.WithProtoJSON()),
		"h2c proto": connectgo.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](f.h2c, u),
		"h2c json":  connectgo.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](f.h2c, u, connectgo.WithProtoJSON()),
		"gzip":      connectgo.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](f.h1, u, connectgo.WithSendGzip()),
	}
}

func TestConnectGoRoundTrip(t *testing.T) {
	f := startConnect(t)
	for name, c := range f.connectGoClients() {
		for _, in := range []string{"hello", "", strings.Repeat("x", 100_000)} {
			resp, err := c.CallUnary(context.Background(), connectgo.NewRequest(wrapperspb.String(in)))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if resp.Msg.Value != in {
				t.Fatalf("%s: got %d bytes, want %d", name, len(resp.Msg.Value), len(in))
			}
		}
		resp, err := c.CallUnary(context.Background(), connectgo.NewRequest(wrapperspb.String("info")))
		if err != nil || resp.Msg.Value != "server connect "+connectSvc+".Echo attempt=1 peer=true" {
			t.Fatalf("%s: info %q, %v", name, resp.Msg.GetValue(), err)
		}
	}
}

func TestConnectGoMetadata(t *testing.T) {
	f := startConnect(t)
	for name, c := range f.connectGoClients() {
		req := connectgo.NewRequest(wrapperspb.String("md"))
		req.Header().Add("X-Tenant", "acme")
		req.Header().Add("X-Tenant", "beta")
		req.Header().Set("X-Blob-Bin", connectgo.EncodeBinaryHeader([]byte{0, 1, 0xff}))
		resp, err := c.CallUnary(context.Background(), req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Only the caller's own headers are metadata.
		if want := "acme,beta|0001ff|x-blob-bin,x-tenant"; resp.Msg.Value != want {
			t.Fatalf("%s: handler saw %q, want %q", name, resp.Msg.Value, want)
		}
		if got := resp.Header().Values("X-Reply"); strings.Join(got, ",") != "r1,r2" {
			t.Fatalf("%s: response X-Reply %q", name, got)
		}
		b, err := connectgo.DecodeBinaryHeader(resp.Header().Get("X-Blob-Bin"))
		if err != nil || string(b) != "\x00\xff" {
			t.Fatalf("%s: response X-Blob-Bin %q, %v", name, b, err)
		}
	}
}

func TestConnectGoErrorCodes(t *testing.T) {
	f := startConnect(t)
	for name, c := range f.connectGoClients() {
		for code := codes.Canceled; code <= codes.Unauthenticated; code++ {
			_, err := c.CallUnary(context.Background(), connectgo.NewRequest(wrapperspb.String(fmt.Sprintf("err:%d", code))))
			if got := connectgo.CodeOf(err).String(); got != status.ConnectName(code) {
				t.Fatalf("%s: %v came back as %s (%v)", name, code, got, err)
			}
			var ce *connectgo.Error
			if !errors.As(err, &ce) || ce.Message() != "asked for "+code.String() {
				t.Fatalf("%s: %v: message of %v", name, code, err)
			}
		}
		_, err := c.CallUnary(context.Background(), connectgo.NewRequest(wrapperspb.String("panic")))
		if connectgo.CodeOf(err) != connectgo.CodeInternal || !strings.Contains(err.Error(), "panic in "+connectSvc+".Echo: boom") {
			t.Fatalf("%s: panic gave %v", name, err)
		}
	}
	// The HTTP status is the table's, for clients that look only at it.
	for code := codes.Canceled; code <= codes.Unauthenticated; code++ {
		resp, body := post(t, f.h1, f.url+"/"+connectSvc+"/Echo", "application/json", fmt.Sprintf(`"err:%d"`, code), nil)
		if resp.StatusCode != status.HTTPStatus(code) || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%v: HTTP %d %s", code, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		want := fmt.Sprintf(`{"code":%q,"message":"asked for %v"}`, status.ConnectName(code), code)
		if string(body) != want {
			t.Errorf("%v: body %s, want %s", code, body, want)
		}
	}
}

func TestConnectGoDeadline(t *testing.T) {
	f := startConnect(t)
	c := f.connectGoClients()["proto"]

	// The timeout travels: the handler's context has the caller's deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := c.CallUnary(ctx, connectgo.NewRequest(wrapperspb.String("deadline")))
	if err != nil || resp.Msg.Value != "2s" {
		t.Fatalf("handler saw %q, %v", resp.Msg.GetValue(), err)
	}
	resp, err = c.CallUnary(context.Background(), connectgo.NewRequest(wrapperspb.String("deadline")))
	if err != nil || resp.Msg.Value != "none" {
		t.Fatalf("without a timeout the handler saw %q, %v", resp.Msg.GetValue(), err)
	}

	// And fires on the server.
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.CallUnary(ctx, connectgo.NewRequest(wrapperspb.String("block")))
	if connectgo.CodeOf(err) != connectgo.CodeDeadlineExceeded {
		t.Fatalf("got %v", err)
	}
	select {
	case err := <-f.impl.ended:
		// The server's copy of the deadline and the client's own race:
		// when the client's fires first it aborts the request, and the
		// handler sees the cancellation. Either ends the handler; the
		// server's deadline alone is checked below, sent by hand.
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			t.Fatalf("handler's context ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context never ended")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}

	// Sent by hand, the server's own error names the timeout.
	resp2, body := post(t, f.h1, f.url+"/"+connectSvc+"/Echo", "application/json", `"sleep:10s"`, map[string]string{"Connect-Timeout-Ms": "30"})
	if resp2.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), `"code":"deadline_exceeded"`) || !strings.Contains(string(body), "the caller's timeout of 30ms ran out on the server") {
		t.Fatalf("HTTP %d %s", resp2.StatusCode, body)
	}
}

func TestConnectGoGetIs405(t *testing.T) {
	f := startConnect(t)
	c := connectgo.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](f.h1, f.url+"/"+connectSvc+"/Echo",
		connectgo.WithHTTPGet(), connectgo.WithIdempotency(connectgo.IdempotencyNoSideEffects))
	_, err := c.CallUnary(context.Background(), connectgo.NewRequest(wrapperspb.String("x")))
	if connectgo.CodeOf(err) != connectgo.CodeUnknown || !strings.Contains(err.Error(), "Connect unary calls are POSTs") {
		t.Fatalf("got %v", err)
	}
}

func TestConnectGoUnknownProcedure(t *testing.T) {
	f := startConnect(t)
	for _, path := range []string{"/" + connectSvc + "/Nope", "/sluice.test.v1.Nope/Echo"} {
		c := connectgo.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](f.h1, f.url+path)
		_, err := c.CallUnary(context.Background(), connectgo.NewRequest(wrapperspb.String("x")))
		if connectgo.CodeOf(err) != connectgo.CodeUnimplemented {
			t.Fatalf("%s: got %v", path, err)
		}
	}
}

// post sends a request with net/http as curl would and returns the
// response and its whole body.
func post(t *testing.T, hc *http.Client, url, contentType, body string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	return do(t, hc, http.MethodPost, url, contentType, strings.NewReader(body), headers)
}

func do(t *testing.T, hc *http.Client, method, url, contentType string, body io.Reader, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// connectErrorBody parses a Connect error body strictly.
func connectErrorBody(t *testing.T, b []byte) (code, msg string) {
	t.Helper()
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body %q: %v", b, err)
	}
	return e.Code, e.Message
}

func TestConnectPlainHTTP(t *testing.T) {
	f := startConnect(t)
	echo := f.url + "/" + connectSvc + "/Echo"
	source := f.url + "/" + connectSvc + "/Source"
	for _, tc := range []struct {
		name        string
		method, url string
		ct, body    string
		headers     map[string]string
		status      int
		replyType   string
		reply       string // exact body, or the error code for errors
		msg         string // substring of the error message
	}{
		{name: "JSON", method: "POST", url: source, ct: "application/json", body: `{"fileName":"hi"}`,
			status: 200, replyType: "application/json", reply: `{"fileName":"got hi"}`},
		{name: "JSON proto names and unknown fields", method: "POST", url: source, ct: "application/json", body: `{"file_name":"hi","extra":[1,{"a":2}]}`,
			status: 200, replyType: "application/json", reply: `{"fileName":"got hi"}`},
		{name: "JSON with charset", method: "POST", url: echo, ct: "application/json; charset=UTF-8", body: `"hi"`,
			status: 200, replyType: "application/json; charset=utf-8", reply: `"hi"`},
		{name: "proto", method: "POST", url: echo, ct: "application/proto", body: "\n\x02hi",
			status: 200, replyType: "application/proto", reply: "\n\x02hi"},
		{name: "protocol version 1 and a routing prefix", method: "POST", url: f.url + "/api/v2/" + connectSvc + "/Echo", ct: "application/json", body: `"hi"`,
			headers: map[string]string{"Connect-Protocol-Version": "1"}, status: 200, replyType: "application/json", reply: `"hi"`},
		{name: "short service name", method: "POST", url: f.url + "/Connect/Echo", ct: "application/json", body: `"hi"`,
			status: 200, replyType: "application/json", reply: `"hi"`},

		{name: "unknown method", method: "POST", url: f.url + "/" + connectSvc + "/Nope", ct: "application/json", body: `"hi"`,
			status: 404, reply: "unimplemented", msg: "unknown method Nope for service " + connectSvc},
		{name: "unknown service", method: "POST", url: f.url + "/x.Y/Echo", ct: "application/json", body: `{}`,
			status: 404, reply: "unimplemented", msg: "unknown service x.Y"},
		{name: "not a procedure path", method: "POST", url: f.url + "/Echo", ct: "application/json", body: `{}`,
			status: 404, reply: "unimplemented", msg: "not a Connect procedure path"},
		{name: "empty method", method: "POST", url: f.url + "/" + connectSvc + "/", ct: "application/json", body: `{}`,
			status: 404, reply: "unimplemented", msg: "not a Connect procedure path"},
		{name: "bad JSON", method: "POST", url: source, ct: "application/json", body: `{"fileName":`,
			status: 400, reply: "invalid_argument", msg: "decoding " + connectSvc + ".Source request as json"},
		{name: "JSON of the wrong shape", method: "POST", url: source, ct: "application/json", body: `{"fileName":7}`,
			status: 400, reply: "invalid_argument", msg: "decoding"},
		{name: "empty JSON body", method: "POST", url: echo, ct: "application/json", body: ``,
			status: 400, reply: "invalid_argument", msg: "decoding"},
		{name: "bad proto", method: "POST", url: echo, ct: "application/proto", body: "\xff\xff\xff",
			status: 400, reply: "invalid_argument", msg: "decoding " + connectSvc + ".Echo request as proto"},
		{name: "unsupported content type", method: "POST", url: echo, ct: "text/plain", body: `hi`,
			status: 415, reply: "unknown", msg: `Content-Type "text/plain" is not supported`},
		{name: "streaming content type", method: "POST", url: echo, ct: "application/connect+json", body: `hi`,
			status: 415, reply: "unknown", msg: "not supported"},
		{name: "no content type", method: "POST", url: echo, body: `"hi"`,
			status: 415, reply: "unknown", msg: "not supported"},
		{name: "GET", method: "GET", url: echo + "?encoding=json&message=%22hi%22", status: 405, reply: "unknown", msg: "Connect unary calls are POSTs"},
		{name: "PUT", method: "PUT", url: echo, ct: "application/json", body: `"hi"`, status: 405, reply: "unknown", msg: "POST"},
		{name: "protocol version 2", method: "POST", url: echo, ct: "application/json", body: `"hi"`,
			headers: map[string]string{"Connect-Protocol-Version": "2"}, status: 400, reply: "invalid_argument", msg: `Connect-Protocol-Version must be "1"`},
		{name: "bad timeout", method: "POST", url: echo, ct: "application/json", body: `"hi"`,
			headers: map[string]string{"Connect-Timeout-Ms": "1s"}, status: 400, reply: "invalid_argument", msg: "Connect-Timeout-Ms"},
		{name: "timeout of 11 digits", method: "POST", url: echo, ct: "application/json", body: `"hi"`,
			headers: map[string]string{"Connect-Timeout-Ms": "10000000000"}, status: 400, reply: "invalid_argument", msg: "1 to 10 digits"},
		{name: "bad binary metadata", method: "POST", url: echo, ct: "application/json", body: `"hi"`,
			headers: map[string]string{"X-Trace-Bin": "%%%"}, status: 400, reply: "invalid_argument", msg: "x-trace-bin"},
		{name: "unsupported content encoding", method: "POST", url: echo, ct: "application/json", body: `"hi"`,
			headers: map[string]string{"Content-Encoding": "br"}, status: 404, reply: "unimplemented", msg: `content encoding "br" is not supported`},
		{name: "broken gzip", method: "POST", url: echo, ct: "application/json", body: `"hi"`,
			headers: map[string]string{"Content-Encoding": "gzip"}, status: 400, reply: "invalid_argument", msg: "gzip"},
		{name: "handler panic", method: "POST", url: echo, ct: "application/json", body: `"panic"`,
			status: 500, reply: "internal", msg: "panic in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			resp, b := do(t, f.h1, tc.method, tc.url, tc.ct, body, tc.headers)
			if resp.StatusCode != tc.status {
				t.Fatalf("HTTP %d %s, want %d", resp.StatusCode, b, tc.status)
			}
			if tc.status == 200 {
				if ct := resp.Header.Get("Content-Type"); ct != tc.replyType || string(b) != tc.reply {
					t.Fatalf("got %s %q, want %s %q", ct, b, tc.replyType, tc.reply)
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("error Content-Type %q", ct)
			}
			code, msg := connectErrorBody(t, b)
			if code != tc.reply || !strings.Contains(msg, tc.msg) {
				t.Fatalf("got %s %q, want %s containing %q", code, msg, tc.reply, tc.msg)
			}
			switch tc.status {
			case 405:
				if a := resp.Header.Get("Allow"); a != "POST" {
					t.Fatalf("Allow %q", a)
				}
			case 415:
				if a := resp.Header.Get("Accept-Post"); a != "application/proto, application/json" {
					t.Fatalf("Accept-Post %q", a)
				}
			}
			if tc.name == "unsupported content encoding" && resp.Header.Get("Accept-Encoding") != "gzip" {
				t.Fatalf("Accept-Encoding %q", resp.Header.Get("Accept-Encoding"))
			}
		})
	}
}

func TestConnectGzip(t *testing.T) {
	f := startConnect(t)
	// A transport that leaves Content-Encoding alone.
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	echo := f.url + "/" + connectSvc + "/Echo"
	big := `"big:5000"`
	var gz bytes.Buffer
	if err := connect.Compress(&gz, []byte(big)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		body    string
		headers map[string]string
		gzipped bool
	}{
		{"no Accept-Encoding", big, nil, false},
		{"accepts gzip", big, map[string]string{"Accept-Encoding": "gzip"}, true},
		{"accepts gzip with qualities", big, map[string]string{"Accept-Encoding": "br;q=1, gzip;q=0.5"}, true},
		{"refuses gzip", big, map[string]string{"Accept-Encoding": "gzip;q=0"}, false},
		{"small replies stay plain", `"small"`, map[string]string{"Accept-Encoding": "gzip"}, false},
		{"gzipped request, no Accept-Encoding: reply in kind", gz.String(), map[string]string{"Content-Encoding": "gzip"}, true},
		{"gzipped request, identity only", gz.String(), map[string]string{"Content-Encoding": "gzip", "Accept-Encoding": "identity"}, false},
	} {
		resp, b := post(t, hc, echo, "application/json", tc.body, tc.headers)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: HTTP %d %s", tc.name, resp.StatusCode, b)
		}
		if got := resp.Header.Get("Content-Encoding") == "gzip"; got != tc.gzipped {
			t.Fatalf("%s: Content-Encoding %q", tc.name, resp.Header.Get("Content-Encoding"))
		}
		if tc.gzipped {
			var out bytes.Buffer
			if err := connect.ReadBody(&out, bytes.NewReader(b), "gzip", 1<<20); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			b = out.Bytes()
		}
		if n := len(b); tc.body != `"small"` && n != 5002 {
			t.Fatalf("%s: %d bytes", tc.name, n)
		}
	}
}

func TestConnectBodyLimit(t *testing.T) {
	f := startConnect(t, WithMaxFrameSize(64<<10))
	echo := f.url + "/" + connectSvc + "/Echo"
	ok := func() {
		t.Helper()
		resp, b := post(t, f.h1, echo, "application/json", `"still here"`, nil)
		if resp.StatusCode != 200 || string(b) != `"still here"` {
			t.Fatalf("after: HTTP %d %s", resp.StatusCode, b)
		}
	}
	huge := `"` + strings.Repeat("x", 100<<10) + `"`
	var bomb bytes.Buffer // 100 KiB that gzip to a few hundred bytes
	connect.Compress(&bomb, []byte(huge))
	for _, tc := range []struct {
		name    string
		body    io.Reader
		headers map[string]string
	}{
		{"Content-Length over the limit", strings.NewReader(huge), nil},
		{"chunked over the limit", io.MultiReader(strings.NewReader(huge)), nil}, // no length known up front
		{"gzip expanding over the limit", bytes.NewReader(bomb.Bytes()), map[string]string{"Content-Encoding": "gzip"}},
	} {
		resp, b := do(t, f.h1, "POST", echo, "application/json", tc.body, tc.headers)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("%s: HTTP %d %s", tc.name, resp.StatusCode, b)
		}
		if code, msg := connectErrorBody(t, b); code != "resource_exhausted" || !strings.Contains(msg, "65536") {
			t.Fatalf("%s: %s %q", tc.name, code, msg)
		}
		ok()
	}
	// connect-go and the Sluice client see the same code.
	c := connectgo.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](f.h1, echo)
	_, err := c.CallUnary(context.Background(), connectgo.NewRequest(wrapperspb.String(huge)))
	if connectgo.CodeOf(err) != connectgo.CodeResourceExhausted {
		t.Fatalf("connect-go: %v", err)
	}
	_, err = sluiceCall(context.Background(), f.sluiceClient(t), &callinfo.Info{}, huge)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("sluice: %v", err)
	}
	ok()
}

func TestSluiceConnectClient(t *testing.T) {
	f := startConnect(t)
	for name, opts := range map[string][]connect.ClientOption{
		"proto":           nil,
		"json":            {connect.WithJSON()},
		"h2c":             {connect.WithH2C()},
		"h2c json gzip":   {connect.WithH2C(), connect.WithJSON(), connect.WithGzip()},
		"own HTTP client": {connect.WithHTTPClient(f.h1)},
	} {
		t.Run(name, func(t *testing.T) {
			c := f.sluiceClient(t, opts...)
			for _, in := range []string{"hello", strings.Repeat("y", 100_000)} {
				if got, err := sluiceCall(context.Background(), c, &callinfo.Info{}, in); err != nil || got != in {
					t.Fatalf("got %d bytes, %v", len(got), err)
				}
			}

			// Metadata both ways, binary included.
			ctx := metadata.AppendToOutgoing(context.Background(), "x-tenant", "acme", "x-tenant", "beta", "x-blob-bin", "\x00\x01\xff")
			info := &callinfo.Info{}
			got, err := sluiceCall(ctx, c, info, "md")
			if err != nil || got != "acme,beta|0001ff|x-blob-bin,x-tenant" {
				t.Fatalf("handler saw %q, %v", got, err)
			}
			rmd := info.ResponseMetadata
			if strings.Join(rmd.Get("x-reply"), ",") != "r1,r2" || rmd.Value("x-blob-bin") != "\x00\xff" || len(rmd) != 2 {
				t.Fatalf("response metadata %q", rmd)
			}

			// The attempt number travels.
			got, err = sluiceCall(context.Background(), c, &callinfo.Info{Attempt: 3}, "info")
			if err != nil || got != "server connect "+connectSvc+".Echo attempt=3 peer=true" {
				t.Fatalf("info %q, %v", got, err)
			}

			// Every code.
			for code := codes.Canceled; code <= codes.Unauthenticated; code++ {
				_, err := sluiceCall(context.Background(), c, &callinfo.Info{}, fmt.Sprintf("err:%d", code))
				if status.Code(err) != code || status.Convert(err).Message() != "asked for "+code.String() {
					t.Fatalf("%v came back as %v", code, err)
				}
			}

			// The caller's deadline, named.
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err = sluiceCall(ctx, c, &callinfo.Info{}, "sleep:10s")
			if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "50ms") {
				t.Fatalf("deadline: %v", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("deadline took %v", d)
			}
			// A deadline the handler sees.
			ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if got, err := sluiceCall(ctx, c, &callinfo.Info{}, "deadline"); err != nil || got != "3s" {
				t.Fatalf("handler saw %q, %v", got, err)
			}
			// Unknown procedure.
			info = &callinfo.Info{Service: connectSvc, Method: "Nope"}
			if err := c.Call(context.Background(), info, wrapperspb.String("x"), new(wrapperspb.StringValue)); status.Code(err) != codes.Unimplemented {
				t.Fatalf("unknown method: %v", err)
			}
		})
	}
}

func TestConnectConcurrentCalls(t *testing.T) {
	f := startConnect(t)
	c := f.sluiceClient(t, connect.WithH2C())
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := strconv.Itoa(i)
			got, err := sluiceCall(context.Background(), c, &callinfo.Info{}, in)
			if err == nil && got != in {
				err = fmt.Errorf("got %q for %q", got, in)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestConnectStopAndDrain(t *testing.T) {
	f := startConnect(t)
	c := f.connectGoClients()["proto"]

	// Draining: replies ask the client to close the connection.
	f.srv.state.Store(stateDraining)
	resp, _ := post(t, f.h1, f.url+"/"+connectSvc+"/Echo", "application/json", `"x"`, nil)
	if resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("draining: HTTP %d, close %v", resp.StatusCode, resp.Close)
	}
	f.srv.state.Store(stateServing)

	// Stop ends calls in flight (through the request's base context)...
	done := make(chan error, 1)
	go func() {
		_, err := c.CallUnary(context.Background(), connectgo.NewRequest(wrapperspb.String("block")))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the call reach the handler
	f.srv.cancel()                    // what Stop does to contexts, without closing anything yet
	select {
	case err := <-f.impl.ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler's context ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context did not end")
	}
	if err := <-done; connectgo.CodeOf(err) != connectgo.CodeCanceled {
		t.Fatalf("caller got %v", err)
	}
	// ...and later calls are refused.
	f.srv.state.Store(stateStopped)
	_, err := c.CallUnary(context.Background(), connectgo.NewRequest(wrapperspb.String("x")))
	if connectgo.CodeOf(err) != connectgo.CodeUnavailable {
		t.Fatalf("after Stop: %v", err)
	}
}

func TestConnectResponseMetadataThatHTTPCannotCarry(t *testing.T) {
	s := New(WithLogger(slog.New(slog.DiscardHandler)))
	defer s.Stop()
	s.RegisterService(&ServiceDesc{
		ServiceName: "sluice.test.v1.BadMD",
		Methods: []MethodDesc{{
			MethodName: "M",
			NewRequest: func() any { return new(wrapperspb.StringValue) },
			Handler: func(_ any, ctx context.Context, _ any) (any, error) {
				SetResponseMetadata(ctx, metadata.MD{"ok": {"1"}, "bad": {"a\r\nX-Injected: 1"}, "content-type": {"text/html"}})
				return wrapperspb.String("done"), nil
			},
		}},
	}, struct{}{})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/sluice.test.v1.BadMD/M", strings.NewReader(`"x"`))
	req.Header.Set("Content-Type", "application/json")
	s.serveConnect(rec, req)
	h := rec.Result().Header
	if rec.Code != 200 || h.Get("Ok") != "1" || h.Get("Bad") != "" || h.Get("X-Injected") != "" || h.Get("Content-Type") != "application/json" {
		t.Fatalf("HTTP %d, headers %q", rec.Code, h)
	}
	var out wrapperspb.StringValue
	if err := connect.JSON.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Value != "done" {
		t.Fatalf("body %q, %v", rec.Body.Bytes(), err)
	}
	// The reply itself is the proto encoding when asked for.
	rec = httptest.NewRecorder()
	b, _ := proto.Marshal(wrapperspb.String("x"))
	req = httptest.NewRequest("POST", "/sluice.test.v1.BadMD/M", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/proto")
	s.serveConnect(rec, req)
	if err := proto.Unmarshal(rec.Body.Bytes(), &out); rec.Code != 200 || err != nil || out.Value != "done" {
		t.Fatalf("HTTP %d %q, %v", rec.Code, rec.Body.Bytes(), err)
	}
}
