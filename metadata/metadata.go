// Package metadata carries request and response metadata: string keys
// (lower-cased) with one or more string values. The same API serves every
// protocol; on the native protocol metadata travels as TTHeader string
// key/values, on gRPC and Connect as headers (and in contrib/nats as NATS
// message headers).
//
// A client attaches metadata to the outgoing context:
//
//	ctx = metadata.AppendToOutgoing(ctx, "x-tenant", "acme")
//
// and the server reads it from the incoming context:
//
//	md, _ := metadata.FromIncoming(ctx)
//	tenant := md.Get("x-tenant")
//
// # Transient and persistent metadata
//
// Metadata comes in two kinds, as Kitex's transit and persist do.
// Transient metadata (AppendToOutgoing, NewOutgoingContext) travels one
// hop: the server that receives it reads it, and the calls that server's
// handler makes do not carry it. Persistent metadata (AppendPersistent,
// SetPersistent) and W3C baggage (SetBaggage, WithBaggage) travel the
// whole chain: a server puts what arrived back on every call its handler
// makes with the handler's context, over any protocol, so a key set by the
// first caller reaches the last service unless a service in between
// changes or removes it.
//
//	ctx = metadata.AppendPersistent(ctx, "x-tenant", "acme")  // the whole chain
//	ctx, err = metadata.SetBaggage(ctx, "sluice-lane", "canary")
//	...
//	tenant, _ := metadata.PersistentValue(ctx, "x-tenant")   // in any service downstream
//	lane, _ := metadata.BaggageValue(ctx, "sluice-lane")
//
// # On the wire
//
// A persistent key k travels as the metadata key PersistentPrefix+k
// ("rpc-persist-" + k) on every protocol; baggage travels as the metadata
// key "baggage" in the W3C format (https://www.w3.org/TR/baggage/). The
// prefix is reserved: any key under it is persistent at the next hop,
// however it was sent. Kitex uses the same prefix for persistent metainfo
// over HTTP and gRPC (bytedance/gopkg metainfo.HTTPPrefixPersistent), so
// persistent keys cross Kitex gRPC services both ways; Kitex's TTHeader
// form ("RPC_PERSIST_" + KEY) is accepted on arrival and becomes
// "rpc-persist-" + key, lower-cased with '_' turned into '-' as Kitex's own
// HTTP conversion does.
//
// NewIncomingContext is where the chain continues: it puts the persistent
// keys and the baggage that arrived into the context's outgoing metadata
// (allocating only when there are some). The transient keys that arrived
// stay incoming only. Trace context (KeyTraceparent, KeyTracestate) is
// ordinary transient metadata here; the tracing middleware writes a new
// one per hop, which the client's transport sends from the call info
// (callinfo.Info.Trace) rather than from the outgoing metadata. A server
// may keep a call's trace context apart from its MD
// (NewIncomingContextWithTrace): it is incoming metadata all the same,
// and IncomingTraceContext reads both keys in one look-up.
package metadata

import (
	"context"
	"strings"
	"sync/atomic"
	"unsafe"
)

// MD maps lower-case keys to values.
type MD map[string][]string

// New returns an MD from a map, lower-casing keys.
func New(m map[string]string) MD {
	md := make(MD, len(m))
	for k, v := range m {
		md[strings.ToLower(k)] = append(md[strings.ToLower(k)], v)
	}
	return md
}

// Pairs returns an MD from alternating keys and values. An odd count panics,
// as it is a programming error.
func Pairs(kv ...string) MD {
	if len(kv)%2 == 1 {
		panic("metadata: Pairs got an odd number of arguments")
	}
	md := make(MD, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k := strings.ToLower(kv[i])
		md[k] = append(md[k], kv[i+1])
	}
	return md
}

// Len returns the number of keys.
func (md MD) Len() int { return len(md) }

// Get returns the values of key.
func (md MD) Get(key string) []string { return md[lower(key)] }

