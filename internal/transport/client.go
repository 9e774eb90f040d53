package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/codec"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/protocol/ttheader"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// ClientConn multiplexes calls over one native-protocol connection: each
// call gets a sequence id, replies are matched by it in any order, and
// concurrent requests share write syscalls.
type ClientConn struct {
	nc    net.Conn
	addr  string
	cfg   ClientConfig
	codec codec.Codec
	w     *AsyncWriter
	fr    *FrameReader

	mu      sync.Mutex
	pending map[uint32]*pending
	err     error // set once the connection failed

	seq      atomic.Uint32
	draining atomic.Bool // the server asked clients to move off
	done     chan struct{}
}

// pending is one outstanding call; pooled, with its encode buffer.
type pending struct {
	done chan error
	resp any
	info *callinfo.Info
	h    ttheader.Header
	buf  []byte
	// scratch for decimal header values, kept here so they do not escape per call
	attempt [8]byte
	timeout [20]byte
	// md writes the outgoing metadata into h when the call's info has its
	// own trace context (Info.Trace); kept here so that it does not escape
	// per call.
	md traceWriter
}

// traceWriter adds outgoing metadata to a request header, leaving out the
// W3C trace context keys: the call's info carries the trace context the
// request is to send instead (callinfo.Info.Trace).
type traceWriter struct{ h *ttheader.Header }

func (w *traceWriter) AddString(k, v string) {
	if !IsTraceKey(k) {
		w.h.AddString(k, v)
	}
}

// IsTraceKey reports whether the metadata key k is one of the W3C trace
// context keys, metadata.KeyTraceparent or metadata.KeyTracestate, in any
// case: the keys a call's own trace context (callinfo.Info.Trace) replaces
// in its outgoing metadata.
func IsTraceKey(k string) bool {
	switch len(k) {
	case len(metadata.KeyTraceparent):
		return k == metadata.KeyTraceparent || strings.EqualFold(k, metadata.KeyTraceparent)
	case len(metadata.KeyTracestate):
		return k == metadata.KeyTracestate || strings.EqualFold(k, metadata.KeyTracestate)
	}
	return false
}

var pendingPool = sync.Pool{New: func() any {
	return &pending{done: make(chan error, 1), buf: make([]byte, 0, 2048)}
}}

// ClientConfig configures a ClientConn.
type ClientConfig struct {
	Codec codec.Codec
	// MaxFrameSize bounds reply frames; 0 means no limit.
	MaxFrameSize int
	// ShortServiceName sends "EchoService" rather than
	// "pkg.v1.EchoService" in the isn key, as Kitex clients do.
	ShortServiceName bool
}

// NewClientConn starts serving replies on nc.
func NewClientConn(nc net.Conn, cfg ClientConfig) *ClientConn {
	cc := &ClientConn{
		nc:      nc,
		addr:    nc.RemoteAddr().String(),
		cfg:     cfg,
		codec:   cfg.Codec,
		w:       NewAsyncWriter(nc),
		fr:      NewFrameReader(nc, cfg.MaxFrameSize),
		pending: map[uint32]*pending{},
		done:    make(chan struct{}),
	}
	go cc.readLoop()
	return cc
}

// Usable reports whether new calls may use the connection.
func (cc *ClientConn) Usable() bool {
	if cc.draining.Load() {
		return false
	}
	select {
	case <-cc.done:
		return false
	default:
		return true
	}
}

// Done is closed once the connection has failed or been closed.
func (cc *ClientConn) Done() <-chan struct{} { return cc.done }

// Close closes the connection; calls in flight fail with Unavailable.
func (cc *ClientConn) Close() error {
	cc.fail(errClosed)
	return nil
}

var errClosed = errors.New("transport: connection closed by the client")

