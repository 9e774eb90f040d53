package server

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/observe/trace"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// call is one server call, whatever protocol carried it: the context with
// the call info inline and the reply slot, in one allocation. A protocol
// adapter makes it with newCall, fills what its wire says (metadata,
// timeout, caller, attempt), and hands it to Server.run.
type call struct {
	ctx   callinfo.Carrier
	reply endpoint.Reply
	m     *method
	// timeout is the caller's remaining time as the wire said it; zero
	// when the caller sent none (or the parent context already carries it).
	timeout time.Duration
	in      *metadata.TraceRoom // room for the incoming context; nil: none
}

// tracedCall is a call with room for its tracing, which a server with a
// Tracing (WithTracing) makes: its incoming trace context and its span,
// in the call's one allocation.
type tracedCall struct {
	call
	in   metadata.TraceRoom
	span trace.ServerRoom
}

// newCall makes a call to m, with room for its tracing when s traces.
func (s *Server) newCall(parent context.Context, m *method, protocol, peer string) *call {
	var cl *call
	if s.opts.tracing != nil {
		tc := &tracedCall{}
		cl = &tc.call
		cl.in, cl.ctx.Room = &tc.in, &tc.span
	} else {
		cl = &call{}
	}
	cl.m = m
	cl.ctx.Context = parent
	info := &cl.ctx.Info
	info.Side = callinfo.Server
	info.Service = m.service
	info.Method = m.name
	info.Protocol = protocol
	info.Peer = peer
	info.Attempt = 1
	return cl
}

// setIncoming makes md the call's incoming metadata, with the W3C trace
// context traceparent and tracestate kept apart from it (see
// metadata.NewIncomingContextWithTrace, which copies them: they may view
// a buffer the adapter reuses). The incoming context becomes the parent of
// the call's own, which stays first in the chain.
func (cl *call) setIncoming(md metadata.MD, traceparent, tracestate string) {
	cl.ctx.Info.Metadata = md
	if md != nil || traceparent != "" || tracestate != "" {
		cl.ctx.Context = metadata.NewIncomingContextIn(cl.in, cl.ctx.Context, md, traceparent, tracestate)
	}
}

// setIncomingSplit is setIncoming for md, which the adapter owns, with
// the trace context still in it: the first value of each of its keys
// comes out.
func (cl *call) setIncomingSplit(md metadata.MD) {
	tp, ts := takeFirst(md, metadata.KeyTraceparent), takeFirst(md, metadata.KeyTracestate)
	if len(md) == 0 {
		md = nil
	}
	cl.setIncoming(md, tp, ts)
}

// takeFirst removes the first value of key from md and returns it; an
// empty first value stays.
func takeFirst(md metadata.MD, key string) string {
	vs := md[key]
	if len(vs) == 0 || vs[0] == "" {
		return ""
	}
	if len(vs) == 1 {
		delete(md, key)
	} else {
		md[key] = vs[1:]
	}
	return vs[0]
}

// run runs the middleware chain and the handler for req and returns the
// reply. It applies the timeout, turns a panic into Internal and a
// context error into a status that says which deadline fired. The
// adapter has set the incoming metadata (setIncoming).
func (s *Server) run(cl *call, req any) (reply any, err error) {
	m, info := cl.m, &cl.ctx.Info
	// The one clock read of the call's start: metrics and tracing
	// middlewares read Start rather than the clock.
	info.Start = now()
	var ctx context.Context = &cl.ctx
	if cl.timeout > 0 {
		info.Deadline = info.Start.Add(cl.timeout)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, info.Deadline)
		defer cancel()
	} else if d, ok := cl.ctx.Context.Deadline(); ok {
		// The protocol's own server (gRPC) already applied the deadline;
		// keep the time left at arrival for error messages.
		info.Deadline = d
		cl.timeout = time.Until(d).Round(time.Millisecond)
	}
	defer func() {
		if r := recover(); r != nil { // in a middleware: the handler's are recovered where it runs
			reply, err = nil, s.panicked(&cl.ctx, m.service, m.name, r)
		}
	}()
	err = m.endpoint(ctx, req, &cl.reply)
	if err == nil && cl.reply.Msg == nil {
		err = status.Errorf(codes.Internal, "server: %s.%s returned a nil reply and no error", m.service, m.name)
	}
	if err != nil {
		return nil, s.contextError(cl, err)
	}
	return cl.reply.Msg, nil
}

// panicked logs a panic in a call with ctx, the stack included, and
// returns the Internal status the caller gets.
func (s *Server) panicked(ctx context.Context, service, method string, r any) error {
	s.opts.logger.ErrorContext(ctx, "server: panic", "service", service, "method", method, "panic", r, "stack", string(debug.Stack()))
	return status.Errorf(codes.Internal, "server: panic in %s.%s: %v", service, method, r)
}

// clockBase makes now cheaper than time.Now.
var clockBase = time.Now()

// now returns the current time from one read of the monotonic clock (its
// wall reading follows from the process's start), where time.Now reads
// the wall clock as well.
func now() time.Time { return clockBase.Add(time.Since(clockBase)) }

// contextError names the deadline or cancellation behind a bare context
// error a handler returned; other errors pass through.
func (s *Server) contextError(cl *call, err error) error {
	if _, ok := err.(*status.Error); ok {
		return err
	}
	m, info := cl.m, &cl.ctx.Info
	switch {
	case errors.Is(err, context.DeadlineExceeded) && !info.Deadline.IsZero():
		return status.Wrap(codes.DeadlineExceeded, fmt.Sprintf("server: deadline exceeded in %s.%s: the caller's timeout of %v ran out on the server", m.service, m.name, cl.timeout), err)
	case errors.Is(err, context.Canceled) && cl.ctx.Context.Err() != nil:
		return status.Wrap(codes.Canceled, "server: the call to "+m.service+"."+m.name+" was canceled (caller gone or connection closed)", err)
	}
	return err
}