// Value returns the first value of key, or "".
func (md MD) Value(key string) string {
	if v := md[lower(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key.
func (md MD) Set(key string, vals ...string) {
	if len(vals) == 0 {
		return
	}
	md[lower(key)] = vals
}

// Append adds values to key.
func (md MD) Append(key string, vals ...string) {
	if len(vals) == 0 {
		return
	}
	k := lower(key)
	md[k] = append(md[k], vals...)
}

// Delete removes key.
func (md MD) Delete(key string) { delete(md, lower(key)) }

// Copy returns a deep copy.
func (md MD) Copy() MD {
	out := make(MD, len(md))
	for k, v := range md {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// Join merges several MDs into a new one; values of a repeated key are concatenated.
func Join(mds ...MD) MD {
	out := MD{}
	for _, md := range mds {
		for k, v := range md {
			out[k] = append(out[k], v...)
		}
	}
	return out
}

// lower returns key in lower case without allocating when it already is.
func lower(key string) string {
	for i := 0; i < len(key); i++ {
		if c := key[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(key)
		}
	}
	return key
}

// KeyTraceparent and KeyTracestate are the metadata keys (and HTTP
// headers) of W3C Trace Context (https://www.w3.org/TR/trace-context/).
// They are ordinary transient metadata; a client's transport also sends
// the trace context a tracing middleware put in the call's info
// (callinfo.Info.Trace) under them.
const (
	KeyTraceparent = "traceparent"
	KeyTracestate  = "tracestate"
)

type (
	outgoingKey struct{}
	incomingKey struct{}
)

// outgoing holds the outgoing MD plus pairs appended later, so that
// AppendToOutgoing never copies or mutates a caller's MD, and the chain
// state (persistent pairs and baggage), which NewOutgoingContext keeps.
type outgoing struct {
	md    MD
	added [][]string
	chain *chain
}

// NewOutgoingContext returns ctx carrying md for the next call. It replaces
// the transient outgoing metadata already in ctx. Persistent metadata and
// baggage stay as they are, unless md has persistent keys (under
// PersistentPrefix) or baggage: then those replace them, so that the
// outgoing metadata read with FromOutgoing, changed and set back with
// NewOutgoingContext, is sent once and as changed.
func NewOutgoingContext(ctx context.Context, md MD) context.Context {
	o, _ := ctx.Value(outgoingKey{}).(outgoing)
	o = outgoing{md: md, chain: o.chain}
	if hasChainKeys(md) {
		o.md, o.chain = transientOnly(md), chainFrom(md)
	}
	return context.WithValue(ctx, outgoingKey{}, o)
}

// AppendToOutgoing returns ctx with key/value pairs added to its outgoing
// transient metadata. An odd count panics.
func AppendToOutgoing(ctx context.Context, kv ...string) context.Context {
	if len(kv)%2 == 1 {
		panic("metadata: AppendToOutgoing got an odd number of arguments")
	}
	o, _ := ctx.Value(outgoingKey{}).(outgoing)
	added := make([][]string, len(o.added), len(o.added)+1)
	copy(added, o.added)
	kvc := make([]string, len(kv))
	for i := range kv {
		if i%2 == 0 {
			kvc[i] = lower(kv[i])
		} else {
			kvc[i] = kv[i]
		}
	}
	o.added = append(added, kvc)
	return context.WithValue(ctx, outgoingKey{}, o)
}

// FromOutgoing returns the outgoing metadata in ctx as a new MD the caller
// may change: what the next call sends, persistent keys under their wire
// names (PersistentPrefix + key) and baggage under KeyBaggage included.
func FromOutgoing(ctx context.Context) (MD, bool) {
	o, ok := ctx.Value(outgoingKey{}).(outgoing)
	if !ok {
		return nil, false
	}
	md := o.md.Copy()
	for _, kv := range o.added {
		for i := 0; i < len(kv); i += 2 {
			md[kv[i]] = append(md[kv[i]], kv[i+1])
		}
	}
	if c := o.chain; c != nil {
		for i := 0; i < len(c.pairs); i += 2 {
			md[c.pairs[i]] = append(md[c.pairs[i]], c.pairs[i+1])
		}
		if c.header != "" {
			md[KeyBaggage] = append(md[KeyBaggage], c.header)
		}
	}
	return md, true
}

// Adder receives key/value pairs; transports implement it to write headers.
type Adder interface {
	AddString(k, v string)
}

// RangeOutgoing hands every outgoing key/value pair in ctx to a without
// building an MD, so transports write headers without allocating. It hands
// over what FromOutgoing would list: transient pairs, then persistent pairs
// under their wire names, then the baggage header.
func RangeOutgoing(ctx context.Context, a Adder) {
	o, ok := ctx.Value(outgoingKey{}).(outgoing)
	if !ok {
		return
	}
	for k, vs := range o.md {
		for _, v := range vs {
			a.AddString(k, v)
		}
	}
	for _, kv := range o.added {
		for i := 0; i < len(kv); i += 2 {
			a.AddString(kv[i], kv[i+1])
		}
	}
	if c := o.chain; c != nil {
		for i := 0; i < len(c.pairs); i += 2 {
			a.AddString(c.pairs[i], c.pairs[i+1])
		}
		if c.header != "" {
			a.AddString(KeyBaggage, c.header)
		}
	}
}

// OutgoingValue returns the first outgoing value of key in ctx, the one
// FromOutgoing(ctx) would list first, without building an MD. Persistent
// keys answer under their wire names (PersistentPrefix + key; see
// PersistentValue for the plain name), baggage under KeyBaggage.
func OutgoingValue(ctx context.Context, key string) (string, bool) {
	o, ok := ctx.Value(outgoingKey{}).(outgoing)
	if !ok {
		return "", false
	}
	key = lower(key)
	if vs := o.md[key]; len(vs) > 0 {
		return vs[0], true
	}
	for _, kv := range o.added {
		for i := 0; i < len(kv); i += 2 {
			if kv[i] == key {
				return kv[i+1], true
			}
		}
	}
	if c := o.chain; c != nil {
		for i := 0; i < len(c.pairs); i += 2 {
			if c.pairs[i] == key {
				return c.pairs[i+1], true
			}
		}
		if key == KeyBaggage && c.header != "" {
			return c.header, true
		}
	}
	return "", false
}

// NewIncomingContext returns ctx carrying md as the metadata the current
// call arrived with. Servers call it; handlers read it with FromIncoming.
//
// The persistent keys and the baggage in md also become ctx's outgoing
// persistent metadata and baggage (replacing any ctx had), so that every
// call made with ctx carries them on; md's transient keys do not travel
// on. This costs nothing more when md has neither.
func NewIncomingContext(ctx context.Context, md MD) context.Context {
	ctx = context.WithValue(ctx, incomingKey{}, md)
	if c := chainFrom(md); c != nil {
		o, _ := ctx.Value(outgoingKey{}).(outgoing)
		o.chain = c
		ctx = context.WithValue(ctx, outgoingKey{}, o)
	}
	return ctx
}

// NewIncomingContextWithTrace is NewIncomingContext for a server that keeps
// the W3C trace context of a call apart from md, so that a call carrying
// nothing else needs no map: traceparent and tracestate, each "" when the
// call carried none, are the first values the call arrived with under
// KeyTraceparent and KeyTracestate (md may hold further ones). They are
// incoming metadata all the same: FromIncoming lists them first under
// their keys, and IncomingValue finds them.
//
// traceparent and tracestate are copied (a version 00 traceparent into
// the context itself, without an allocation of its own), so they may view
// a buffer the caller reuses once this returns: a frame a server has read
// them from, say.
func NewIncomingContextWithTrace(ctx context.Context, md MD, traceparent, tracestate string) context.Context {
	return NewIncomingContextIn(nil, ctx, md, traceparent, tracestate)
}

// TraceRoom is room for the incoming context of one call, which a server
// allocates together with the call: NewIncomingContextIn makes the context
// of a call that carried a traceparent and no other metadata (the common
// case of a traced call) there, rather than in an allocation of its own.
// The zero TraceRoom is ready; it serves one call.
type TraceRoom struct{ c traceCtx }

// NewIncomingContextIn is NewIncomingContextWithTrace with room for the
// context of the common case; room nil allocates it, as
// NewIncomingContextWithTrace does. A room must be used once only.
func NewIncomingContextIn(room *TraceRoom, ctx context.Context, md MD, traceparent, tracestate string) context.Context {
	if traceparent == "" && tracestate == "" {
		return NewIncomingContext(ctx, md)
	}
	if md == nil && tracestate == "" && len(traceparent) <= traceparentLen {
		// The common case, a call that carried a traceparent only.
		var t *traceCtx
		if room != nil {
			t = &room.c
		} else {
			t = &traceCtx{}
		}
		t.Context = ctx
		t.n = uint8(copy(t.buf[:], traceparent))
		return t
	}
	c := &incomingCtx{Context: ctx, md: md}
	if len(traceparent) <= len(c.buf) {
		n := copy(c.buf[:], traceparent)
		c.traceparent = unsafe.String(&c.buf[0], n) // buf does not change again
	} else {
		c.traceparent = strings.Clone(traceparent)
	}
	c.tracestate = strings.Clone(tracestate)
	ctx = c
	if ch := chainFrom(md); ch != nil {
		ctx = withChain(ctx, ch)
	}
	return ctx
}

// incomingCtx holds the incoming metadata of a call whose trace context
// was kept apart from its MD; it answers incomingKey with itself.
type incomingCtx struct {
	context.Context
	md                      MD
	traceparent, tracestate string
	full                    atomic.Pointer[MD] // md with the trace context, made on first use
	buf                     [traceparentLen]byte
}

// traceparentLen is the length of a version 00 traceparent.
const traceparentLen = 55

func (c *incomingCtx) Value(k any) any {
	if _, ok := k.(incomingKey); ok {
		return c
	}
	return c.Context.Value(k)
}

// traceCtx is incomingCtx for a call that carried nothing but a
// traceparent no longer than version 00's (no tracestate): the common
// case, in a smaller allocation. It answers incomingKey with itself.
type traceCtx struct {
	context.Context
	full atomic.Pointer[MD] // the traceparent as an MD, made on first use
	n    uint8              // the traceparent's length in buf
	buf  [traceparentLen]byte
}

func (c *traceCtx) Value(k any) any {
	if _, ok := k.(incomingKey); ok {
		return c
	}
	return c.Context.Value(k)
}

// traceparent returns the traceparent in buf (which does not change again).
func (c *traceCtx) traceparent() string {
	if c.n == 0 {
		return ""
	}
	return unsafe.String(&c.buf[0], c.n)
}

// incomingAll returns the MD FromIncoming lists for the incoming metadata
// md with the trace context kept apart from it, made once and kept in
// full.
func incomingAll(md MD, traceparent, tracestate string, full *atomic.Pointer[MD]) MD {
	if p := full.Load(); p != nil {
		return *p
	}
	all := make(MD, len(md)+2)
	for k, vs := range md {
		all[k] = vs
	}
	for _, kv := range [...][2]string{{KeyTraceparent, traceparent}, {KeyTracestate, tracestate}} {
		if kv[1] != "" {
			all[kv[0]] = append([]string{kv[1]}, md[kv[0]]...)
		}
	}
	if !full.CompareAndSwap(nil, &all) {
		return *full.Load()
	}
	return all
}

// incomingValue returns the first incoming value of key, lower case, for
// the incoming metadata md with the trace context kept apart from it.
func incomingValue(md MD, traceparent, tracestate, key string) (string, bool) {
	switch {
	case key == KeyTraceparent && traceparent != "":
		return traceparent, true
	case key == KeyTracestate && tracestate != "":
		return tracestate, true
	}
	if vs := md[key]; len(vs) > 0 {
		return vs[0], true
	}
	return "", false
}

// FromIncoming returns the metadata the current call arrived with. The MD
// is shared with the framework: copy it before changing it.
func FromIncoming(ctx context.Context) (MD, bool) {
	switch v := ctx.Value(incomingKey{}).(type) {
	case MD:
		return v, true
	case *traceCtx:
		return incomingAll(nil, v.traceparent(), "", &v.full), true
	case *incomingCtx:
		return incomingAll(v.md, v.traceparent, v.tracestate, &v.full), true
	}
	return nil, false
}

// IncomingTraceContext returns the W3C trace context the current call
// arrived with: what IncomingValue returns for KeyTraceparent and for
// KeyTracestate ("" for a key the call did not carry), in one look-up.
func IncomingTraceContext(ctx context.Context) (traceparent, tracestate string) {
	switch v := ctx.Value(incomingKey{}).(type) {
	case MD:
		return v.first(KeyTraceparent), v.first(KeyTracestate)
	case *traceCtx:
		return v.traceparent(), ""
	case *incomingCtx:
		traceparent, tracestate = v.traceparent, v.tracestate
		if traceparent == "" {
			traceparent = v.md.first(KeyTraceparent)
		}
		if tracestate == "" {
			tracestate = v.md.first(KeyTracestate)
		}
	}
	return traceparent, tracestate
}

// first returns the first value of the lower-case key, or "".
func (md MD) first(key string) string {
	if vs := md[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// IncomingValue returns the first value of key the current call arrived
// with, the one FromIncoming(ctx) would list first, without building an
// MD.
func IncomingValue(ctx context.Context, key string) (string, bool) {
	key = lower(key)
	switch v := ctx.Value(incomingKey{}).(type) {
	case MD:
		if vs := v[key]; len(vs) > 0 {
			return vs[0], true
		}
	case *traceCtx:
		return incomingValue(nil, v.traceparent(), "", key)
	case *incomingCtx:
		return incomingValue(v.md, v.traceparent, v.tracestate, key)
	}
	return "", false
}
