package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/breaker"
	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/fallback"
	"github.com/sluicerpc/sluice/limit"
	"github.com/sluicerpc/sluice/retry"
	"github.com/sluicerpc/sluice/status"
)

// Table holds the TrafficPolicies in force, compiled for the hot path, and
// swaps them whole on Update: a call sees the old policy or the new one,
// never half of each. The state a policy builds up (breaker windows, retry
// budgets, hedging latencies, fallback caches) carries over an update for
// every part whose settings did not change. One Table may serve any number
// of clients and servers; it is safe for concurrent use.
type Table struct {
	opts tableOptions
	cur  atomic.Pointer[compiled]

	mu   sync.Mutex // serialises Update
	subs config.Subscribers
}

// compiled is one generation of policies.
type compiled struct {
	services map[string]*servicePolicy
	specs    map[string]TrafficPolicy // by service
}

type servicePolicy struct {
	spec      TrafficPolicy
	def       *methodPolicy            // methods the spec does not list
	methods   map[string]*methodPolicy // methods it lists
	instances *breaker.Set             // per-instance breakers; nil when off
	limiter   *limit.Limiter           // admission on the servers; nil when none
}

// methodPolicy is what one method's calls go through, outermost first:
// fallback, timeout, retries or hedging, the method's breaker.
type methodPolicy struct {
	method   string // "" for the service-wide default
	rules    Rules  // effective: service-wide merged with the method's
	timeout  time.Duration
	retry    *retry.Policy
	budget   *retry.Budget
	hedge    *retry.Hedger
	breakers *breaker.Set
	fallback *fallback.Fallback
	fbFunc   FallbackFunc
}

// FallbackFunc answers a call that failed with err: it fills resp and
// returns nil, or returns an error.
type FallbackFunc func(ctx context.Context, req, resp any, err error) error

// TableOption configures a Table.
type TableOption func(*tableOptions)

type tableOptions struct {
	clock         Clock
	observer      Observer
	onStateChange func(name string, from, to breaker.State)
	fallbacks     map[string]FallbackFunc // by "/pkg.Service/Method"
	logger        *slog.Logger
}

// Clock tells the time; tests pass a fake one.
type Clock interface{ Now() time.Time }

// WithClock sets the clock of breakers, budgets and caches (default the
// system clock).
func WithClock(c Clock) TableOption { return func(o *tableOptions) { o.clock = c } }

// WithBreakerStateChange calls fn on every breaker state change (default
// none); fn must return quickly.
func WithBreakerStateChange(fn func(name string, from, to breaker.State)) TableOption {
	return func(o *tableOptions) { o.onStateChange = fn }
}

// Observer is told what the policies do, for metrics; *metrics.Metrics
// (package observe/metrics) is one. Its methods must return quickly.
type Observer interface {
	// BreakerStateChange reports a breaker (a method's, named
	// service/method, or an instance's, named by address) changing state.
	BreakerStateChange(name string, from, to breaker.State)
	// Rejected reports a call turned away: side "client" (reason
	// "breaker") or "server" (reason "limit" or "shed").
	Rejected(side, service, method, reason string)
	// Retry reports a retry being sent; Hedge a backup attempt; Fallback
	// a call answered by its fallback.
	Retry(service, method string)
	Hedge(service, method string)
	Fallback(service, method string)
}

// WithObserver reports breaker state changes, rejections, retries, hedges
// and fallbacks to o (default none), alongside WithBreakerStateChange.
func WithObserver(o Observer) TableOption { return func(o2 *tableOptions) { o2.observer = o } }

// WithFallbackFunc registers fn as the fallback of fullMethod
// ("/pkg.Service/Method"), used where a policy says fallback: {func: true}.
func WithFallbackFunc(fullMethod string, fn FallbackFunc) TableOption {
	return func(o *tableOptions) {
		if o.fallbacks == nil {
			o.fallbacks = map[string]FallbackFunc{}
		}
		o.fallbacks[fullMethod] = fn
	}
}

// WithLogger sets where Follow reports snapshots it could not apply
// (default slog.Default()).
func WithLogger(l *slog.Logger) TableOption { return func(o *tableOptions) { o.logger = l } }

