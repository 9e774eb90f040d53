// Package callinfo holds the per-call record that travels through
// middlewares in the context: who calls whom, over which connection, on
// which attempt, with which metadata and deadline.
//
//	info := callinfo.FromContext(ctx)
//	fmt.Println(info.Side, info.Service, info.Method, info.Peer)
package callinfo

import (
	"context"
	"time"

	"github.com/sluicerpc/sluice/metadata"
)

// Side says which end of a call an Info describes.
type Side uint8

// The two sides of a call.
const (
	Client Side = iota + 1
	Server
)

func (s Side) String() string {
	switch s {
	case Client:
		return "client"
	case Server:
		return "server"
	}
	return "unknown"
}

// Info is the record of one call. The framework fills it; middlewares read
// it and may set the fields documented as settable.
type Info struct {
	Side Side
	// Service is the full protobuf service name, e.g. "sluice.examples.echo.v1.EchoService".
	Service string
	// Method is the method name, e.g. "Echo".
	Method string
	// FullMethod is "/" + Service + "/" + Method as the caller named it;
	// set on the client.
	FullMethod string
	// Protocol names the wire protocol of the call: "ttheader", "grpc", "connect".
	Protocol string
	// Peer is the remote address: the chosen instance on the client (set
	// after the balancer picks), the caller on the server.
	Peer string
	// Caller is the calling service's name when the caller sent one.
	Caller string
	// Attempt is 1 for the first try and grows with each retry.
	Attempt int
	// Avoid lists instances (addresses) earlier attempts of this call
	// failed on; the client picks another when it can. Client side only.
	Avoid []string
	// OnPick, when set, is called by the client with the instance the
	// balancer picked for the attempt, on the attempt's goroutine, before
	// the request is sent. Hedging sets it to keep backup attempts off the
	// instances earlier attempts are still waiting on. Client side only.
	OnPick func(addr string)
	// Start is when the call began on this side: on the client as Invoke
	// is called, on the server as the middleware chain begins. Middlewares
	// that time calls (metrics, tracing, breakers) read it instead of the
	// clock.
	Start time.Time
	// End is when the latest attempt's reply (or failure) arrived, set by
	// the client after each attempt that reached an instance; zero before.
	// Client middlewares that time calls read it instead of the clock.
	End time.Time
	// Deadline is the call's deadline, zero when it has none.
	Deadline time.Time
	// Metadata is the request metadata: outgoing on the client (nil until
	// the transport collects it), incoming on the server. On the server the
	// W3C trace context (the first value of each of metadata.KeyTraceparent
	// and metadata.KeyTracestate) is kept apart from it, so that a call that
	// carries nothing else needs no map: metadata.FromIncoming and
	// metadata.IncomingValue on the call's context have all of it.
	Metadata metadata.MD
	// Trace, when not nil, is the W3C trace context the client sends with
	// the call, set by a tracing middleware (observe/trace sets it): every
	// transport sends it after the outgoing metadata of the call's
	// context, in place of any values that metadata has under
	// metadata.KeyTraceparent and metadata.KeyTracestate. The server sees
	// it as ordinary incoming metadata. Setting it costs no allocation
	// where adding the same pairs to the outgoing metadata costs several.
	// A TraceContext must not change once set (a hedged call's attempts
	// read it concurrently); set another. Client side only; nil by
	// default: the outgoing metadata alone decides.
	Trace *TraceContext
	// ResponseMetadata is metadata sent back by the server. On the server a
	// handler adds to it through server.SetResponseMetadata; on the client
	// the transport fills it from the reply.
	ResponseMetadata metadata.MD
	// Rule, Route and Subset say which RouteRule, which of its routes and
	// which subset of instances the client routed the call by
	// (client.WithRoutes); empty without route rules or when no route
	// matched. Client side only.
	Rule, Route, Subset string
	// SentBytes and ReceivedBytes are the sizes of the encoded messages
	// this side sent and received, without the protocol's framing and
	// headers and before compression: on the client the request and the
	// reply (or error body; gRPC's errors have none), on the server the
	// other way round. The transport sets them on every protocol; a
	// retried call has its latest attempt's. On the server SentBytes is
	// set once the reply is encoded, after the middlewares have returned.
	SentBytes     int
	ReceivedBytes int
}

// TraceContext is W3C trace context (https://www.w3.org/TR/trace-context/)
// as a client sends it with a call: see Info.Trace.
type TraceContext struct {
	// Traceparent is sent under metadata.KeyTraceparent. Required: a
	// TraceContext without one sends nothing and replaces nothing.
	Traceparent string
	// Tracestate is sent under metadata.KeyTracestate when not empty.
	Tracestate string
}

type key struct{}

// NewContext returns ctx carrying info.
func NewContext(ctx context.Context, info *Info) context.Context {
	return &infoCtx{Context: ctx, info: info}
}

// FromContext returns the Info of the call ctx belongs to, or nil.
func FromContext(ctx context.Context) *Info {
	switch c := ctx.(type) { // fast paths: no walk through the chain
	case *Carrier:
		return &c.Info
	case *infoCtx:
		return c.info
	}
	info, _ := ctx.Value(key{}).(*Info)
	return info
}

// Carrier is a context that holds an Info inline, so a transport can make
// the call's context and its Info in one allocation.
type Carrier struct {
	context.Context
	Info Info
	// Room is storage its maker allocated with the carrier for a
	// middleware that would otherwise allocate its own with every call: a
	// server or client given a tracing (server.WithTracing,
	// client.WithTracing) keeps room for the call's span there (a
	// *trace.ServerRoom or *trace.ClientRoom). RoomFromContext finds it;
	// nil when there is none. What the room holds and who may take it
	// are its type's business.
	Room any
}

type roomKey struct{}

// Value implements context.Context.
func (c *Carrier) Value(k any) any {
	switch k.(type) {
	case key:
		return &c.Info
	case roomKey:
		return c.Room // nil included: an outer call's room is not this call's
	}
	return c.Context.Value(k)
}

// RoomFromContext returns the Room of the Carrier of the call ctx belongs
// to (the nearest Carrier in the chain), or nil.
func RoomFromContext(ctx context.Context) any {
	if c, ok := ctx.(*Carrier); ok {
		return c.Room
	}
	return ctx.Value(roomKey{})
}

type infoCtx struct {
	context.Context
	info *Info
}

func (c *infoCtx) Value(k any) any {
	switch k.(type) {
	case key:
		return c.info
	case roomKey:
		return nil // a call with an Info of its own has no room
	}
	return c.Context.Value(k)
}
