// Package metadata carries request and response metadata: string keys
// (lower-cased) with one or more string values. The same API serves every
// protocol; on the native protocol metadata travels as TTHeader string
// key/values, on gRPC and Connect as headers.
//
// A client attaches metadata to the outgoing context:
//
//	ctx = metadata.AppendToOutgoing(ctx, "x-tenant", "acme")
//
// and the server reads it from the incoming context:
//
//	md, _ := metadata.FromIncoming(ctx)
//	tenant := md.Get("x-tenant")
package metadata

import (
	"context"
	"strings"
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

type (
	outgoingKey struct{}
	incomingKey struct{}
)

// outgoing holds the outgoing MD plus pairs appended later, so that
// AppendToOutgoing never copies or mutates a caller's MD.
type outgoing struct {
	md    MD
	added [][]string
}

// NewOutgoingContext returns ctx carrying md for the next call. It replaces
// any outgoing metadata already in ctx.
func NewOutgoingContext(ctx context.Context, md MD) context.Context {
	return context.WithValue(ctx, outgoingKey{}, outgoing{md: md})
}

// AppendToOutgoing returns ctx with key/value pairs added to its outgoing
// metadata. An odd count panics.
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

// FromOutgoing returns the outgoing metadata in ctx as a new MD the caller may change.
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
	return md, true
}

// Adder receives key/value pairs; transports implement it to write headers.
type Adder interface {
	AddString(k, v string)
}

// RangeOutgoing hands every outgoing key/value pair in ctx to a without
// building an MD, so transports write headers without allocating.
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
}

// OutgoingValue returns the first outgoing value of key in ctx, the one
// FromOutgoing(ctx) would list first, without building an MD.
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
	return "", false
}

// NewIncomingContext returns ctx carrying md as the metadata the current
// call arrived with. Servers call it; handlers read it with FromIncoming.
func NewIncomingContext(ctx context.Context, md MD) context.Context {
	return context.WithValue(ctx, incomingKey{}, md)
}

// FromIncoming returns the metadata the current call arrived with. The MD
// is shared with the framework: copy it before changing it.
func FromIncoming(ctx context.Context) (MD, bool) {
	md, ok := ctx.Value(incomingKey{}).(MD)
	return md, ok
}