// NewTable returns a Table holding specs, validated as documents are.
func NewTable(specs []TrafficPolicy, opts ...TableOption) (*Table, error) {
	t := &Table{opts: tableOptions{logger: slog.Default()}}
	for _, o := range opts {
		o(&t.opts)
	}
	if ob, fn := t.opts.observer, t.opts.onStateChange; ob != nil {
		t.opts.onStateChange = func(name string, from, to breaker.State) {
			ob.BreakerStateChange(name, from, to)
			if fn != nil {
				fn(name, from, to)
			}
		}
	}
	t.cur.Store(&compiled{services: map[string]*servicePolicy{}, specs: map[string]TrafficPolicy{}})
	if err := t.Update(specs); err != nil {
		return nil, err
	}
	return t, nil
}

// Update replaces the policies in force with specs. It checks them all
// first: on error nothing changes, and the error names the field. Two
// specs for one service are an error here (Follow keeps the first by
// document name instead).
func (t *Table) Update(specs []TrafficPolicy) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.cur.Load()
	next := &compiled{services: make(map[string]*servicePolicy, len(specs)), specs: make(map[string]TrafficPolicy, len(specs))}
	for i := range specs {
		p := specs[i]
		if err := validate(&p); err != nil {
			return fmt.Errorf("policy: %s: %w", p.Service, err)
		}
		if _, dup := next.specs[p.Service]; dup {
			return fmt.Errorf("policy: two policies for service %s", p.Service)
		}
		next.specs[p.Service] = p
	}
	// Everything is valid: compiling only fails on a bug, and does not
	// touch the state of the generation in force until it succeeds.
	for _, p := range next.specs {
		sp, err := t.compile(p, old.services[p.Service])
		if err != nil {
			return fmt.Errorf("policy: %s: %w", p.Service, err)
		}
		next.services[p.Service] = sp
	}
	t.cur.Store(next)
	t.subs.Notify()
	return nil
}

// Subscribe calls fn after every Update (not now). fn must return quickly.
func (t *Table) Subscribe(fn func()) (cancel func()) { return t.subs.Add(fn) }

// Policies returns the specs in force, sorted by service.
func (t *Table) Policies() []TrafficPolicy {
	c := t.cur.Load()
	out := make([]TrafficPolicy, 0, len(c.specs))
	for _, s := range sortedKeys(c.specs) {
		out = append(out, c.specs[s])
	}
	return out
}

// Follow keeps the Table in step with the TrafficPolicy documents of w's
// snapshots, starting with the current one, until stop is called. The
// store validated each document already; where two documents name one
// service, the one whose name sorts first wins and the other is logged.
func (t *Table) Follow(w *config.Watcher) (stop func()) {
	return w.Subscribe(func(s *config.Snapshot) {
		entries := s.List(Kind)
		sort.Slice(entries, func(i, j int) bool { return entries[i].Doc.Metadata.Name < entries[j].Doc.Metadata.Name })
		seen := map[string]string{}
		specs := make([]TrafficPolicy, 0, len(entries))
		for _, e := range entries {
			p, ok := e.Spec.(*TrafficPolicy)
			if !ok {
				continue
			}
			if first, dup := seen[p.Service]; dup {
				t.opts.logger.Warn("policy: two TrafficPolicy documents for one service; using the first", "service", p.Service, "used", first, "ignored", e.Doc.Metadata.Name)
				continue
			}
			seen[p.Service] = e.Doc.Metadata.Name
			specs = append(specs, *p)
		}
		if err := t.Update(specs); err != nil {
			t.opts.logger.Error("policy: snapshot not applied; the previous policies stay", "revision", s.Revision(), "error", err)
		}
	})
}

// compile builds a service's runtime policy, keeping prev's state where the
// settings are unchanged.
func (t *Table) compile(p TrafficPolicy, prev *servicePolicy) (*servicePolicy, error) {
	sp := &servicePolicy{spec: p, methods: make(map[string]*methodPolicy, len(p.Methods))}
	var prevDef *methodPolicy
	if prev != nil {
		prevDef = prev.def
	}
	var err error
	if sp.def, err = t.compileMethod(p.Service, "", p.Rules, prevDef, nil); err != nil {
		return nil, err
	}
	for _, m := range sortedKeys(p.Methods) {
		var pm *methodPolicy
		if prev != nil {
			pm = prev.methods[m]
		}
		if pm == nil {
			pm = prevDef
		}
		if sp.methods[m], err = t.compileMethod(p.Service, m, p.Rules.merge(p.Methods[m]), pm, sp.def); err != nil {
			return nil, fmt.Errorf("methods.%s: %w", m, err)
		}
	}
	if b := p.Rules.Breaker; b == nil || (!b.Disabled && (b.PerInstance == nil || *b.PerInstance)) {
		if prev != nil && prev.instances != nil && sameBreaker(prev.spec.Rules.Breaker, b) {
			sp.instances = prev.instances
		} else if sp.instances, err = t.breakerSet(b); err != nil {
			return nil, err
		}
	}
	if l := p.Limits; l != nil {
		cfg := l.config(p.Service)
		if t.opts.clock != nil {
			cfg.Clock = t.opts.clock
		}
		if prev != nil && prev.limiter != nil {
			sp.limiter, err = prev.limiter.Next(cfg)
		} else {
			sp.limiter, err = limit.New(cfg)
		}
		if err != nil {
			return nil, err
		}
	}
	return sp, nil
}

