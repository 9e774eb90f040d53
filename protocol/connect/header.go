package connect

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicerpc/sluice/internal/transport"
	"github.com/sluicerpc/sluice/metadata"
)

// Metadata travels as HTTP headers. Keys are lower-cased; keys ending in
// "-bin" carry binary values, base64-encoded on the wire (sent unpadded,
// read padded or not, as the protocol says). Headers that belong to HTTP or
// to the protocol (see reserved) are not metadata: they are skipped when
// read, and metadata under those keys is not sent.

// reserved lists the headers that are never metadata, besides the prefixes
// in reservedPrefix.
var reserved = map[string]bool{
	"accept":            true,
	"accept-encoding":   true,
	"accept-post":       true,
	"allow":             true,
	"connection":        true,
	"content-encoding":  true,
	"content-length":    true,
	"content-type":      true,
	"date":              true,
	"host":              true,
	"keep-alive":        true,
	"proxy-connection":  true,
	"server":            true,
	"te":                true,
	"trailer":           true,
	"transfer-encoding": true,
	"upgrade":           true,
	"user-agent":        true,
	"vary":              true,
	"sluice-attempt":    true, // read into callinfo.Info.Attempt instead
	"sluice-caller":     true, // read into callinfo.Info.Caller instead
}

// reservedPrefix lists the header prefixes the protocols keep for themselves.
var reservedPrefix = []string{"connect-", "grpc-"}

// reservedCanon is reserved under canonical keys (how net/http stores
// headers it read), so most headers are classified without lower-casing.
var reservedCanon = func() map[string]bool {
	m := make(map[string]bool, len(reserved))
	for k := range reserved {
		m[http.CanonicalHeaderKey(k)] = true
	}
	return m
}()

// Reserved reports whether a header (any case) is never metadata.
func Reserved(key string) bool {
	return reservedFold(key) || reservedLower(strings.ToLower(key))
}

// reservedFold is the check that needs no allocation: canonical or lower
// case, and the prefixes in any case.
func reservedFold(key string) bool {
	if reservedCanon[key] || reserved[key] {
		return true
	}
	for _, p := range reservedPrefix {
		if len(key) >= len(p) && strings.EqualFold(key[:len(p)], p) {
			return true
		}
	}
	return false
}

func reservedLower(k string) bool {
	if reserved[k] {
		return true
	}
	for _, p := range reservedPrefix {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// Metadata returns the metadata in a request's headers: every header but
// the reserved ones, keys lower-cased, "-bin" values decoded. It fails on a
// "-bin" value that is not base64; nil when there is none.
func Metadata(h http.Header) (metadata.MD, error) {
	var md metadata.MD
	for k, vs := range h {
		if reservedFold(k) {
			continue
		}
		lk := strings.ToLower(k)
		if reservedLower(lk) {
			continue
		}
		if md == nil {
			md = make(metadata.MD, len(h))
		}
		if err := addValues(md, lk, vs); err != nil {
			return nil, err
		}
	}
	return md, nil
}

// ResponseMetadata returns the metadata in a unary reply's headers:
// leading metadata, and trailing metadata ("Trailer-" prefixed) with the
// prefix removed, in one MD.
func ResponseMetadata(h http.Header) (metadata.MD, error) {
	var md metadata.MD
	for k, vs := range h {
		k = strings.ToLower(k)
		if len(k) > len(TrailerPrefix) && strings.HasPrefix(k, "trailer-") {
			k = k[len(TrailerPrefix):]
		}
		if reservedLower(k) {
			continue
		}
		if md == nil {
			md = make(metadata.MD, len(h))
		}
		if err := addValues(md, k, vs); err != nil {
			return nil, err
		}
	}
	return md, nil
}

func addValues(md metadata.MD, k string, vs []string) error {
	if !strings.HasSuffix(k, "-bin") {
		md[k] = append(md[k], vs...)
		return nil
	}
	for _, v := range vs {
		// A proxy may have joined repeated headers with commas; base64
		// has none.
		for part := range strings.SplitSeq(v, ",") {
			b, err := decodeBinary(strings.TrimSpace(part))
			if err != nil {
				return fmt.Errorf("connect: header %s: value is not base64: %v", k, err)
			}
			md[k] = append(md[k], string(b))
		}
	}
	return nil
}

func decodeBinary(v string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(v, "="))
}

// AddHeader adds one metadata pair to h: a "-bin" value base64-encoded
// (unpadded), others as they are. Reserved keys are skipped without error,
// as gRPC does. It fails, adding nothing, when the key is not a Connect
// header name (0-9 a-z _ - .) or the value cannot travel in an HTTP header
// (control characters other than tab).
func AddHeader(h http.Header, key, value string) error {
	k := strings.ToLower(key)
	if !metadata.ValidKey(k) {
		return fmt.Errorf("connect: metadata key %q is not a valid header name (want 0-9 a-z _ - .)", key)
	}
	if reservedLower(k) {
		return nil
	}
	if strings.HasSuffix(k, "-bin") {
		value = base64.RawStdEncoding.EncodeToString([]byte(value))
	} else if !metadata.ValidTextValue(value) {
		return fmt.Errorf("connect: metadata %s: value %q has control characters; use a key ending in -bin for binary values", key, value)
	}
	ck := http.CanonicalHeaderKey(k)
	h[ck] = append(h[ck], value)
	return nil
}

// SetHeaders adds md to h with AddHeader. It adds every pair it can and
// returns the first failure.
func SetHeaders(h http.Header, md metadata.MD) error {
	var first error
	for k, vs := range md {
		for _, v := range vs {
			if err := AddHeader(h, k, v); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// headerAdder writes outgoing metadata (metadata.RangeOutgoing) into a
// request's headers, keeping the first failure. With noTrace it leaves
// out the W3C trace context keys, which the call's info replaces.
type headerAdder struct {
	h       http.Header
	err     error
	noTrace bool
}

func (a *headerAdder) AddString(k, v string) {
	if a.noTrace && transport.IsTraceKey(k) {
		return
	}
	if err := AddHeader(a.h, k, v); err != nil && a.err == nil {
		a.err = err
	}
}
