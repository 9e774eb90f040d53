package metadata

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/baggage"
)

// PersistentPrefix is the wire prefix of persistent keys: persistent key k
// travels as the metadata key PersistentPrefix+k on every protocol, and any
// key that arrives under it (in any case) is persistent. It is the prefix
// Kitex's metainfo uses over HTTP and gRPC.
const PersistentPrefix = "rpc-persist-"

// kitexPrefix is the prefix Kitex's metainfo uses for persistent keys in
// TTHeader string key/values ("RPC_PERSIST_" + KEY); accepted on arrival.
const kitexPrefix = "rpc_persist_"

// chain is the outgoing state that travels the whole call chain: the
// persistent pairs and the baggage. It is never changed once in a context;
// changes make a new one.
type chain struct {
	// pairs alternates wire keys (PersistentPrefix + lower-case key) and values.
	pairs []string
	bag   baggage.Baggage
	// header is bag encoded for the wire, "" when bag is empty; computed
	// once, when the baggage is set or arrives, not per call.
	header string
}

// chainOf returns the chain state in ctx, or nil.
func chainOf(ctx context.Context) *chain {
	o, _ := ctx.Value(outgoingKey{}).(outgoing)
	return o.chain
}

// withChain returns ctx with c as its chain state, keeping the transient
// outgoing metadata.
func withChain(ctx context.Context, c *chain) context.Context {
	o, _ := ctx.Value(outgoingKey{}).(outgoing)
	o.chain = c
	return context.WithValue(ctx, outgoingKey{}, o)
}

// copyChain returns a copy of c (nil gives an empty one) whose pairs may be
// appended to, with room for extra more strings.
func copyChain(c *chain, extra int) *chain {
	n := &chain{}
	if c != nil {
		*n = *c
		n.pairs = make([]string, len(c.pairs), len(c.pairs)+extra)
		copy(n.pairs, c.pairs)
	}
	return n
}

// AppendPersistent returns ctx with key/value pairs added to its persistent
// metadata: they travel on the next call, and every server down the chain
// passes them on. Keys are lower-cased; a key may have several values,
// as with AppendToOutgoing. Pairs with an empty key are ignored. An odd
// count panics.
func AppendPersistent(ctx context.Context, kv ...string) context.Context {
	if len(kv)%2 == 1 {
		panic("metadata: AppendPersistent got an odd number of arguments")
	}
	c := copyChain(chainOf(ctx), len(kv))
	for i := 0; i < len(kv); i += 2 {
		if kv[i] != "" {
			c.pairs = append(c.pairs, PersistentPrefix+lower(kv[i]), kv[i+1])
		}
	}
	return withChain(ctx, c)
}

// SetPersistent returns ctx with the values of persistent key replaced by
// vals; with no vals, key is removed, so that it goes no further down the
// chain.
func SetPersistent(ctx context.Context, key string, vals ...string) context.Context {
	key = lower(key)
	c := &chain{}
	if old := chainOf(ctx); old != nil {
		*c = *old
		c.pairs = make([]string, 0, len(old.pairs)+2*len(vals))
		for i := 0; i < len(old.pairs); i += 2 {
			if plain(old.pairs[i]) != key {
				c.pairs = append(c.pairs, old.pairs[i], old.pairs[i+1])
			}
		}
	}
	if key != "" {
		for _, v := range vals {
			c.pairs = append(c.pairs, PersistentPrefix+key, v)
		}
	}
	return withChain(ctx, c)
}

// Persistent returns the persistent metadata in ctx, keys without the wire
// prefix, as a new MD the caller may change; nil when there is none. On a
// server it holds what arrived with the call plus what the handler added.
func Persistent(ctx context.Context) MD {
	c := chainOf(ctx)
	if c == nil || len(c.pairs) == 0 {
		return nil
	}
	md := make(MD, len(c.pairs)/2)
	for i := 0; i < len(c.pairs); i += 2 {
		k := plain(c.pairs[i])
		md[k] = append(md[k], c.pairs[i+1])
	}
	return md
}

// PersistentValue returns the first value of persistent key in ctx.
func PersistentValue(ctx context.Context, key string) (string, bool) {
	c := chainOf(ctx)
	if c == nil {
		return "", false
	}
	key = lower(key)
	for i := 0; i < len(c.pairs); i += 2 {
		if plain(c.pairs[i]) == key {
			return c.pairs[i+1], true
		}
	}
	return "", false
}

// plain returns a wire key without PersistentPrefix.
func plain(wire string) string { return wire[len(PersistentPrefix):] }

// IsPersistent reports whether a metadata key as it arrived names a
// persistent key: it starts with PersistentPrefix, or with Kitex's TTHeader
// prefix "RPC_PERSIST_", in any case, and has a name after the prefix.
func IsPersistent(key string) bool {
	n := len(PersistentPrefix)
	if len(key) <= n {
		return false
	}
	p := key[:n]
	return p == PersistentPrefix || strings.EqualFold(p, PersistentPrefix) || strings.EqualFold(p, kitexPrefix)
}

// wireKey returns the Sluice wire form of a persistent key as it arrived
// (IsPersistent(key) must hold): lower case, and for Kitex's TTHeader form
// "RPC_PERSIST_A_B" the key "rpc-persist-a-b", as Kitex converts it for
// HTTP. A key already in wire form is returned as is, without allocating.
func wireKey(key string) string {
	n := len(PersistentPrefix)
	if p := key[:n]; p == PersistentPrefix || strings.EqualFold(p, PersistentPrefix) {
		return lower(key)
	}
	return PersistentPrefix + strings.ToLower(strings.ReplaceAll(key[n:], "_", "-"))
}

// isBaggage reports whether key is the baggage header, in any case.
func isBaggage(key string) bool {
	return len(key) == len(KeyBaggage) && (key == KeyBaggage || strings.EqualFold(key, KeyBaggage))
}

// hasChainKeys reports whether md has persistent keys or baggage.
func hasChainKeys(md MD) bool {
	for k := range md {
		if IsPersistent(k) || isBaggage(k) {
			return true
		}
	}
	return false
}

// transientOnly returns a copy of md without its persistent keys and baggage.
func transientOnly(md MD) MD {
	out := make(MD, len(md))
	for k, vs := range md {
		if !IsPersistent(k) && !isBaggage(k) {
			out[k] = vs
		}
	}
	return out
}

// chainFrom returns the chain state an incoming call's metadata carries
// on: its persistent pairs (in wire form) and its baggage; nil, without
// allocating, when md has neither.
func chainFrom(md MD) *chain {
	np, nb := 0, 0
	for k, vs := range md {
		switch {
		case IsPersistent(k):
			np += len(vs)
		case isBaggage(k):
			nb += len(vs)
		}
	}
	if np == 0 && nb == 0 {
		return nil
	}
	c := &chain{}
	if np > 0 {
		c.pairs = make([]string, 0, 2*np)
	}
	var bags []string
	for k, vs := range md {
		switch {
		case IsPersistent(k):
			w := wireKey(k)
			for _, v := range vs {
				c.pairs = append(c.pairs, w, v)
			}
		case isBaggage(k):
			bags = append(bags, vs...)
		}
	}
	if nb > 0 {
		c.bag, c.header = parseBaggage(bags)
	}
	if len(c.pairs) == 0 && c.header == "" {
		return nil
	}
	return c
}