func (t *Table) compileMethod(service, method string, r Rules, prev, def *methodPolicy) (*methodPolicy, error) {
	mp := &methodPolicy{method: method, rules: r, timeout: time.Duration(r.Timeout)}
	var err error
	// Breakers: shared with the service default when the settings match.
	switch {
	case r.Breaker != nil && r.Breaker.Disabled:
	case def != nil && sameBreaker(def.rules.Breaker, r.Breaker):
		mp.breakers = def.breakers
	case prev != nil && prev.breakers != nil && sameBreaker(prev.rules.Breaker, r.Breaker):
		mp.breakers = prev.breakers
	default:
		if mp.breakers, err = t.breakerSet(r.Breaker); err != nil {
			return nil, err
		}
	}
	if rt := r.Retries; rt != nil {
		mp.budget = t.budget(rt.Budget, def, prev)
		cfg := retry.Config{
			MaxAttempts:    rt.MaxAttempts,
			InitialBackoff: time.Duration(rt.InitialBackoff),
			MaxBackoff:     time.Duration(rt.MaxBackoff),
			Multiplier:     rt.Multiplier,
			Jitter:         rt.Jitter,
			Codes:          parseCodes(rt.Codes),
			PerTryTimeout:  time.Duration(rt.PerTryTimeout),
			Budget:         mp.budget,
			Clock:          t.opts.clock,
		}
		if ob := t.opts.observer; ob != nil {
			cfg.OnRetry = func(info *callinfo.Info) { ob.Retry(info.Service, info.Method) }
		}
		if mp.retry, err = retry.New(cfg); err != nil {
			return nil, err
		}
	}
	if h := r.Hedging; h != nil {
		switch {
		case prev != nil && prev.method == method && prev.hedge != nil && reflect.DeepEqual(prev.rules.Hedging, h):
			mp.hedge = prev.hedge // keeps the latencies it learnt
		default:
			cfg := retry.HedgeConfig{
				MaxAttempts:   h.MaxAttempts,
				Delay:         time.Duration(h.Delay),
				UseP95:        h.P95,
				NonFatalCodes: parseCodes(h.NonFatalCodes),
				Budget:        hedgeBudget(h.Budget, t.opts.clock),
				Clock:         t.opts.clock,
			}
			if ob := t.opts.observer; ob != nil {
				cfg.OnHedge = func(info *callinfo.Info) { ob.Hedge(info.Service, info.Method) }
			}
			if cfg.Delay == 0 {
				cfg.Delay = 10 * time.Millisecond
			}
			if mp.hedge, err = retry.NewHedger(cfg); err != nil {
				return nil, err
			}
		}
	}
	if f := r.Fallback; f != nil && (f.Cache || f.Func && t.hasFallbackFunc(service, method)) {
		if f.Func && method != "" {
			mp.fbFunc = t.opts.fallbacks["/"+service+"/"+method]
		}
		if f.Func && method == "" {
			mp.fbFunc = t.serviceFallback(service)
		}
		if prev != nil && prev.method == method && prev.fallback != nil && reflect.DeepEqual(prev.rules.Fallback, f) {
			mp.fallback = prev.fallback // keeps its cache
		} else {
			cfg := fallback.Config{
				Cache: f.Cache,
				TTL:   time.Duration(f.TTL),
				Size:  f.Size,
				When:  failureOf(f.Codes),
				Clock: t.opts.clock,
			}
			if ob := t.opts.observer; ob != nil {
				cfg.OnFallback = func(info *callinfo.Info, _ string) { ob.Fallback(info.Service, info.Method) }
			}
			if fn := mp.fbFunc; fn != nil {
				cfg.Func = fn
			}
			if mp.fallback, err = fallback.New(cfg); err != nil {
				return nil, err
			}
		}
	}
	return mp, nil
}