// Call sends req for the call described by info (service, method,
// deadline, attempt) and decodes the reply into resp. ctx supplies the
// outgoing metadata and cancellation.
func (cc *ClientConn) Call(ctx context.Context, info *callinfo.Info, req, resp any) error {
	p := pendingPool.Get().(*pending)
	p.resp, p.info = resp, info
	seq := cc.seq.Add(1)

	// Encode before registering, so an encoding error needs no clean-up.
	buf, err := cc.encode(ctx, p, seq, info, req)
	if err != nil {
		p.release()
		return status.Errorf(codes.Internal, "transport: encoding %s.%s request: %v", info.Service, info.Method, err)
	}
	cc.mu.Lock()
	if cc.err != nil {
		err := cc.err
		cc.mu.Unlock()
		p.release()
		return cc.unavailable(info, err)
	}
	cc.pending[seq] = p
	cc.mu.Unlock()

	if err := cc.w.Write(buf); err != nil {
		cc.fail(err)
	}
	done := ctx.Done()
	if done == nil { // a context that never ends: no select needed
		err := <-p.done
		p.release()
		return err
	}
	select {
	case err := <-p.done:
		p.release()
		return CallerDeadline(ctx, info, err)
	case <-done:
		cc.mu.Lock()
		_, waiting := cc.pending[seq]
		delete(cc.pending, seq)
		cc.mu.Unlock()
		if !waiting {
			// The reader took the reply already and is decoding into resp;
			// wait so resp is not written after we return.
			err := <-p.done
			p.release()
			return err
		}
		p.release()
		return ContextError(ctx, info)
	}
}

func (p *pending) release() {
	p.resp, p.info = nil, nil
	if cap(p.buf) > 64<<10 {
		p.buf = make([]byte, 0, 2048)
	}
	pendingPool.Put(p)
}

// ContextError converts the end of the caller's context into a status
// that says which deadline fired and how long it was.
func ContextError(ctx context.Context, info *callinfo.Info) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		msg := fmt.Sprintf("client: deadline exceeded calling %s.%s", info.Service, info.Method)
		if info.Peer != "" {
			msg += " on " + info.Peer
		}
		if !info.Deadline.IsZero() && !info.Start.IsZero() {
			msg += fmt.Sprintf(": the caller's deadline of %v ran out", roundTimeout(info.Deadline.Sub(info.Start)))
		}
		return status.Wrap(codes.DeadlineExceeded, msg, err)
	}
	return status.Wrap(codes.Canceled, fmt.Sprintf("client: call to %s.%s canceled by the caller", info.Service, info.Method), err)
}

// CallerDeadline returns the caller's-deadline error for a
// DeadlineExceeded that arrives once the caller's own deadline has passed:
// the server's copy of that deadline fired and its reply beat the caller's
// timer, but it is the caller's deadline all the same. Other errors pass.
func CallerDeadline(ctx context.Context, info *callinfo.Info, err error) error {
	if err == nil || info.Deadline.IsZero() || status.Code(err) != codes.DeadlineExceeded || time.Now().Before(info.Deadline) {
		return err
	}
	<-ctx.Done()
	return ContextError(ctx, info)
}

func (cc *ClientConn) unavailable(info *callinfo.Info, err error) error {
	return status.Wrap(codes.Unavailable, fmt.Sprintf("transport: connection to %s failed during %s.%s: %v", cc.addr, info.Service, info.Method, err), err)
}

func (cc *ClientConn) encode(ctx context.Context, p *pending, seq uint32, info *callinfo.Info, req any) ([]byte, error) {
	h := &p.h
	h.Reset()
	h.SeqID = seq
	svc := info.Service
	if cc.cfg.ShortServiceName {
		svc = svc[strings.LastIndexByte(svc, '.')+1:]
	}
	h.AddString(ttheader.KeyServiceName, svc)
	if info.Attempt > 1 {
		h.Strings = append(h.Strings, ttheader.KV{Key: s2b(ttheader.KeyAttempt), Value: strconv.AppendInt(p.attempt[:0], int64(info.Attempt), 10)})
	}
	if tc := info.Trace; tc == nil || tc.Traceparent == "" {
		metadata.RangeOutgoing(ctx, h)
	} else {
		p.md.h = h
		metadata.RangeOutgoing(ctx, &p.md)
		h.AddString(metadata.KeyTraceparent, tc.Traceparent)
		if tc.Tracestate != "" {
			h.AddString(metadata.KeyTracestate, tc.Tracestate)
		}
	}
	h.AddInt(ttheader.KeyToMethod, s2b(info.Method))
	if info.Caller != "" {
		h.AddInt(ttheader.KeyFromService, s2b(info.Caller))
	}
	if !info.Deadline.IsZero() {
		ms := (time.Until(info.Deadline) + time.Millisecond - 1) / time.Millisecond
		if ms < 1 {
			ms = 1
		}
		h.AddInt(ttheader.KeyRPCTimeout, strconv.AppendInt(p.timeout[:0], int64(ms), 10))
	}
	buf, fs, err := ttheader.AppendHeader(p.buf[:0], h)
	if err != nil {
		return nil, err
	}
	buf, ps := ttheader.AppendPayloadHeader(buf, ttheader.Call, info.Method, seq)
	body := len(buf)
	buf, err = cc.codec.Marshal(buf, req)
	if err != nil {
		return nil, err
	}
	info.SentBytes = len(buf) - body
	ttheader.FinishPayload(buf, ps)
	buf, err = ttheader.FinishFrame(buf, fs, 0)
	p.buf = buf
	return buf, err
}

