// Package outlier ejects failing instances: it wraps a balancer.Builder so
// that an instance whose calls fail several times in a row is left out of
// picks for a while (passive outlier detection, as Envoy does it).
//
//	b, err := outlier.New(p2c.New(), outlier.Config{})
//	...
//	client.WithBalancer(b)
//
// With the defaults, 5 failures in a row eject an instance for 30 s; each
// further ejection of the same instance lasts 30 s longer, up to 300 s, and
// the count falls by one for every 30 s the instance then stays in. A call
// failed if it ended with Unavailable, DeadlineExceeded, Internal or Unknown
// (see IsFailure; Config.IsFailure changes it); a call that ended with
// Canceled counts neither way, since the caller gave up; any other end,
// success or not, proves the instance answers and resets its count.
//
// At most half of the instances a picker was built over are out at once
// (rounding down: 1 of 2 or 3, none of 1), so an outage that fails every
// instance cannot empty the set. State is kept per address by the Builder,
// so an ejection outlasts new snapshots, and each subset routing builds a
// picker over applies its own limit.
//
// The wrapped picker picks through a picker of the inner Builder over the
// instances not ejected. The inner Builder builds that picker again, from
// Pick, each time the set of ejected instances changes; while it does not,
// Pick adds a map lookup to the inner Pick and allocates nothing.
package outlier

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/balancer/internal/weakmap"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// Clock tells the time. Tests pass a fake one (balancertest.Clock).
type Clock interface {
	Now() time.Time
}

// Config configures ejection. Its zero value means the defaults.
type Config struct {
	// ConsecutiveFailures is how many failures in a row eject an
	// instance. Zero means 5.
	ConsecutiveFailures int
	// BaseEjection is how long a first ejection lasts; the n-th lasts n
	// times as long. Zero means 30 s.
	BaseEjection time.Duration
	// MaxEjection caps how long one ejection lasts. Zero means 300 s.
	MaxEjection time.Duration
	// MaxEjectedPercent caps the share of a picker's instances out at
	// once, rounding down. Zero means 50.
	MaxEjectedPercent int
	// IsFailure tells whether a call's error counts as a failure of the
	// instance; errors it rejects reset the count. It never sees calls
	// that ended well or with Canceled. Nil means the package's IsFailure.
	IsFailure func(error) bool
	// Clock tells the time. Nil means the system clock.
	Clock Clock
	// OnEject, when set, is called with an instance's address and how long
	// it is out each time it is ejected (metrics hook it here). It runs
	// under the Builder's lock: it must return quickly and must not pick.
	// Nil means none.
	OnEject func(addr string, d time.Duration)
}

// Defaults for the zero fields of Config.
const (
	DefaultConsecutiveFailures = 5
	DefaultBaseEjection        = 30 * time.Second
	DefaultMaxEjection         = 300 * time.Second
	DefaultMaxEjectedPercent   = 50
)

// IsFailure is the default failure test: the call ended with Unavailable,
// DeadlineExceeded, Internal or Unknown, the codes of an instance (or the
// way to it) that is down, stuck or broken rather than one that answered
// no.
func IsFailure(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.Unknown:
		return true
	}
	return false
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Builder wraps an inner Builder with outlier ejection. A Builder must not
// be copied.
type Builder struct {
	inner balancer.Builder
	cfg   Config
	start time.Time // of the clock; times are kept as durations since

	hosts weakmap.Map[host]
	mu    sync.Mutex // guards the ejection fields of every host
	// gen changes with every ejection, so pickers notice without a lock.
	gen atomic.Uint64
}

