// Package fallback answers client calls that failed: on an open breaker,
// an admission rejection or a backend error, it serves the last good
// response to the same request from a bounded cache, or calls a function
// that fills the response.
//
//	f, err := fallback.New(fallback.Config{
//		Cache: true, // the last good response to the same request, up to a minute old
//		Func: func(ctx context.Context, req, resp any, err error) error {
//			resp.(*pb.Quote).Price = defaultPrice // or return err to fail
//			return nil
//		},
//	})
//	c, err := client.New(target, client.WithMiddleware(f.Middleware()))
//
// A call answered by the fallback succeeds, and its response metadata
// says so: the key "sluice-fallback" (MetadataKey) is "cache" or "func".
package fallback

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/sluicerpc/sluice/breaker"
	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/limit"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/status"
)

// MetadataKey is the response metadata key set on a call the fallback
// answered: "cache" when a cached response was served, "func" when
// Config.Func filled the response.
const MetadataKey = "sluice-fallback"

// Config is a fallback policy. The zero value of each field means its
// default; Func or Cache must be set.
type Config struct {
	// Func, when set, is called for a failed call that When accepts and the
	// cache could not answer, with the call's error and resp emptied (when
	// it is a proto.Message) of whatever the failed call left in it. It may
	// fill resp and return nil (the call succeeds with resp), or return an
	// error (the call fails with it). Default none.
	Func func(ctx context.Context, req, resp any, err error) error
	// Cache keeps the last good response to each request key and serves it
	// when a call with the same key fails. Only successes are stored, as
	// clones. It costs every successful call its key (by default a
	// deterministic marshalling of the request) and a clone of its
	// response. Responses must be proto.Messages. Default false.
	Cache bool
	// TTL is how long after it was stored a response may be served.
	// Default 1 minute.
	TTL time.Duration
	// Size bounds the cached responses; the least recently used goes
	// first. Default 1024.
	Size int
	// Key returns the cache key of a request, or false to neither store
	// nor serve it. Default DefaultKey: the full method and the request's
	// deterministic protobuf encoding.
	Key func(info *callinfo.Info, req any) (string, bool)
	// When says which failures fall back. Default DefaultWhen.
	When func(err error) bool
	// Clock tells the time for TTL. Default: the system clock.
	Clock Clock
	// OnFallback, when set, is called each time a fallback answers a call,
	// with how ("cache" or "func"). Metrics hook it here. Default none.
	OnFallback func(info *callinfo.Info, how string)
}

// Clock tells the time.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Defaults of Config.
const (
	DefaultTTL  = time.Minute
	DefaultSize = 1024
)

// DefaultWhen is the default Config.When: an open breaker
// (breaker.ErrOpen), an admission rejection (limit.ErrLimited), and the
// codes that say the backend could not answer: Unavailable,
// DeadlineExceeded, ResourceExhausted, Internal and Unknown. Errors that
// are the caller's (InvalidArgument, NotFound, Canceled, ...) do not fall
// back.
func DefaultWhen(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, breaker.ErrOpen) || errors.Is(err, limit.ErrLimited) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted,
		codes.Internal, codes.Unknown:
		return true
	}
	return false
}

// bufs holds the buffers DefaultKey marshals into.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// DefaultKey is the default Config.Key: info.FullMethod, a zero byte, and
// req's deterministic protobuf encoding. It refuses (false) a call
// without info or a request that is not a proto.Message.
func DefaultKey(info *callinfo.Info, req any) (string, bool) {
	m, ok := req.(proto.Message)
	if info == nil || !ok {
		return "", false
	}
	bp := bufs.Get().(*[]byte)
	b := append(append((*bp)[:0], info.FullMethod...), 0)
	b, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, m)
	var key string
	if err == nil {
		key = string(b)
	}
	if cap(b) <= 64<<10 {
		*bp = b
		bufs.Put(bp)
	}
	return key, err == nil
}

// Fallback is a validated Config and its cache. Safe for concurrent use.
type Fallback struct {
	cfg   Config
	cache *cache // nil unless Cache
}

// New validates cfg and fills in its defaults. Errors name the field.
func New(cfg Config) (*Fallback, error) {
	switch {
	case cfg.Func == nil && !cfg.Cache:
		return nil, errors.New("fallback: neither func nor cache is set: nothing would answer")
	case cfg.TTL < 0:
		return nil, fmt.Errorf("fallback: ttl %v must not be negative", cfg.TTL)
	case cfg.Size < 0:
		return nil, fmt.Errorf("fallback: size %d must not be negative", cfg.Size)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Size == 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Key == nil {
		cfg.Key = DefaultKey
	}
	if cfg.When == nil {
		cfg.When = DefaultWhen
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	f := &Fallback{cfg: cfg}
	if cfg.Cache {
		f.cache = newCache(cfg.Size)
	}
	return f, nil
}

// Middleware returns the client middleware. Place it outermost, outside
// retries, hedging and breakers, so that it answers only what they could
// not. With the cache off, a successful call costs nothing; with it on,
// see Config.Cache.
func (f *Fallback) Middleware() endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			err := next(ctx, req, resp)
			if err == nil {
				if f.cache != nil {
					f.store(ctx, req, resp)
				}
				return nil
			}
			if !f.cfg.When(err) {
				return err
			}
			return f.fallBack(ctx, req, resp, err)
		}
	}
}

func (f *Fallback) store(ctx context.Context, req, resp any) {
	m, ok := resp.(proto.Message)
	if !ok {
		return
	}
	key, ok := f.cfg.Key(callinfo.FromContext(ctx), req)
	if !ok {
		return
	}
	f.cache.put(key, proto.Clone(m), f.cfg.Clock.Now().Add(f.cfg.TTL))
}

// fallBack answers the failed call from the cache, then from Func.
func (f *Fallback) fallBack(ctx context.Context, req, resp any, err error) error {
	info := callinfo.FromContext(ctx)
	if f.cache != nil {
		if m, ok := resp.(proto.Message); ok {
			if key, ok := f.cfg.Key(info, req); ok {
				if cached := f.cache.get(key, f.cfg.Clock.Now()); cached != nil {
					proto.Reset(m)
					proto.Merge(m, cached)
					f.mark(info, "cache")
					return nil
				}
			}
		}
	}
	if f.cfg.Func == nil {
		return err
	}
	if m, ok := resp.(proto.Message); ok {
		proto.Reset(m)
	}
	if ferr := f.cfg.Func(ctx, req, resp, err); ferr != nil {
		return ferr
	}
	f.mark(info, "func")
	return nil
}

func (f *Fallback) mark(info *callinfo.Info, how string) {
	if info == nil {
		return
	}
	if f.cfg.OnFallback != nil {
		f.cfg.OnFallback(info, how)
	}
	if info.ResponseMetadata == nil {
		info.ResponseMetadata = metadata.MD{}
	}
	info.ResponseMetadata.Set(MetadataKey, how)
}

// cache is an LRU of responses with expiry times. Entries are never
// modified once stored, so a served entry is read without the lock.
type cache struct {
	mu      sync.Mutex
	size    int
	entries map[string]*entry
	head    entry // sentinel: head.next is the most recently used
}

type entry struct {
	key        string
	msg        proto.Message
	expires    time.Time
	prev, next *entry
}

func newCache(size int) *cache {
	c := &cache{size: size, entries: make(map[string]*entry)}
	c.head.prev, c.head.next = &c.head, &c.head
	return c
}

func (c *cache) unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (c *cache) pushFront(e *entry) {
	e.prev, e.next = &c.head, c.head.next
	c.head.next.prev = e
	c.head.next = e
}

func (c *cache) put(key string, msg proto.Message, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil {
		c.unlink(e)
		delete(c.entries, key)
	}
	e := &entry{key: key, msg: msg, expires: expires}
	c.entries[key] = e
	c.pushFront(e)
	for len(c.entries) > c.size {
		old := c.head.prev
		c.unlink(old)
		delete(c.entries, old.key)
	}
}

// get returns the message stored for key if it has not expired at now.
func (c *cache) get(key string, now time.Time) proto.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e == nil {
		return nil
	}
	if !now.Before(e.expires) {
		c.unlink(e)
		delete(c.entries, key)
		return nil
	}
	c.unlink(e)
	c.pushFront(e)
	return e.msg
}
