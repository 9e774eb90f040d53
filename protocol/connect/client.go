package connect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/codec"
	"github.com/sluicerpc/sluice/codec/proto"
	"github.com/sluicerpc/sluice/internal/transport"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/protocol/ttheader"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// Client makes unary Connect calls to one base URL. It is safe for
// concurrent use.
type Client struct {
	base        string // without a trailing slash
	hc          *http.Client
	own         *http.Transport // closed by Close; nil with WithHTTPClient
	codec       codec.Codec
	contentType string
	opts        clientOptions
}

// ClientOption configures a Client.
type ClientOption func(*clientOptions)

type clientOptions struct {
	httpClient      *http.Client
	json            bool
	h2c             bool
	gzip            bool
	maxResponseSize int
	maxIdlePerHost  int
}

// defaultClientOptions holds every default in one place.
func defaultClientOptions() clientOptions {
	return clientOptions{
		maxResponseSize: ttheader.DefaultMaxFrameSize, // the native protocol's frame limit
		maxIdlePerHost:  64,                           // net/http's 2 would redial under any concurrency
	}
}

// WithHTTPClient makes calls through hc (default: a Client-owned transport
// keeping up to 64 idle connections to the host). Close then leaves hc
// alone. It cannot be combined with WithH2C; configure hc for HTTP/2
// instead.
func WithHTTPClient(hc *http.Client) ClientOption {
	return func(o *clientOptions) { o.httpClient = hc }
}

// WithJSON sends application/json (the protobuf JSON mapping) rather than
// application/proto (the default).
func WithJSON() ClientOption {
	return func(o *clientOptions) { o.json = true }
}

// WithH2C speaks HTTP/2 without TLS to an http:// URL, with prior
// knowledge (no upgrade dance): many calls share one connection, as on the
// native protocol. The default is HTTP/1.1.
func WithH2C() ClientOption {
	return func(o *clientOptions) { o.h2c = true }
}

// WithGzip compresses request bodies of CompressMinBytes or more with gzip
// (default: never; the server must support gzip, which Sluice and connect-go
// servers do). Gzipped replies are accepted either way.
func WithGzip() ClientOption {
	return func(o *clientOptions) { o.gzip = true }
}

// WithMaxResponseSize bounds a reply body, compressed and decompressed
// (default 4 MiB, the native protocol's frame limit). A larger reply fails
// the call with ResourceExhausted.
func WithMaxResponseSize(n int) ClientOption {
	return func(o *clientOptions) { o.maxResponseSize = n }
}

// NewClient returns a Client for baseURL, "http://host:port" (an https
// URL and a path prefix are allowed: calls go to baseURL/pkg.Service/Method).
func NewClient(baseURL string, opts ...ClientOption) (*Client, error) {
	o := defaultClientOptions()
	for _, opt := range opts {
		opt(&o)
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("connect: base URL %q: %v", baseURL, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("connect: base URL %q: scheme must be http or https", baseURL)
	case u.Host == "":
		return nil, fmt.Errorf("connect: base URL %q has no host", baseURL)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("connect: base URL %q: no query or fragment allowed", baseURL)
	case o.h2c && u.Scheme != "http":
		return nil, fmt.Errorf("connect: base URL %q: h2c is HTTP/2 without TLS and needs an http URL", baseURL)
	case o.h2c && o.httpClient != nil:
		return nil, errors.New("connect: WithH2C and WithHTTPClient conflict: configure the http.Client for HTTP/2 instead")
	case o.maxResponseSize <= 0:
		return nil, fmt.Errorf("connect: max response size %d must be positive", o.maxResponseSize)
	}
	c := &Client{base: strings.TrimSuffix(baseURL, "/"), opts: o, codec: proto.Codec, contentType: ContentTypeProto}
	if o.json {
		c.codec, c.contentType = JSON, ContentTypeJSON
	}
	if c.hc = o.httpClient; c.hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = o.maxIdlePerHost
		if o.h2c {
			var p http.Protocols
			p.SetUnencryptedHTTP2(true)
			t.Protocols = &p
		}
		c.own, c.hc = t, &http.Client{Transport: t}
	}
	return c, nil
}

// Close closes the idle connections of the transport the Client made. With
// WithHTTPClient it does nothing.
func (c *Client) Close() error {
	if c.own != nil {
		c.own.CloseIdleConnections()
	}
	return nil
}

