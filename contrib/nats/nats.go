// Package nats carries Sluice metadata across NATS messages, so that a
// publish is one more hop of a call chain: persistent metadata, W3C baggage
// and trace context set before a publish reach the subscriber, and go on
// from there on the Sluice calls its handler makes.
//
// Import it under another name, since nats.go's package is nats too:
//
//	import snats "github.com/sluicerpc/sluice/contrib/nats"
//
//	// In a handler (or any code holding a call's context):
//	err := snats.Publish(ctx, nc, "orders.created", data)
//
//	// Elsewhere:
//	sub, err := snats.Subscribe(nc, "orders.created", func(ctx context.Context, msg *nats.Msg) {
//		tenant, _ := metadata.PersistentValue(ctx, "x-tenant") // as the publisher's ctx had it
//		_, err := orders.Get(ctx, req) // carries it on
//	})
//
// # Headers
//
// A message carries what a Sluice call made with the same context would:
// the outgoing metadata (transient keys, persistent keys under
// metadata.PersistentPrefix, "baggage"), one header per value, keys lower
// case. When that metadata has no "traceparent" and the context holds an
// OpenTelemetry span, its W3C traceparent (and tracestate) are written too.
// Values of keys ending in "-bin" are base64-encoded (unpadded), as gRPC and
// Connect do. Keys must be 0-9 a-z _ - . and other values must have no
// control characters but tab; NATS trims spaces around values.
//
// On receipt every header becomes incoming metadata (lower-cased; "-bin"
// values decoded, dropped when they are not base64), except the "Nats-"
// headers JetStream and NATS keep for themselves. The persistent keys and the
// baggage become the context's outgoing ones, as on a Sluice server, and a
// valid traceparent becomes the context's remote OpenTelemetry span
// context, the parent of spans the handler starts.
package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/sluicerpc/sluice/metadata"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Publish publishes data on subject with ctx's metadata in its headers
// (see Inject).
func Publish(ctx context.Context, nc *nats.Conn, subject string, data []byte) error {
	return PublishMsg(ctx, nc, &nats.Msg{Subject: subject, Data: data})
}

// PublishMsg publishes msg with ctx's metadata added to its headers (see
// Inject). Headers already in msg stay.
func PublishMsg(ctx context.Context, nc *nats.Conn, msg *nats.Msg) error {
	if err := Inject(ctx, msg); err != nil {
		return err
	}
	return nc.PublishMsg(msg)
}

// Inject adds to msg's headers the metadata a Sluice call made with ctx
// would send, and ctx's trace context; use it before any nats.go call that
// sends msg (RequestMsg, a JetStream publish). It adds every pair it can
// and returns the first that cannot travel in a NATS header.
func Inject(ctx context.Context, msg *nats.Msg) error {
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	_, had := msg.Header["traceparent"]
	w := headerWriter{h: msg.Header, traceparent: had}
	metadata.RangeOutgoing(ctx, &w)
	if !w.traceparent {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			propagation.TraceContext{}.Inject(ctx, carrier(msg.Header))
		}
	}
	return w.err
}

// Extract returns parent carrying msg's headers as incoming metadata, with
// their persistent keys and baggage as outgoing ones and their trace
// context as the remote span context: the context a handler of msg works
// in.
func Extract(parent context.Context, msg *nats.Msg) context.Context {
	md := incoming(msg.Header)
	if md == nil {
		return parent
	}
	ctx := metadata.NewIncomingContext(parent, md)
	if _, ok := md["traceparent"]; ok {
		ctx = propagation.TraceContext{}.Extract(ctx, carrier(md))
	}
	return ctx
}

// Handler handles one message; ctx is Extract's context for it.
type Handler func(ctx context.Context, msg *nats.Msg)

// Subscribe subscribes to subject and hands every message to h with its
// context (see Extract).
func Subscribe(nc *nats.Conn, subject string, h Handler) (*nats.Subscription, error) {
	return nc.Subscribe(subject, handle(h))
}

// QueueSubscribe is Subscribe for a queue group: each message goes to one
// subscriber of the group.
func QueueSubscribe(nc *nats.Conn, subject, queue string, h Handler) (*nats.Subscription, error) {
	return nc.QueueSubscribe(subject, queue, handle(h))
}

func handle(h Handler) nats.MsgHandler {
	return func(msg *nats.Msg) { h(Extract(context.Background(), msg), msg) }
}

// reservedPrefix marks headers NATS and JetStream keep for themselves
// (Nats-Msg-Id, Nats-Expected-Stream, ...): never metadata.
const reservedPrefix = "nats-"

// ErrHeader reports metadata that cannot travel in a NATS header.
var ErrHeader = errors.New("nats: metadata cannot travel in a NATS header")

// headerWriter adds outgoing metadata to NATS headers, keeping the first
// failure.
type headerWriter struct {
	h           nats.Header
	err         error
	traceparent bool
}

func (w *headerWriter) AddString(k, v string) {
	if !metadata.ValidKey(k) {
		w.fail(fmt.Errorf("%w: key %q (want 0-9 a-z _ - .)", ErrHeader, k))
		return
	}
	if hasPrefixFold(k, reservedPrefix) {
		w.fail(fmt.Errorf("%w: key %q is reserved for NATS", ErrHeader, k))
		return
	}
	if strings.HasSuffix(k, "-bin") {
		v = base64.RawStdEncoding.EncodeToString([]byte(v))
	} else if !metadata.ValidTextValue(v) {
		w.fail(fmt.Errorf("%w: %s value %q has control characters; use a key ending in -bin for binary values", ErrHeader, k, v))
		return
	}
	if k == "traceparent" {
		w.traceparent = true
	}
	w.h[k] = append(w.h[k], v)
}

func (w *headerWriter) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// incoming returns the metadata in NATS headers; nil when there is none.
func incoming(h nats.Header) metadata.MD {
	var md metadata.MD
	for k, vs := range h {
		if hasPrefixFold(k, reservedPrefix) {
			continue
		}
		lk := strings.ToLower(k)
		if strings.HasSuffix(lk, "-bin") {
			dec := make([]string, 0, len(vs))
			for _, v := range vs {
				if b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(v, "=")); err == nil {
					dec = append(dec, string(b))
				}
			}
			vs = dec
		}
		if len(vs) == 0 {
			continue
		}
		if md == nil {
			md = make(metadata.MD, len(h))
		}
		md[lk] = append(md[lk], vs...)
	}
	return md
}

// carrier adapts NATS headers (or metadata) to OpenTelemetry's
// propagators, whose keys are lower case.
type carrier map[string][]string

func (c carrier) Get(key string) string {
	if vs := c[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func (c carrier) Set(key, value string) { c[key] = []string{value} }

func (c carrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
