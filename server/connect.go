package server

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicerpc/sluice/protocol/connect"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// serveConnect serves one unary Connect call: POST /pkg.Service/Method (a
// routing prefix before the procedure is allowed, as the protocol says)
// with an application/proto or application/json body. Errors are JSON
// bodies with the HTTP status of their code (status.HTTPStatus).
func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request) {
	if s.serveMetrics(w, r) { // GET /metrics, with WithMetrics (observe.go)
		return
	}
	h := w.Header()
	if s.draining() {
		// Ask the client to leave the connection; on HTTP/2 net/http turns
		// this into a GOAWAY.
		h["Connection"] = []string{"close"}
	}
	if s.state.Load() >= stateStopped {
		connectError(w, status.Err(codes.Unavailable, "server: stopped"))
		return
	}
	m, err := connectMethod(s, r.URL.Path)
	if err != nil {
		connectError(w, err)
		return
	}
	// Refusals at the HTTP level (405, 415) carry code unknown: that is the
	// code a client that ignores the body infers from those statuses, so
	// every client sees the same code.
	if r.Method != http.MethodPost {
		h["Allow"] = []string{http.MethodPost}
		connect.WriteError(w, http.StatusMethodNotAllowed, status.Errorf(codes.Unknown,
			"server: %s %s: Connect unary calls are POSTs (GET is not supported)", r.Method, r.URL.Path))
		return
	}
	ct := r.Header.Get("Content-Type")
	cdc, replyType, ok := connect.CodecFor(ct)
	if !ok {
		h["Accept-Post"] = []string{connect.ContentTypeProto + ", " + connect.ContentTypeJSON}
		connect.WriteError(w, http.StatusUnsupportedMediaType, status.Errorf(codes.Unknown,
			"server: Content-Type %q is not supported; use %s or %s", ct, connect.ContentTypeProto, connect.ContentTypeJSON))
		return
	}
	if v := r.Header.Get(connect.HeaderProtocolVersion); v != "" && v != connect.ProtocolVersion {
		connectError(w, status.Errorf(codes.InvalidArgument, "server: %s must be %q, got %q", connect.HeaderProtocolVersion, connect.ProtocolVersion, v))
		return
	}
	var timeout time.Duration
	if v := r.Header.Get(connect.HeaderTimeout); v != "" {
		if timeout, err = connect.ParseTimeout(v); err != nil {
			connectError(w, status.Err(codes.InvalidArgument, err.Error()))
			return
		}
		if timeout == 0 {
			timeout = time.Nanosecond // "0": the deadline has passed already
		}
	}
	md, err := connect.Metadata(r.Header)
	if err != nil {
		connectError(w, status.Err(codes.InvalidArgument, err.Error()))
		return
	}
	attempt := 1
	if v := r.Header.Get(connect.HeaderAttempt); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			attempt = n
		}
	}

	limit := s.opts.maxFrameSize
	if r.ContentLength > int64(limit) {
		connectError(w, status.Errorf(codes.ResourceExhausted, "server: %s.%s request of %d bytes is larger than the limit of %d", m.service, m.name, r.ContentLength, limit))
		return
	}
	buf := getConnectBuffer()
	defer putConnectBuffer(buf)
	if err := connect.ReadBody(buf, r.Body, r.Header.Get("Content-Encoding"), limit); err != nil {
		if status.Code(err) == codes.Unimplemented {
			h["Accept-Encoding"] = []string{connect.AcceptEncoding}
		}
		connectError(w, err)
		return
	}
	req := m.newReq()
	if err := cdc.Unmarshal(buf.Bytes(), req); err != nil {
		// InvalidArgument, where the native protocol (like gRPC-Go) says
		// Internal: a Connect body is typed by hand as often as not, and
		// connect-go answers an undecodable one with invalid_argument.
		connectError(w, status.Errorf(codes.InvalidArgument, "server: decoding %s.%s request as %s: %v", m.service, m.name, cdc.Name(), err))
		return
	}

	// r's context ends when the client goes away, and when the server
	// stops: the HTTP server's BaseContext is s.ctx.
	cl := s.newCall(r.Context(), m, "connect", r.RemoteAddr)
	info := &cl.ctx.Info
	cl.setIncomingSplit(md)
	info.Attempt = attempt
	info.ReceivedBytes = buf.Len()
	info.Caller = r.Header.Get(connect.HeaderCaller)
	cl.timeout = timeout
	reply, err := s.run(cl, req)

	if err := connect.SetHeaders(h, info.ResponseMetadata); err != nil {
		s.opts.logger.WarnContext(&cl.ctx, "server: response metadata not sent", "service", m.service, "method", m.name, "err", err)
	}
	if err != nil {
		connectError(w, err)
		return
	}
	buf.Reset()
	body, err := cdc.Marshal(buf.AvailableBuffer(), reply)
	if err != nil {
		s.opts.logger.ErrorContext(&cl.ctx, "server: encoding reply", "service", m.service, "method", m.name, "err", err)
		connectError(w, status.Errorf(codes.Internal, "server: encoding %s.%s reply: %v", m.service, m.name, err))
		return
	}
	n := len(body) // before compression, as the byte counts are
	h["Accept-Encoding"] = []string{connect.AcceptEncoding}
	if len(body) >= connect.CompressMinBytes && acceptsGzip(r) {
		zb := getConnectBuffer()
		defer putConnectBuffer(zb)
		if err := connect.Compress(zb, body); err == nil {
			body = zb.Bytes()
			h["Content-Encoding"] = []string{connect.EncodingGzip}
		}
	}
	h["Content-Type"] = []string{replyType}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	s.replied(info, n)
}

// connectMethod finds the method a Connect path names: its last two
// segments, "pkg.Service/Method".
func connectMethod(s *Server, path string) (*method, error) {
	i := strings.LastIndexByte(path, '/')
	j := strings.LastIndexByte(path[:max(i, 0)], '/')
	if i < 0 || j < 0 || j+1 == i || i+1 == len(path) {
		return nil, status.Errorf(codes.Unimplemented, "server: %q is not a Connect procedure path; want /pkg.Service/Method", path)
	}
	return lookup(s, path[j+1:i], path[i+1:])
}

// acceptsGzip applies the protocol's rule: without Accept-Encoding the
// client accepts the coding of its request.
func acceptsGzip(r *http.Request) bool {
	if ae, ok := r.Header["Accept-Encoding"]; ok {
		return connect.AcceptsGzip(strings.Join(ae, ","))
	}
	return r.Header.Get("Content-Encoding") == connect.EncodingGzip
}

func connectError(w http.ResponseWriter, err error) {
	connect.WriteError(w, status.HTTPStatus(status.Code(err)), err)
}

var connectBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getConnectBuffer() *bytes.Buffer { return connectBuffers.Get().(*bytes.Buffer) }

func putConnectBuffer(b *bytes.Buffer) {
	if b.Cap() > 64<<10 { // one huge body must not pin its memory
		return
	}
	b.Reset()
	connectBuffers.Put(b)
}