// Call sends req for the call info describes (Service, Method, Deadline,
// Attempt) and decodes the reply into resp; ctx supplies the outgoing
// metadata and cancellation. The reply's metadata goes to
// info.ResponseMetadata, on failure too. Errors are status errors: the
// server's code, Unavailable when the call could not reach it, and the
// context's end named as transport.ContextError names it.
func (c *Client) Call(ctx context.Context, info *callinfo.Info, req, resp any) error {
	if ctx.Err() != nil {
		return transport.ContextError(ctx, info)
	}
	body, err := c.codec.Marshal(nil, req)
	if err != nil {
		return status.Errorf(codes.Internal, "connect: encoding %s.%s request: %v", info.Service, info.Method, err)
	}
	info.SentBytes, info.ReceivedBytes = len(body), 0
	gzipped := false
	if c.opts.gzip && len(body) >= CompressMinBytes {
		var zb bytes.Buffer
		if err := Compress(&zb, body); err != nil {
			return status.Errorf(codes.Internal, "connect: compressing %s.%s request: %v", info.Service, info.Method, err)
		}
		body, gzipped = zb.Bytes(), true
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/"+info.Service+"/"+info.Method, bytes.NewReader(body))
	if err != nil {
		return status.Errorf(codes.Internal, "connect: %s.%s: %v", info.Service, info.Method, err)
	}
	h := hr.Header
	tc := info.Trace
	a := headerAdder{h: h, noTrace: tc != nil && tc.Traceparent != ""}
	metadata.RangeOutgoing(ctx, &a)
	if a.noTrace {
		// The call's own trace context, in place of any the metadata had.
		a.noTrace = false
		a.AddString(metadata.KeyTraceparent, tc.Traceparent)
		if tc.Tracestate != "" {
			a.AddString(metadata.KeyTracestate, tc.Tracestate)
		}
	}
	if a.err != nil {
		return status.Errorf(codes.Internal, "connect: %s.%s: %v", info.Service, info.Method, a.err)
	}
	h["Content-Type"] = []string{c.contentType}
	h[HeaderProtocolVersion] = []string{ProtocolVersion}
	// Set explicitly: left unset, net/http would ask for gzip itself and
	// hide the reply's Content-Encoding.
	h["Accept-Encoding"] = []string{AcceptEncoding}
	if gzipped {
		h["Content-Encoding"] = []string{EncodingGzip}
	}
	if !info.Deadline.IsZero() {
		if ms, ok := FormatTimeout(time.Until(info.Deadline)); ok {
			h[HeaderTimeout] = []string{ms}
		}
	}
	if info.Attempt > 1 {
		h[HeaderAttempt] = []string{strconv.Itoa(info.Attempt)}
	}
	if info.Caller != "" {
		h[HeaderCaller] = []string{info.Caller}
	}

	hresp, err := c.hc.Do(hr)
	if err != nil {
		return c.failed(ctx, info, err)
	}
	defer hresp.Body.Close()
	md, mdErr := ResponseMetadata(hresp.Header)
	if md != nil {
		info.ResponseMetadata = md
	}
	buf := getBuffer()
	defer putBuffer(buf)
	enc := hresp.Header.Get("Content-Encoding")
	ct := hresp.Header.Get("Content-Type")
	if hresp.StatusCode != http.StatusOK {
		if cdc, _, ok := CodecFor(ct); !ok || cdc != JSON {
			// Not a Connect error (a proxy's page, say): the HTTP status decides.
			return DecodeError(hresp.StatusCode, nil)
		}
		if err := ReadBody(buf, hresp.Body, enc, c.opts.maxResponseSize); err != nil {
			if ctx.Err() != nil {
				return transport.ContextError(ctx, info)
			}
			if status.Code(err) == codes.ResourceExhausted {
				return err
			}
			return DecodeError(hresp.StatusCode, nil)
		}
		info.ReceivedBytes = buf.Len()
		err := DecodeError(hresp.StatusCode, buf.Bytes())
		if status.Code(err) == codes.DeadlineExceeded && callerDeadlinePassed(ctx) {
			return transport.ContextError(ctx, info) // both ends' timers fired: name the caller's
		}
		return err
	}
	if mdErr != nil {
		return status.Errorf(codes.Internal, "connect: %s.%s reply: %v", info.Service, info.Method, mdErr)
	}
	if cdc, _, ok := CodecFor(ct); !ok || cdc.Name() != c.codec.Name() {
		code := codes.Internal
		if !strings.HasPrefix(ct, "application/") {
			code = codes.Unknown // not a Connect reply at all
		}
		return status.Errorf(code, "connect: %s.%s reply has Content-Type %q, want %s", info.Service, info.Method, ct, c.contentType)
	}
	if err := ReadBody(buf, hresp.Body, enc, c.opts.maxResponseSize); err != nil {
		if ctx.Err() != nil {
			return transport.ContextError(ctx, info)
		}
		if status.Code(err) == codes.Unimplemented { // a coding we did not ask for
			return status.Errorf(codes.Internal, "connect: %s.%s reply: %v", info.Service, info.Method, status.Convert(err).Message())
		}
		return err
	}
	info.ReceivedBytes = buf.Len()
	if err := c.codec.Unmarshal(buf.Bytes(), resp); err != nil {
		return status.Errorf(codes.Internal, "connect: decoding %s.%s reply: %v", info.Service, info.Method, err)
	}
	return nil
}

// failed converts an error from http.Client.Do.
func (c *Client) failed(ctx context.Context, info *callinfo.Info, err error) error {
	if ctx.Err() != nil {
		return transport.ContextError(ctx, info)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is in the message already
	}
	return status.Wrap(codes.Unavailable, fmt.Sprintf("connect: calling %s.%s at %s: %v", info.Service, info.Method, c.base, err), err)
}

// callerDeadlinePassed reports whether ctx's deadline has passed, waiting
// for ctx to end if so: its timer may not have fired yet when the
// server's deadline_exceeded arrives, and the caller's deadline is the one
// to name.
func callerDeadlinePassed(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	if !ok || time.Now().Before(d) {
		return false
	}
	<-ctx.Done()
	return true
}
