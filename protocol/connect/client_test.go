package connect

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The Client against the real server is tested in package server; these
// tests hold it against a scripted peer, for what a Sluice server never
// does (proxies' pages, gzipped replies, wrong content types).

// peer serves one scripted reply per request and records the request.
type peer struct {
	t     *testing.T
	reply func(w http.ResponseWriter, r *http.Request, body []byte)
	got   chan *http.Request
}

func newPeer(t *testing.T, h2c bool, reply func(w http.ResponseWriter, r *http.Request, body []byte)) *httptest.Server {
	p := &peer{t: t, reply: reply}
	ts := httptest.NewUnstartedServer(p)
	if h2c {
		var ps http.Protocols
		ps.SetHTTP1(true)
		ps.SetUnencryptedHTTP2(true)
		ts.Config.Protocols = &ps
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

func (p *peer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		p.t.Errorf("reading request: %v", err)
	}
	p.reply(w, r, body)
}

// echo answers like a Connect server: the request's value, or for
// "gzip:N" N bytes gzipped, echoing request metadata back.
func echo(w http.ResponseWriter, r *http.Request, body []byte) {
	cdc, ct, ok := CodecFor(r.Header.Get("Content-Type"))
	if !ok {
		WriteError(w, http.StatusUnsupportedMediaType, status.Err(codes.Unknown, "bad type"))
		return
	}
	var buf bytes.Buffer
	if err := ReadBody(&buf, bytes.NewReader(body), r.Header.Get("Content-Encoding"), 1<<20); err != nil {
		WriteError(w, status.HTTPStatus(status.Code(err)), err)
		return
	}
	var in wrapperspb.StringValue
	if err := cdc.Unmarshal(buf.Bytes(), &in); err != nil {
		WriteError(w, 400, status.Err(codes.InvalidArgument, err.Error()))
		return
	}
	md, _ := Metadata(r.Header)
	SetHeaders(w.Header(), md)
	w.Header().Set("Trailer-X-Cost", "237")
	w.Header().Set("X-Proto", r.Proto)
	w.Header().Set("X-Timeout", r.Header.Get(HeaderTimeout))
	w.Header().Set("X-Version", r.Header.Get(HeaderProtocolVersion))
	w.Header().Set("X-Attempt", r.Header.Get(HeaderAttempt))
	w.Header().Set("X-Encoding", r.Header.Get("Content-Encoding"))
	out, _ := cdc.Marshal(nil, &in)
	if AcceptsGzip(r.Header.Get("Accept-Encoding")) && len(out) >= CompressMinBytes {
		var zb bytes.Buffer
		Compress(&zb, out)
		out = zb.Bytes()
		w.Header().Set("Content-Encoding", EncodingGzip)
	}
	w.Header().Set("Content-Type", ct)
	w.Write(out)
}

func call(t *testing.T, c *Client, ctx context.Context, in string) (string, *callinfo.Info, error) {
	t.Helper()
	info := &callinfo.Info{Side: callinfo.Client, Service: "pkg.v1.Svc", Method: "Echo", Attempt: 1, Start: time.Now()}
	if d, ok := ctx.Deadline(); ok {
		info.Deadline = d
	}
	var out wrapperspb.StringValue
	err := c.Call(ctx, info, wrapperspb.String(in), &out)
	return out.Value, info, err
}

func newClient(t *testing.T, url string, opts ...ClientOption) *Client {
	t.Helper()
	c, err := NewClient(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClientRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		h2c   bool
		opts  []ClientOption
		proto string
	}{
		{"proto over HTTP/1.1", false, nil, "HTTP/1.1"},
		{"JSON", false, []ClientOption{WithJSON()}, "HTTP/1.1"},
		{"h2c", true, []ClientOption{WithH2C()}, "HTTP/2.0"},
		{"h2c JSON gzip", true, []ClientOption{WithH2C(), WithJSON(), WithGzip()}, "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newPeer(t, tc.h2c, echo)
			c := newClient(t, ts.URL+"/", tc.opts...)
			ctx := metadata.AppendToOutgoing(context.Background(), "x-tenant", "acme", "x-blob-bin", "\x00\xff")
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			for _, in := range []string{"hi", strings.Repeat("large ", 1000)} {
				got, info, err := call(t, c, ctx, in)
				if err != nil || got != in {
					t.Fatalf("got %.20q, %v", got, err)
				}
				md := info.ResponseMetadata
				if md.Value("x-tenant") != "acme" || md.Value("x-blob-bin") != "\x00\xff" || md.Value("x-cost") != "237" {
					t.Fatalf("response metadata %q", md)
				}
				if md.Value("x-proto") != tc.proto || md.Value("x-version") != "1" || md.Value("x-attempt") != "" {
					t.Fatalf("request went as %q", md)
				}
				if ms := md.Value("x-timeout"); len(ms) != 5 || ms > "60000" {
					t.Fatalf("Connect-Timeout-Ms %q for a minute", ms)
				}
				wantEnc := ""
				if len(in) > CompressMinBytes && strings.Contains(tc.name, "gzip") {
					wantEnc = "gzip"
				}
				if md.Value("x-encoding") != wantEnc {
					t.Fatalf("request Content-Encoding %q, want %q", md.Value("x-encoding"), wantEnc)
				}
				if md.Get("content-type") != nil || md.Get("date") != nil {
					t.Fatalf("HTTP headers in the metadata: %q", md)
				}
			}
		})
	}
}