// New returns a Builder ejecting from the pickers inner builds, or an
// error naming the Config field at fault.
func New(inner balancer.Builder, cfg Config) (*Builder, error) {
	if inner == nil {
		return nil, status.Err(codes.InvalidArgument, "outlier: nil inner Builder")
	}
	switch {
	case cfg.ConsecutiveFailures < 0:
		return nil, status.Errorf(codes.InvalidArgument, "outlier: Config.ConsecutiveFailures is %d, want 0 (default %d) or more", cfg.ConsecutiveFailures, DefaultConsecutiveFailures)
	case cfg.BaseEjection < 0:
		return nil, status.Errorf(codes.InvalidArgument, "outlier: Config.BaseEjection is %v, want 0 (default %v) or more", cfg.BaseEjection, DefaultBaseEjection)
	case cfg.MaxEjection < 0:
		return nil, status.Errorf(codes.InvalidArgument, "outlier: Config.MaxEjection is %v, want 0 (default %v) or more", cfg.MaxEjection, DefaultMaxEjection)
	case cfg.MaxEjectedPercent < 0 || cfg.MaxEjectedPercent > 100:
		return nil, status.Errorf(codes.InvalidArgument, "outlier: Config.MaxEjectedPercent is %d, want 0 (default %d) to 100", cfg.MaxEjectedPercent, DefaultMaxEjectedPercent)
	}
	if cfg.ConsecutiveFailures == 0 {
		cfg.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	if cfg.BaseEjection == 0 {
		cfg.BaseEjection = DefaultBaseEjection
	}
	if cfg.MaxEjection == 0 {
		cfg.MaxEjection = DefaultMaxEjection
	}
	if cfg.MaxEjectedPercent == 0 {
		cfg.MaxEjectedPercent = DefaultMaxEjectedPercent
	}
	if cfg.IsFailure == nil {
		cfg.IsFailure = IsFailure
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.MaxEjection < cfg.BaseEjection {
		return nil, status.Errorf(codes.InvalidArgument, "outlier: Config.MaxEjection (%v) is below Config.BaseEjection (%v)", cfg.MaxEjection, cfg.BaseEjection)
	}
	return &Builder{inner: inner, cfg: cfg, start: cfg.Clock.Now()}, nil
}

func (b *Builder) now() time.Duration {
	if _, ok := b.cfg.Clock.(systemClock); ok {
		return time.Since(b.start) // one monotonic read instead of two
	}
	return b.cfg.Clock.Now().Sub(b.start)
}

// host is one address's failure and ejection record.
type host struct {
	failures atomic.Int64 // in a row
	// Guarded by Builder.mu.
	ejections int           // in a row, decayed while in
	since     time.Duration // the last ejection was [since, until)
	until     time.Duration
}

func (h *host) out(now time.Duration) bool { return h.ejections > 0 && now < h.until }

// Build implements balancer.Builder.
func (b *Builder) Build(instances []discovery.Instance) balancer.Picker {
	b.hosts.Sweep()
	p := &picker{b: b, instances: instances, members: make([]*member, len(instances))}
	index := make(map[*discovery.Instance]*member, len(instances))
	for i := range instances {
		m := &member{p: p, h: b.hosts.Get(instances[i].Addr, newHost), addr: instances[i].Addr}
		m.done = m.record
		p.members[i] = m
		index[&instances[i]] = m
	}
	p.all = &view{inner: b.inner.Build(instances), index: index}
	p.view.Store(p.all)
	p.refresh() // some instances may be out already
	return p
}

func newHost() *host { return new(host) }

type picker struct {
	b         *Builder
	instances []discovery.Instance
	members   []*member  // by instance index
	all       *view      // no instance out
	mu        sync.Mutex // serializes refresh
	view      atomic.Pointer[view]
}

// view is a picker's inner picker over the instances not ejected.
type view struct {
	gen   uint64
	until time.Duration // when the first ejection among members ends; 0 if none
	out   []bool        // by member; nil when none is out
	inner balancer.Picker
	index map[*discovery.Instance]*member // instances of inner
}

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	v := p.view.Load()
	if v.gen != p.b.gen.Load() || v.until != 0 && p.b.now() >= v.until {
		v = p.refresh()
	}
	res, err := v.inner.Pick(info)
	if err != nil || res.Instance == nil {
		return res, err
	}
	m := v.index[res.Instance]
	if m == nil {
		if m = p.byAddr(res.Instance.Addr); m == nil {
			return res, nil
		}
	}
	if res.Done == nil {
		res.Done = m.done
		return res, nil
	}
	c := newCall()
	c.m, c.inner = m, res.Done
	res.Done = c.fn
	return res, nil
}

// byAddr finds the member of an instance an inner picker returned a copy
// of, rather than a pointer into the slice it was built over.
func (p *picker) byAddr(addr string) *member {
	for i := range p.instances {
		if p.instances[i].Addr == addr {
			return p.members[i]
		}
	}
	return nil
}

// refresh brings the view up to date with ejections and the time.
func (p *picker) refresh() *view {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.b
	gen := b.gen.Load()
	now := b.now()
	v := p.view.Load()
	if v.gen == gen && (v.until == 0 || now < v.until) {
		return v // another Pick refreshed it
	}

	type ejected struct {
		i     int
		since time.Duration
	}
	var outs []ejected
	var until time.Duration
	b.mu.Lock()
	for i, m := range p.members {
		if m.h.out(now) {
			outs = append(outs, ejected{i, m.h.since})
			if until == 0 || m.h.until < until {
				until = m.h.until
			}
		}
	}
	b.mu.Unlock()
	// Ejections made through other pickers may pass this picker's limit;
	// the earliest ones hold.
	if limit := b.limit(len(p.members)); len(outs) > limit {
		slices.SortFunc(outs, func(x, y ejected) int { return cmp.Or(cmp.Compare(x.since, y.since), cmp.Compare(x.i, y.i)) })
		outs = outs[:limit]
	}
	var out []bool
	if len(outs) > 0 {
		out = make([]bool, len(p.members))
		for _, e := range outs {
			out[e.i] = true
		}
	}

	nv := &view{gen: gen, until: until, out: out}
	switch {
	case slices.Equal(out, v.out):
		nv.inner, nv.index = v.inner, v.index
	case out == nil:
		nv.inner, nv.index = p.all.inner, p.all.index
	default:
		kept := make([]discovery.Instance, 0, len(p.instances)-len(outs))
		members := make([]*member, 0, cap(kept))
		for i := range p.instances {
			if !out[i] {
				kept = append(kept, p.instances[i])
				members = append(members, p.members[i])
			}
		}
		nv.inner = b.inner.Build(kept)
		nv.index = make(map[*discovery.Instance]*member, len(kept))
		for i := range kept {
			nv.index[&kept[i]] = members[i]
		}
	}
	p.view.Store(nv)
	return nv
}

// limit is how many of n instances may be out at once.
func (b *Builder) limit(n int) int { return n * b.cfg.MaxEjectedPercent / 100 }

// member is one instance of one picker.
type member struct {
	p    *picker
	h    *host
	addr string
	// done is m.record, made once so that Pick hands it out without
	// allocating.
	done func(balancer.DoneInfo)
}

// record counts how a call to the member's instance ended.
func (m *member) record(di balancer.DoneInfo) {
	h := m.h
	switch {
	case di.Err == nil:
	case status.Code(di.Err) == codes.Canceled:
		return
	case m.p.b.cfg.IsFailure(di.Err):
		if h.failures.Add(1) >= int64(m.p.b.cfg.ConsecutiveFailures) {
			m.p.b.eject(m)
		}
		return
	}
	if h.failures.Load() != 0 {
		h.failures.Store(0)
	}
}

// eject ejects m's instance, if it is not out yet and the limit of m's
// picker allows.
func (b *Builder) eject(m *member) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	h := m.h
	if h.out(now) {
		h.failures.Store(0) // calls picked before it went out
		return
	}
	if h.failures.Load() < int64(b.cfg.ConsecutiveFailures) {
		return // a success came in between
	}
	n := 1
	for _, o := range m.p.members {
		if o.h != h && o.h.out(now) {
			n++
		}
	}
	if n > b.limit(len(m.p.members)) {
		return // keep the count: the next failure tries again
	}
	if h.ejections > 0 { // one off for every BaseEjection spent in since
		h.ejections = max(0, h.ejections-int((now-h.until)/b.cfg.BaseEjection))
	}
	h.ejections++
	d := b.cfg.MaxEjection
	if h.ejections <= int(b.cfg.MaxEjection/b.cfg.BaseEjection) {
		d = min(d, time.Duration(h.ejections)*b.cfg.BaseEjection)
	}
	h.since, h.until = now, now+d
	h.failures.Store(0)
	b.gen.Add(1)
	if f := b.cfg.OnEject; f != nil {
		f(m.addr, d)
	}
}

// call joins an inner picker's Done to the member's record. Calls are
// pooled so that wrapping a Done does not allocate; the balancer contract
// (Done is called once) is what makes reuse safe.
type call struct {
	m     *member
	inner func(balancer.DoneInfo)
	fn    func(balancer.DoneInfo) // c.done, made once per call object
}

var calls sync.Pool

func newCall() *call {
	if c, _ := calls.Get().(*call); c != nil {
		return c
	}
	c := new(call)
	c.fn = c.done
	return c
}

func (c *call) done(di balancer.DoneInfo) {
	m, inner := c.m, c.inner
	if m == nil {
		return // called twice
	}
	c.m, c.inner = nil, nil
	calls.Put(c)
	inner(di)
	m.record(di)
}
