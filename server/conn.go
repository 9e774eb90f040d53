package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/internal/transport"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/protocol/ttheader"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// conn serves the native protocol on one connection. Its reader decodes a
// frame and runs the handler inline; transport.Inline hands the reader role
// to a new goroutine when a handler blocks.
type conn struct {
	srv    *Server
	nc     net.Conn
	peer   string
	fr     *transport.FrameReader
	w      *transport.Writer
	inline transport.Inline
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

func newConn(s *Server, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(s.ctx)
	c := &conn{
		srv:    s,
		nc:     nc,
		peer:   nc.RemoteAddr().String(),
		fr:     transport.NewFrameReader(nc, s.opts.maxFrameSize),
		w:      transport.NewWriter(nc),
		ctx:    ctx,
		cancel: cancel,
	}
	c.inline.Resume = func() {
		s.wg.Add(1)
		go c.readLoop()
	}
	return c
}

func (c *conn) close() {
	c.once.Do(func() {
		c.cancel()
		c.nc.Close()
	})
}

// readLoop reads frames and serves them inline until the connection fails,
// or until the monitor hands the reader role to another goroutine.
func (c *conn) readLoop() {
	defer c.srv.wg.Done()
	var h ttheader.Header
	buf := make([]byte, 0, 4096)
	for {
		if !c.fr.Buffered() {
			// About to wait for the peer: nothing may stay held.
			if err := c.w.Flush(); err != nil {
				c.fail(err)
				return
			}
		}
		frame, err := c.fr.Next()
		if err != nil {
			c.fail(err)
			return
		}
		if !c.serve(frame, &h, &buf) {
			return
		}
	}
}

// fail closes the connection after a read or write error, logging what was
// not an ordinary close.
func (c *conn) fail(err error) {
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && c.srv.state.Load() < stateStopped {
		c.srv.opts.logger.Warn("server: closing connection", "peer", c.peer, "err", err)
	}
	c.close()
	c.srv.removeConn(c)
}

// serve handles one frame. It returns false when this goroutine must stop
// reading: the connection failed, or the reader role was handed off.
func (c *conn) serve(frame []byte, h *ttheader.Header, buf *[]byte) bool {
	pl, err := ttheader.DecodeHeader(frame, h)
	if err != nil {
		c.fail(err)
		return false
	}
	p, err := ttheader.DecodePayload(pl)
	if err != nil {
		c.fail(err)
		return false
	}
	if p.Type != ttheader.Call && p.Type != ttheader.Oneway {
		c.fail(fmt.Errorf("server: %v message on a server connection", p.Type))
		return false
	}
	seq := h.SeqID
	m, err := lookup(c.srv, h.String(ttheader.KeyServiceName), p.Method)
	if err != nil {
		c.fr.Release()
		return c.writeReply(h, buf, seq, string(p.Method), p.Type, nil, err, nil, c.fr.Buffered())
	}
	req := m.newReq()
	if err := c.srv.opts.codec.Unmarshal(p.Body, req); err != nil {
		c.fr.Release()
		err = status.Errorf(codes.Internal, "server: decoding %s.%s request: %v", m.service, m.name, err)
		return c.writeReply(h, buf, seq, m.name, p.Type, nil, err, nil, c.fr.Buffered())
	}

	cl := c.srv.newCall(c.ctx, m, "ttheader", c.peer)
	info := &cl.ctx.Info
	info.ReceivedBytes = len(p.Body)
	for i := range h.Ints {
		kv := &h.Ints[i]
		switch kv.Key {
		case ttheader.KeyRPCTimeout:
			if ms, err := strconv.Atoi(string(kv.Value)); err == nil && ms > 0 {
				cl.timeout = time.Duration(ms) * time.Millisecond
			}
		case ttheader.KeyFromService:
			info.Caller = string(kv.Value)
		}
	}
	// The trace context stays out of the metadata map (see
	// metadata.NewIncomingContextWithTrace): a call that carries nothing
	// else needs none. tp and ts view the frame until setIncoming copies
	// them.
	var tp, ts []byte
	for i := range h.Strings {
		kv := &h.Strings[i]
		switch string(kv.Key) {
		case ttheader.KeyServiceName:
		case ttheader.KeyAttempt:
			if n, err := strconv.Atoi(string(kv.Value)); err == nil && n > 0 {
				info.Attempt = n
			}
		case metadata.KeyTraceparent:
			if tp == nil && len(kv.Value) > 0 && info.Metadata[metadata.KeyTraceparent] == nil {
				tp = kv.Value
				break
			}
			info.Metadata = appendMD(info.Metadata, len(h.Strings), metadata.KeyTraceparent, string(kv.Value))
		case metadata.KeyTracestate:
			if ts == nil && len(kv.Value) > 0 && info.Metadata[metadata.KeyTracestate] == nil {
				ts = kv.Value
				break
			}
			info.Metadata = appendMD(info.Metadata, len(h.Strings), metadata.KeyTracestate, string(kv.Value))
		default:
			info.Metadata = appendMD(info.Metadata, len(h.Strings), string(kv.Key), string(kv.Value))
		}
	}
	cl.setIncoming(info.Metadata, view(tp), view(ts))
	c.fr.Release() // nothing below points into the frame

	// Counted from here until the reply is in the writer, so that
	// GracefulStop, once the count is zero, only has to flush.
	c.srv.callStarted()
	token := c.inline.Begin()
	reply, err := c.srv.run(cl, req)
	reader := c.inline.End(token)
	hold := reader && c.fr.Buffered()
	ok := c.writeReply(h, buf, seq, m.name, p.Type, reply, err, cl, hold)
	c.srv.callDone()
	return ok && reader
}

// view returns b as a string without copying it: valid while b is.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// appendMD adds k: v to md, making it (room for n keys) when nil.
func appendMD(md metadata.MD, n int, k, v string) metadata.MD {
	if md == nil {
		md = make(metadata.MD, n)
	}
	md[k] = append(md[k], v)
	return md
}

// writeReply encodes a reply (or an exception for err) and writes it. cl
// is the call, nil when the frame failed before a call began. It returns
// false when the connection failed.
func (c *conn) writeReply(h *ttheader.Header, buf *[]byte, seq uint32, methodName string, t ttheader.MsgType, msg any, err error, cl *call, hold bool) bool {
	if t == ttheader.Oneway {
		return true
	}
	var (
		md   metadata.MD
		info *callinfo.Info
		ctx  = c.srv.ctx
	)
	if cl != nil {
		info, ctx = &cl.ctx.Info, &cl.ctx
		md = info.ResponseMetadata
	}
	b, body, err := c.encodeReply(h, (*buf)[:0], seq, methodName, msg, err, md)
	if err != nil {
		c.srv.opts.logger.ErrorContext(ctx, "server: encoding reply", "method", methodName, "err", err)
		b, body, err = c.encodeReply(h, (*buf)[:0], seq, methodName, nil, status.Errorf(codes.Internal, "server: encoding reply: %v", err), nil)
		if err != nil {
			c.fail(err)
			return false
		}
	}
	*buf = b
	if cap(b) > 1<<20 {
		*buf = make([]byte, 0, 4096)
	}
	if err := c.w.Write(b, hold); err != nil {
		c.fail(err)
		return false
	}
	if info != nil {
		c.srv.replied(info, body)
	}
	return true
}

// encodeReply encodes a reply frame into buf and returns it with the size
// of its body (the encoded message or exception).
func (c *conn) encodeReply(h *ttheader.Header, buf []byte, seq uint32, methodName string, msg any, callErr error, md metadata.MD) (frame []byte, body int, err error) {
	h.Reset()
	h.SeqID = seq
	var codeBuf [4]byte
	if callErr != nil {
		st := status.Convert(callErr)
		h.AddString(ttheader.KeyStatus, string(strconv.AppendInt(codeBuf[:0], int64(st.Code()), 10)))
	}
	for k, vs := range md {
		for _, v := range vs {
			h.AddString(k, v)
		}
	}
	if c.srv.draining() {
		h.AddString(ttheader.KeyConnReset, "1")
	}
	buf, fs, err := ttheader.AppendHeader(buf, h)
	if err != nil {
		return buf, 0, err
	}
	var ps int
	if callErr != nil {
		st := status.Convert(callErr)
		buf, ps = ttheader.AppendPayloadHeader(buf, ttheader.Exception, methodName, seq)
		body = len(buf)
		buf = ttheader.AppendException(buf, ttheader.ExceptionType(st.Code()), st.Message())
	} else {
		buf, ps = ttheader.AppendPayloadHeader(buf, ttheader.Reply, methodName, seq)
		body = len(buf)
		if buf, err = c.srv.opts.codec.Marshal(buf, msg); err != nil {
			return buf, 0, err
		}
	}
	body = len(buf) - body
	ttheader.FinishPayload(buf, ps)
	frame, err = ttheader.FinishFrame(buf, fs, 0)
	return frame, body, err
}