func (cc *ClientConn) readLoop() {
	var h ttheader.Header
	for {
		frame, err := cc.fr.Next()
		if err != nil {
			cc.fail(err)
			return
		}
		if err := cc.deliver(frame, &h); err != nil {
			cc.fail(err)
			return
		}
	}
}

// deliver decodes one reply frame and completes its call. An error means
// the stream is broken and the connection must close.
func (cc *ClientConn) deliver(frame []byte, h *ttheader.Header) error {
	pl, err := ttheader.DecodeHeader(frame, h)
	if err != nil {
		return err
	}
	pld, err := ttheader.DecodePayload(pl)
	if err != nil {
		return err
	}
	if h.String(ttheader.KeyConnReset) != nil {
		cc.draining.Store(true)
	}
	cc.mu.Lock()
	p := cc.pending[h.SeqID]
	delete(cc.pending, h.SeqID)
	cc.mu.Unlock()
	if p == nil {
		return nil // the caller gave up; drop the late reply
	}
	var callErr error
	info := p.info
	info.ReceivedBytes = len(pld.Body)
	for i := range h.Strings {
		kv := &h.Strings[i]
		switch string(kv.Key) {
		case ttheader.KeyStatus, ttheader.KeyConnReset:
		default:
			if info.ResponseMetadata == nil {
				info.ResponseMetadata = metadata.MD{}
			}
			k := string(kv.Key)
			info.ResponseMetadata[k] = append(info.ResponseMetadata[k], string(kv.Value))
		}
	}
	switch pld.Type {
	case ttheader.Reply:
		if biz := h.String(ttheader.KeyBizStatus); len(biz) > 0 && string(biz) != "0" {
			// A Kitex business error: a reply with an empty body and the
			// status in the header. The keys stay in the response metadata.
			callErr = status.Errorf(codes.Unknown, "transport: %s.%s failed with business status %s: %s", info.Service, info.Method, biz, h.String(ttheader.KeyBizMessage))
			break
		}
		if err := cc.codec.Unmarshal(pld.Body, p.resp); err != nil {
			callErr = status.Errorf(codes.Internal, "transport: decoding %s.%s reply: %v", info.Service, info.Method, err)
		}
	case ttheader.Exception:
		typeID, msg, err := ttheader.DecodeException(pld.Body)
		if err != nil {
			callErr = status.Errorf(codes.Internal, "transport: decoding %s.%s exception: %v", info.Service, info.Method, err)
			break
		}
		code := ttheader.CodeOf(typeID)
		if v := h.String(ttheader.KeyStatus); v != nil {
			if n, err := strconv.Atoi(string(v)); err == nil && n > 0 && n <= int(codes.Unauthenticated) {
				code = codes.Code(n)
			}
		}
		callErr = status.Err(code, msg)
	default:
		callErr = status.Errorf(codes.Internal, "transport: %v message in reply to %s.%s", pld.Type, info.Service, info.Method)
	}
	p.done <- callErr
	return nil
}

// fail closes the connection once and fails every call in flight.
func (cc *ClientConn) fail(err error) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	cc.err = err
	calls := cc.pending
	cc.pending = map[uint32]*pending{}
	cc.mu.Unlock()
	close(cc.done)
	cc.nc.Close()
	cc.w.Close()
	for _, p := range calls {
		p.done <- cc.unavailable(p.info, err)
	}
}

// Idle reports whether no call is in flight.
func (cc *ClientConn) Idle() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.pending) == 0
}

// roundTimeout rounds a timeout measured from a call's start to the value
// the caller most likely set: the start is taken a little after the
// caller's context was made.
func roundTimeout(d time.Duration) time.Duration {
	if d >= 10*time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Microsecond)
}