// hasFallbackFunc reports whether the program registered a fallback
// function for the method, or for any method of service when method is "".
// A policy asking for a function the program lacks has no fallback.
func (t *Table) hasFallbackFunc(service, method string) bool {
	if method != "" {
		return t.opts.fallbacks["/"+service+"/"+method] != nil
	}
	prefix := "/" + service + "/"
	for m := range t.opts.fallbacks {
		if strings.HasPrefix(m, prefix) {
			return true
		}
	}
	return false
}

// serviceFallback is the fallback of service-wide rules: the function
// registered for the called method.
func (t *Table) serviceFallback(service string) FallbackFunc {
	fns := t.opts.fallbacks
	if len(fns) == 0 {
		return nil
	}
	return func(ctx context.Context, req, resp any, err error) error {
		if info := infoOf(ctx); info != nil {
			if fn := fns[info.FullMethod]; fn != nil {
				return fn(ctx, req, resp, err)
			}
			if fn := fns["/"+service+"/"+info.Method]; fn != nil {
				return fn(ctx, req, resp, err)
			}
		}
		return err
	}
}

// budget returns the retry budget: the service default's or the previous
// one's when the settings match, so its counts carry over.
func (t *Table) budget(b *Budget, def, prev *methodPolicy) *retry.Budget {
	for _, mp := range []*methodPolicy{def, prev} {
		if mp != nil && mp.budget != nil && mp.rules.Retries != nil && reflect.DeepEqual(mp.rules.Retries.Budget, b) {
			return mp.budget
		}
	}
	cfg := retry.BudgetConfig{Clock: t.opts.clock}
	if b != nil {
		cfg.Ratio, cfg.MinPerSecond = b.Ratio, b.MinPerSecond
	}
	return retry.NewBudget(cfg)
}

// hedgeBudget is a hedging policy's own budget: 50% of calls plus 10 a
// second unless b says otherwise.
func hedgeBudget(b *Budget, clock Clock) *retry.Budget {
	cfg := retry.BudgetConfig{Ratio: 0.5, Clock: clock}
	if b != nil {
		if b.Ratio != 0 {
			cfg.Ratio = b.Ratio
		}
		cfg.MinPerSecond = b.MinPerSecond
	}
	return retry.NewBudget(cfg)
}

func (t *Table) breakerSet(b *Breaker) (*breaker.Set, error) {
	cfg, err := b.config(t.opts.clock)
	if err != nil {
		return nil, err
	}
	cfg.OnStateChange = t.opts.onStateChange
	return breaker.NewSet(cfg)
}

func sameBreaker(a, b *Breaker) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.PerInstance, y.PerInstance = nil, nil
	return reflect.DeepEqual(x, y)
}

// config returns b as a breaker.Config, checked.
func (b *Breaker) config(clock Clock) (breaker.Config, error) {
	var cfg breaker.Config
	if clock != nil {
		cfg.Clock = clock
	}
	if b != nil {
		cfg.Window = time.Duration(b.Window)
		cfg.Buckets = b.Buckets
		cfg.ErrorRate = b.ErrorRate
		cfg.MinRequests = b.MinRequests
		cfg.LatencyFactor = b.LatencyFactor
		cfg.BaseSleep = time.Duration(b.BaseSleep)
		cfg.MaxSleep = time.Duration(b.MaxSleep)
		cfg.Probes = b.Probes
		cfg.SREK = b.K
		if b.Mode == "sre" {
			cfg.Mode = breaker.SRE
		}
		if cs := parseCodes(b.FailureCodes); cs != nil {
			cfg.IsFailure = codeSet(cs)
		}
	}
	if _, err := breaker.New("check", cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// codeSet returns a failure test true for errors with one of cs.
func codeSet(cs []codes.Code) func(error) bool {
	var set [codes.Unauthenticated + 1]bool
	for _, c := range cs {
		set[c] = true
	}
	return func(err error) bool {
		if err == nil {
			return false
		}
		c := status.Code(err)
		return int(c) < len(set) && set[c]
	}
}

// failureOf is a fallback's When: nil (the default) without codes.
func failureOf(names []string) func(error) bool {
	cs := parseCodes(names)
	if cs == nil {
		return nil
	}
	in := codeSet(cs)
	return func(err error) bool {
		return errors.Is(err, breaker.ErrOpen) || errors.Is(err, limit.ErrLimited) || in(err)
	}
}
