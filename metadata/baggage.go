package metadata

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/baggage"
)

// KeyBaggage is the metadata key (and HTTP header) of W3C baggage:
// comma-separated members key=value, values percent-encoded, properties
// after ';' (https://www.w3.org/TR/baggage/).
const KeyBaggage = "baggage"

// Baggage returns the W3C baggage in ctx: on a server, what arrived with the
// call, with whatever the handler set since. Baggage travels the whole
// chain, as persistent metadata does. The value is go.opentelemetry.io's
// baggage.Baggage, which never changes in place.
func Baggage(ctx context.Context) baggage.Baggage {
	if c := chainOf(ctx); c != nil {
		return c.bag
	}
	return baggage.Baggage{}
}

// BaggageValue returns the value of the baggage member key in ctx, decoded
// (the wire's percent-encoding undone).
func BaggageValue(ctx context.Context, key string) (string, bool) {
	c := chainOf(ctx)
	if c == nil || c.bag.Len() == 0 {
		return "", false
	}
	m := c.bag.Member(key)
	return m.Value(), m.Key() != ""
}

// SetBaggage returns ctx with the baggage member key set to value (any
// valid UTF-8: it is percent-encoded on the wire), replacing a member of
// that key. It fails, returning ctx unchanged, when key is not a W3C baggage
// key (an RFC 7230 token) or value is not UTF-8.
func SetBaggage(ctx context.Context, key, value string) (context.Context, error) {
	if !token(key) {
		return ctx, fmt.Errorf("metadata: baggage key %q is not a token (RFC 7230: letters, digits and !#$%%&'*+-.^_`|~)", key)
	}
	m, err := baggage.NewMemberRaw(key, value)
	if err == nil {
		var b baggage.Baggage
		if b, err = Baggage(ctx).SetMember(m); err == nil {
			return WithBaggage(ctx, b), nil
		}
	}
	return ctx, fmt.Errorf("metadata: baggage member %q: %w", key, err)
}

// WithBaggage returns ctx carrying b as its baggage, replacing the baggage
// it had; an empty b removes it, so that it goes no further down the chain.
// b is encoded for the wire once, here. Members whose key is not an RFC 7230
// token (OpenTelemetry allows any UTF-8) cannot be encoded and stay in this
// process.
func WithBaggage(ctx context.Context, b baggage.Baggage) context.Context {
	c := &chain{}
	if old := chainOf(ctx); old != nil {
		*c = *old // pairs are never changed in place: share them
	}
	c.bag, c.header = b, ""
	if b.Len() > 0 {
		c.header = b.String()
	}
	return withChain(ctx, c)
}

// parseBaggage decodes the baggage header values that arrived with a call
// (several headers make one list) and returns the baggage and its wire
// form. Members that are not valid W3C baggage are dropped, as are members
// past the W3C limits (64 members, 8192 bytes), and the rest kept; a single
// header that is valid throughout is passed on exactly as it came.
func parseBaggage(vals []string) (baggage.Baggage, string) {
	raw := vals[0]
	if len(vals) > 1 {
		raw = strings.Join(vals, ",")
	}
	b, err := baggage.Parse(raw)
	if b.Len() == 0 {
		return baggage.Baggage{}, ""
	}
	if err == nil && len(vals) == 1 {
		return b, raw
	}
	return b, b.String()
}

// token reports whether s is an RFC 7230 token, the W3C baggage key syntax.
func token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