func TestClientAttemptAndNoDeadline(t *testing.T) {
	ts := newPeer(t, false, echo)
	c := newClient(t, ts.URL)
	info := &callinfo.Info{Service: "pkg.v1.Svc", Method: "Echo", Attempt: 3}
	var out wrapperspb.StringValue
	if err := c.Call(context.Background(), info, wrapperspb.String("x"), &out); err != nil {
		t.Fatal(err)
	}
	if a, tm := info.ResponseMetadata.Value("x-attempt"), info.ResponseMetadata.Value("x-timeout"); a != "3" || tm != "" {
		t.Fatalf("attempt %q, timeout %q", a, tm)
	}
}

func TestClientErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply func(w http.ResponseWriter, r *http.Request, body []byte)
		code  codes.Code
		msg   string
	}{
		{"Connect error", func(w http.ResponseWriter, r *http.Request, _ []byte) {
			w.Header().Set("X-Why", "because")
			WriteError(w, 404, status.Err(codes.NotFound, "no such thing"))
		}, codes.NotFound, "no such thing"},
		{"gzipped Connect error", func(w http.ResponseWriter, r *http.Request, _ []byte) {
			var zb bytes.Buffer
			Compress(&zb, AppendError(nil, status.Err(codes.Aborted, "zipped")))
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			w.WriteHeader(409)
			w.Write(zb.Bytes())
		}, codes.Aborted, "zipped"},
		{"proxy page", func(w http.ResponseWriter, r *http.Request, _ []byte) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			io.WriteString(w, `{"code":"not_found"}`) // not JSON by its type: ignored
		}, codes.Unavailable, "connect: HTTP 502 Bad Gateway"},
		{"415 without body", func(w http.ResponseWriter, r *http.Request, _ []byte) {
			w.WriteHeader(415)
		}, codes.Unknown, "connect: HTTP 415 Unsupported Media Type"},
		{"200 with HTML", func(w http.ResponseWriter, r *http.Request, _ []byte) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html>")
		}, codes.Unknown, `connect: pkg.v1.Svc.Echo reply has Content-Type "text/html", want application/proto`},
		{"200 with the other codec", func(w http.ResponseWriter, r *http.Request, _ []byte) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `"x"`)
		}, codes.Internal, `connect: pkg.v1.Svc.Echo reply has Content-Type "application/json", want application/proto`},
		{"undecodable reply", func(w http.ResponseWriter, r *http.Request, _ []byte) {
			w.Header().Set("Content-Type", "application/proto")
			w.Write([]byte{0xff, 0xff})
		}, codes.Internal, "connect: decoding pkg.v1.Svc.Echo reply"},
		{"unknown reply encoding", func(w http.ResponseWriter, r *http.Request, _ []byte) {
			w.Header().Set("Content-Type", "application/proto")
			w.Header().Set("Content-Encoding", "br")
			w.Write([]byte{1})
		}, codes.Internal, `content encoding "br" is not supported`},
		{"reply too large", func(w http.ResponseWriter, r *http.Request, _ []byte) {
			w.Header().Set("Content-Type", "application/proto")
			w.Write(make([]byte, 2000))
		}, codes.ResourceExhausted, "larger than the limit of 1000 bytes"},
		{"reply cut short", func(w http.ResponseWriter, r *http.Request, _ []byte) {
			w.Header().Set("Content-Type", "application/proto")
			w.Header().Set("Content-Length", "100")
			w.Write([]byte{10, 1})
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // close the connection mid-body
		}, codes.Unavailable, "connect: reading body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newPeer(t, false, tc.reply)
			ts.Config.ErrorLog = quietLog()
			c := newClient(t, ts.URL, WithMaxResponseSize(1000))
			_, info, err := call(t, c, context.Background(), "x")
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("got %v; want %v %q", err, tc.code, tc.msg)
			}
			if tc.name == "Connect error" && info.ResponseMetadata.Value("x-why") != "because" {
				t.Fatalf("error reply metadata %q", info.ResponseMetadata)
			}
		})
	}
}

func TestClientUnavailableAndContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	c := newClient(t, "http://"+addr)
	_, _, err = call(t, c, context.Background(), "x")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "connect: calling pkg.v1.Svc.Echo at http://"+addr) {
		t.Fatalf("refused: %v", err)
	}

	release := make(chan struct{})
	defer close(release)
	ts := newPeer(t, false, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	c = newClient(t, ts.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err = call(t, c, ctx, "x")
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "the caller's deadline of 50ms ran out") {
		t.Fatalf("deadline: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, _, err = call(t, c, ctx, "x")
	if status.Code(err) != codes.Canceled {
		t.Fatalf("cancel: %v", err)
	}
	// An ended context fails at once.
	_, _, err = call(t, c, ctx, "x")
	if status.Code(err) != codes.Canceled {
		t.Fatalf("canceled before the call: %v", err)
	}
}

func TestClientBadMetadata(t *testing.T) {
	ts := newPeer(t, false, echo)
	c := newClient(t, ts.URL)
	ctx := metadata.AppendToOutgoing(context.Background(), "bad key", "v")
	if _, _, err := call(t, c, ctx, "x"); status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "not a valid header name") {
		t.Fatalf("got %v", err)
	}
	if err := c.Call(context.Background(), &callinfo.Info{Service: "s", Method: "m"}, "not a message", new(wrapperspb.StringValue)); status.Code(err) != codes.Internal {
		t.Fatalf("unencodable request: %v", err)
	}
}

func TestNewClientValidates(t *testing.T) {
	for _, tc := range []struct {
		url  string
		opts []ClientOption
	}{
		{"127.0.0.1:8080", nil}, // no scheme
		{"ftp://host", nil},
		{"http://", nil},
		{"http://host?x=1", nil},
		{"http://host#f", nil},
		{"http://host\x7f", nil},
		{"https://host", []ClientOption{WithH2C()}},
		{"http://host", []ClientOption{WithH2C(), WithHTTPClient(http.DefaultClient)}},
		{"http://host", []ClientOption{WithMaxResponseSize(0)}},
	} {
		if c, err := NewClient(tc.url, tc.opts...); err == nil || !strings.HasPrefix(err.Error(), "connect: ") {
			t.Errorf("NewClient(%q) = %v, %v", tc.url, c, err)
		}
	}
	hc := &http.Client{}
	c, err := NewClient("https://host/prefix/", WithHTTPClient(hc))
	if err != nil || c.hc != hc || c.base != "https://host/prefix" {
		t.Fatalf("got %+v, %v", c, err)
	}
	c.Close()
}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }
