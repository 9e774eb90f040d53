package limit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/endpoint"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/status"
)

// RetryAfterKey is the response metadata key of a rejected call: how many
// milliseconds, in decimal, the caller should wait before trying again.
const RetryAfterKey = "retry-after-ms"

// ErrLimited matches, under errors.Is, every error this package returns
// for a call it turned away. Such errors have code ResourceExhausted. Only
// the code and message cross the wire: a client sees a ResourceExhausted
// status and the RetryAfterKey metadata, not ErrLimited.
var ErrLimited = errors.New("limit: call rejected")

// Rate is a token bucket: QPS calls a second on average, bursts of up to
// Burst.
type Rate struct {
	// QPS is the calls admitted per second. Required, > 0.
	QPS float64 `json:"qps" yaml:"qps"`
	// Burst is how many calls may pass at once after a quiet spell. Zero
	// means one second's worth: QPS rounded up, at least 1.
	Burst int `json:"burst,omitempty" yaml:"burst,omitempty"`
}

func (r Rate) burst() int {
	if r.Burst != 0 {
		return r.Burst
	}
	if !(r.QPS < 1<<31) { // also NaN: left for checkRate to refuse
		return 1
	}
	return max(1, int(math.Ceil(r.QPS)))
}

// Config is the admission policy of a server. The zero value admits
// everything; each field's zero value means its default.
type Config struct {
	// Methods limits each method on its own, keyed "Service/Method" with
	// the full service name: "pkg.OrderService/Get". Nil means no
	// per-method limits.
	Methods map[string]Rate `json:"methods,omitempty" yaml:"methods,omitempty"`
	// Callers limits each calling service on its own, across all methods,
	// keyed by the caller's service name (callinfo.Info.Caller). Calls
	// that name no caller are not limited here. Nil means no per-caller
	// limits.
	Callers map[string]Rate `json:"callers,omitempty" yaml:"callers,omitempty"`
	// MaxConcurrency bounds the calls in flight across the server. Zero
	// means no bound.
	MaxConcurrency int `json:"maxConcurrency,omitempty" yaml:"maxConcurrency,omitempty"`
	// Shed turns on adaptive load shedding (see Shedder). Nil means off;
	// an empty ShedConfig means on with the defaults.
	Shed *ShedConfig `json:"shed,omitempty" yaml:"shed,omitempty"`
	// RetryAfter is the wait suggested to callers turned away by the
	// concurrency bound or the shedder (token buckets compute their own).
	// Zero means 1s.
	RetryAfter config.Duration `json:"retryAfter,omitempty" yaml:"retryAfter,omitempty"`
	// Clock tells the time. Nil means the system clock.
	Clock Clock `json:"-" yaml:"-"`
}

// check validates cfg and names the first bad field.
func (cfg *Config) check() error {
	for _, k := range sortedKeys(cfg.Methods) {
		svc, m, ok := strings.Cut(k, "/")
		if !ok || svc == "" || m == "" || strings.Contains(m, "/") {
			return fmt.Errorf("limit: methods[%q]: key must be \"Service/Method\"", k)
		}
		r := cfg.Methods[k]
		if err := checkRate(r.QPS, r.burst()); err != nil {
			return fmt.Errorf("limit: methods[%q].%v", k, err)
		}
	}
	for _, k := range sortedKeys(cfg.Callers) {
		if k == "" {
			return fmt.Errorf("limit: callers[\"\"]: key must name a service")
		}
		r := cfg.Callers[k]
		if err := checkRate(r.QPS, r.burst()); err != nil {
			return fmt.Errorf("limit: callers[%q].%v", k, err)
		}
	}
	if cfg.MaxConcurrency < 0 {
		return fmt.Errorf("limit: maxConcurrency must be >= 0, not %d", cfg.MaxConcurrency)
	}
	if cfg.RetryAfter < 0 {
		return fmt.Errorf("limit: retryAfter must be >= 0, not %v", cfg.RetryAfter)
	}
	if cfg.Shed != nil {
		sc := *cfg.Shed
		sc.defaults()
		if err := sc.check("shed."); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string]Rate) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Limiter applies a Config to calls. Build one with New; it is safe for
// concurrent use.
type Limiter struct {
	methods    map[string]map[string]*TokenBucket // service → method → bucket
	callers    map[string]*TokenBucket
	conc       *Concurrency
	shed       *Shedder
	shedCfg    ShedConfig // defaulted, for Dynamic.Update
	retryAfter time.Duration
	clock      Clock
	epoch      time.Time // of every bucket and the shedder: one clock read serves all
	timed      bool      // some limit reads the clock
}

// New returns a Limiter for cfg, or an error naming the first bad field:
//
//	limit: methods["pkg.Svc/Get"].qps must be > 0, not 0
func New(cfg Config) (*Limiter, error) {
	return build(cfg, nil)
}

// build makes a Limiter for cfg, taking over from old (which may be nil)
// the state of every limit whose settings are unchanged.
func build(cfg Config, old *Limiter) (*Limiter, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	l := &Limiter{retryAfter: time.Duration(cfg.RetryAfter), clock: cfg.Clock}
	if old != nil && old.clock == cfg.Clock {
		l.epoch = old.epoch // state kept from old stays valid
	} else {
		l.epoch = epochOf(cfg.Clock)
		old = nil
	}
	l.timed = len(cfg.Methods)+len(cfg.Callers) > 0 || cfg.Shed != nil
	if l.retryAfter == 0 {
		l.retryAfter = time.Second
	}
	if len(cfg.Methods) > 0 {
		l.methods = make(map[string]map[string]*TokenBucket)
	}
	for k, r := range cfg.Methods {
		svc, m, _ := strings.Cut(k, "/")
		if l.methods[svc] == nil {
			l.methods[svc] = make(map[string]*TokenBucket)
		}
		var prev *TokenBucket
		if old != nil {
			prev = old.methods[svc][m]
		}
		l.methods[svc][m] = l.keep(prev, r)
	}
	if len(cfg.Callers) > 0 {
		l.callers = make(map[string]*TokenBucket, len(cfg.Callers))
	}
	for k, r := range cfg.Callers {
		var prev *TokenBucket
		if old != nil {
			prev = old.callers[k]
		}
		l.callers[k] = l.keep(prev, r)
	}
	if cfg.MaxConcurrency > 0 {
		if old != nil && old.conc != nil {
			// Same counter: calls in flight stay counted across an update.
			l.conc = old.conc
			l.conc.setMax(cfg.MaxConcurrency)
		} else {
			l.conc = NewConcurrency(cfg.MaxConcurrency)
		}
	}
	if cfg.Shed != nil {
		sc := *cfg.Shed
		sc.Clock = cfg.Clock // one clock for all, as they share an epoch
		sc.defaults()
		l.shedCfg = sc
		if old != nil && old.shed != nil && sameShed(old.shedCfg, sc) {
			l.shed = old.shed
			l.shed.setCPU(sc.CPU)
		} else {
			l.shed = newShedder(sc, l.epoch)
		}
	}
	return l, nil
}

func (l *Limiter) keep(prev *TokenBucket, r Rate) *TokenBucket {
	if prev != nil && prev.rate == r.QPS && prev.burst == r.burst() {
		return prev
	}
	return newTokenBucket(r.QPS, r.burst(), l.clock, l.epoch)
}

func sameShed(a, b ShedConfig) bool {
	return a.Window == b.Window && a.Buckets == b.Buckets && a.CPUThreshold == b.CPUThreshold &&
		a.CoolDown == b.CoolDown && a.Clock == b.Clock
}

// Admit decides on one call to service/method from caller (which may be
// empty). When it admits, it returns a func that must be called when the
// call ends. When it turns the call away, the error has code
// ResourceExhausted, names the limit, and matches ErrLimited; retryAfter is
// the wait to suggest.
//
// The order is: concurrency bound, caller's bucket, method's bucket,
// shedder. A token taken from an earlier bucket is not given back when a
// later limit turns the call away.
func (l *Limiter) Admit(service, method, caller string) (done Done, retryAfter time.Duration, err error) {
	return l.admit(service, method, caller, time.Time{})
}

// admit is Admit at start, the call's arrival as the server read it, when
// the Limiter runs on the system clock: it saves a clock read per call
// (a refusal still reads the clock afresh first). A zero start means now.
func (l *Limiter) admit(service, method, caller string, start time.Time) (done Done, retryAfter time.Duration, err error) {
	if l.conc != nil && !l.conc.Acquire() {
		return Done{}, l.retryAfter, rejectf("limit: %d calls in flight, the most allowed; %s/%s rejected", l.conc.Max(), service, method)
	}
	var now int64
	if l.timed {
		if l.clock == nil && !start.IsZero() {
			now = int64(start.Sub(l.epoch))
		} else {
			now = since(l.clock, l.epoch)
		}
	}
	if caller != "" {
		if b := l.callers[caller]; b != nil {
			if wait, ok := b.take(now); !ok {
				l.release()
				return Done{}, wait, rejectf("limit: caller %s over its %g qps (burst %d) on %s/%s", caller, b.rate, b.burst, service, method)
			}
		}
	}
	if b := l.methods[service][method]; b != nil {
		if wait, ok := b.take(now); !ok {
			l.release()
			return Done{}, wait, rejectf("limit: method %s/%s over its %g qps (burst %d)", service, method, b.rate, b.burst)
		}
	}
	var tok Token
	if l.shed != nil {
		var err error
		if tok, err = l.shed.allow(now); err != nil {
			l.release()
			return Done{}, l.retryAfter, rejectf("limit: load shed on %s/%s: %d calls in flight, over the estimated capacity of %d",
				service, method, l.shed.InFlight(), l.shed.Capacity())
		}
	}
	return Done{l: l, tok: tok}, 0, nil
}

// InFlight returns the calls admitted and not yet done, as the concurrency
// bound counts them; 0 when there is no bound.
func (l *Limiter) InFlight() int {
	if l.conc == nil {
		return 0
	}
	return l.conc.InFlight()
}

func (l *Limiter) release() {
	if l.conc != nil {
		l.conc.Release()
	}
}

// Done ends a call admitted by Limiter.Admit. It is a value, so admitting
// does not allocate.
type Done struct {
	l   *Limiter
	tok Token
}

// Done records that the call ended.
func (d Done) Done() {
	if d.l == nil {
		return
	}
	if d.l.shed != nil {
		d.l.shed.done(d.tok, since(d.l.clock, d.l.epoch))
	}
	d.l.release()
}

func rejectf(format string, a ...any) error {
	return status.Wrap(codes.ResourceExhausted, fmt.Sprintf(format, a...), ErrLimited)
}

// Middleware returns the server middleware that applies l to each call,
// keyed by the callinfo.Info in the context. A call turned away gets a
// ResourceExhausted error naming the limit, and the RetryAfterKey response
// metadata.
func Middleware(l *Limiter) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			return serve(l, ctx, req, resp, next)
		}
	}
}

func serve(l *Limiter, ctx context.Context, req, resp any, next endpoint.Endpoint) error {
	info := callinfo.FromContext(ctx)
	var service, method, caller string
	var start time.Time
	if info != nil {
		service, method, caller, start = info.Service, info.Method, info.Caller, info.Start
	}
	done, wait, err := l.admit(service, method, caller, start)
	if err != nil {
		if info != nil {
			if info.ResponseMetadata == nil {
				info.ResponseMetadata = metadata.MD{}
			}
			info.ResponseMetadata.Set(RetryAfterKey, strconv.FormatInt(ceilMillis(wait), 10))
		}
		return err
	}
	defer done.Done()
	return next(ctx, req, resp)
}

func ceilMillis(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// RetryAfter reads the wait a server suggested in md (the response
// metadata of a rejected call).
func RetryAfter(md metadata.MD) (time.Duration, bool) {
	v := md.Value(RetryAfterKey)
	if v == "" {
		return 0, false
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// Dynamic is a Limiter that can be replaced while calls go through it, for
// a policy that is reloaded at run time.
type Dynamic struct {
	cur atomic.Pointer[Limiter]
}

// NewDynamic returns a Dynamic applying cfg.
func NewDynamic(cfg Config) (*Dynamic, error) {
	l, err := New(cfg)
	if err != nil {
		return nil, err
	}
	d := &Dynamic{}
	d.cur.Store(l)
	return d, nil
}

// Update switches to cfg, or returns an error and keeps the current
// policy. State carries over where settings are unchanged: a bucket with
// the same key, QPS and burst keeps its tokens, the concurrency bound keeps
// counting the calls in flight, and a shedder with the same settings keeps
// its estimate (a changed one starts afresh). Calls in flight end on the
// Limiter that admitted them.
//
// Update calls must not run concurrently with each other.
func (d *Dynamic) Update(cfg Config) error {
	l, err := build(cfg, d.cur.Load())
	if err != nil {
		return err
	}
	d.cur.Store(l)
	return nil
}

// Limiter returns the Limiter in use.
func (d *Dynamic) Limiter() *Limiter { return d.cur.Load() }

// Middleware is like the package's Middleware, with the Limiter in use at
// the start of each call.
func (d *Dynamic) Middleware() endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req, resp any) error {
			return serve(d.cur.Load(), ctx, req, resp, next)
		}
	}
}

// Next returns a Limiter applying cfg that carries over l's state as
// Dynamic.Update does; l itself does not change. Calls to Next on one
// Limiter must not run concurrently with each other.
func (l *Limiter) Next(cfg Config) (*Limiter, error) { return build(cfg, l) }

// Serve runs next under l, as Middleware(l)(next) would, without building
// the middleware.
func (l *Limiter) Serve(ctx context.Context, req, resp any, next endpoint.Endpoint) error {
	return serve(l, ctx, req, resp, next)
}
