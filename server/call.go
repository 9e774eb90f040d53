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
}

func newCall(parent context.Context, m *method, protocol, peer string) *call {
	cl := &call{m: m}
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

// run runs the middleware chain and the handler for req and returns the
// reply. It applies the timeout, exposes the incoming metadata, turns a
// panic into Internal and a context error into a status that says which
// deadline fired.
func (s *Server) run(cl *call, req any) (reply any, err error) {
	m, info := cl.m, &cl.ctx.Info
	var ctx context.Context = &cl.ctx
	if cl.timeout > 0 {
		info.Deadline = time.Now().Add(cl.timeout)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, info.Deadline)
		defer cancel()
	} else if d, ok := cl.ctx.Context.Deadline(); ok {
		// The protocol's own server (gRPC) already applied the deadline;
		// keep the time left at arrival for error messages.
		info.Deadline = d
		cl.timeout = time.Until(d).Round(time.Millisecond)
	}
	if info.Metadata != nil {
		ctx = metadata.NewIncomingContext(ctx, info.Metadata)
	}
	defer func() {
		if r := recover(); r != nil {
			s.opts.logger.Error("server: handler panic", "service", m.service, "method", m.name, "panic", r, "stack", string(debug.Stack()))
			reply, err = nil, status.Errorf(codes.Internal, "server: panic in %s.%s: %v", m.service, m.name, r)
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
