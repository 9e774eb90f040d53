package policy

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/limit"
	"github.com/sluicerpc/sluice/status"
)

// Kind is the document kind of a TrafficPolicy.
const Kind = "TrafficPolicy"

func init() { config.Register(Kind, config.KindOf(validate)) }

// TrafficPolicy is the spec of a TrafficPolicy document: how clients call
// one service, and how the service's servers admit calls. The fields at the
// top level apply to every method; Methods overrides them method by method.
// Every zero value means the default given in the field's comment.
//
//	apiVersion: sluice/v1
//	kind: TrafficPolicy
//	metadata: {name: echo}
//	spec:
//	  service: sluice.examples.echo.v1.EchoService
//	  timeout: 2s
//	  retries: {maxAttempts: 3}
//	  breaker: {errorRate: 0.5}
//	  methods:
//	    Echo: {idempotent: true, hedging: {delay: 20ms}}
//	  limits:
//	    methods: {Echo: {qps: 1000}}
type TrafficPolicy struct {
	// Service is the full protobuf name of the service the policy is for,
	// "pkg.OrderService". Required; at most one policy per service is
	// used (the one whose document name sorts first).
	Service string `json:"service"`
	// Rules holds the service-wide settings; Methods overrides them.
	Rules `json:",inline"`
	// Methods overrides Rules for single methods, keyed by method name
	// ("Get"). A field a method sets replaces the service-wide field as a
	// whole; fields it leaves unset keep the service-wide value. Default
	// none.
	Methods map[string]Rules `json:"methods,omitempty"`
	// Limits is the admission policy the service's servers apply. Default
	// none: every call is admitted.
	Limits *Limits `json:"limits,omitempty"`
}

// Rules are the client-side settings of a service or one of its methods.
// Nil or zero means "not set here": the service-wide value, else the
// default.
type Rules struct {
	// Timeout bounds a call, all its attempts included, when the caller's
	// own deadline is later or absent. Default none.
	Timeout config.Duration `json:"timeout,omitempty"`
	// Idempotent marks calls as safe to send more than once at the same
	// time, which hedging requires. Default false.
	Idempotent *bool `json:"idempotent,omitempty"`
	// Retries retries failed calls. Default none (one attempt). A method
	// has retries or hedging, not both.
	Retries *Retries `json:"retries,omitempty"`
	// Hedging sends backup attempts to other instances when the first is
	// slow; idempotent methods only. Default none.
	Hedging *Hedging `json:"hedging,omitempty"`
	// Breaker sets the circuit breakers. Default: classic breakers with
	// the breaker package's defaults, per method and per instance.
	Breaker *Breaker `json:"breaker,omitempty"`
	// Fallback answers failed calls from a cache of good responses or
	// from the function the program registered. Default none.
	Fallback *Fallback `json:"fallback,omitempty"`
}

// Retries is a retry policy (see package retry).
type Retries struct {
	// MaxAttempts counts the first try. Default 3; 1 turns retries off.
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// InitialBackoff is the wait before the first retry. Default 25ms.
	InitialBackoff config.Duration `json:"initialBackoff,omitempty"`
	// MaxBackoff caps the wait. Default 1s.
	MaxBackoff config.Duration `json:"maxBackoff,omitempty"`
	// Multiplier grows the wait after each retry. Default 2.
	Multiplier float64 `json:"multiplier,omitempty"`
	// Jitter spreads each wait over ±Jitter of it. Default 0.2.
	Jitter float64 `json:"jitter,omitempty"`
	// Codes are the retryable codes by name ("UNAVAILABLE"). Default
	// [UNAVAILABLE].
	Codes []string `json:"codes,omitempty"`
	// PerTryTimeout bounds each attempt. Default none.
	PerTryTimeout config.Duration `json:"perTryTimeout,omitempty"`
	// Budget bounds retries across all calls of the service. Default:
	// 10% of calls plus 10 per second.
	Budget *Budget `json:"budget,omitempty"`
}

// Budget is a retry budget.
type Budget struct {
	// Ratio is the share of calls that may be retries. Default 0.1.
	Ratio float64 `json:"ratio,omitempty"`
	// MinPerSecond is the retries allowed per second whatever the
	// traffic. Default 10.
	MinPerSecond float64 `json:"minPerSecond,omitempty"`
}

// Hedging is a hedging policy (see retry.Hedger).
type Hedging struct {
	// MaxAttempts counts the first attempt. Default 2.
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// Delay is the wait before each backup attempt. Default 10ms; with
	// P95, the wait until enough calls were seen.
	Delay config.Duration `json:"delay,omitempty"`
	// P95 waits the observed 95th percentile latency of the method's
	// successful calls instead of Delay. Default false.
	P95 bool `json:"p95,omitempty"`
	// NonFatalCodes send the next attempt at once when one fails with
	// them; other failures end the call. Default [UNAVAILABLE].
	NonFatalCodes []string `json:"nonFatalCodes,omitempty"`
	// Budget bounds the backup attempts across all calls of the method.
	// Default: 50% of calls plus 10 per second. Hedging answers slowness,
	// which healthy services have, so it needs more room than retries;
	// MaxAttempts bounds each call.
	Budget *Budget `json:"budget,omitempty"`
}

// Breaker configures circuit breakers (see package breaker).
type Breaker struct {
	// Disabled turns the breakers off. Default false.
	Disabled bool `json:"disabled,omitempty"`
	// Mode is "classic" (three states) or "sre" (adaptive throttling).
	// Default "classic".
	Mode string `json:"mode,omitempty"`
	// Window is the sliding window. Default 10s.
	Window config.Duration `json:"window,omitempty"`
	// Buckets cut the window. Default 10.
	Buckets int `json:"buckets,omitempty"`
	// ErrorRate trips a classic breaker, in (0, 1]. Default 0.5.
	ErrorRate float64 `json:"errorRate,omitempty"`
	// MinRequests in the window before it can trip. Default 20.
	MinRequests int `json:"minRequests,omitempty"`
	// LatencyFactor trips when P95 > factor × the learnt baseline P95;
	// negative turns the latency trip off. Default 3.
	LatencyFactor float64 `json:"latencyFactor,omitempty"`
	// BaseSleep is the first open sleep, doubled per consecutive trip.
	// Default 5s.
	BaseSleep config.Duration `json:"baseSleep,omitempty"`
	// MaxSleep caps the open sleep. Default 120s.
	MaxSleep config.Duration `json:"maxSleep,omitempty"`
	// Probes are the half-open calls that must all succeed. Default 3.
	Probes int `json:"probes,omitempty"`
	// FailureCodes are the codes that count as failures. Default
	// [UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, RESOURCE_EXHAUSTED,
	// UNKNOWN].
	FailureCodes []string `json:"failureCodes,omitempty"`
	// K is the SRE mode's multiplier, at least 1. Default 1.5.
	K float64 `json:"k,omitempty"`
	// PerInstance adds a breaker per instance, checked after the balancer
	// picks (an open instance is skipped for another). Service-wide only.
	// Default true.
	PerInstance *bool `json:"perInstance,omitempty"`
}

// Fallback configures what answers a failed call.
type Fallback struct {
	// Cache serves the last good response to the same request (the same
	// method and request bytes) when a call fails. Default false.
	Cache bool `json:"cache,omitempty"`
	// TTL is how long a cached response may be served. Default 1m.
	TTL config.Duration `json:"ttl,omitempty"`
	// Size bounds the cached responses per method. Default 1024.
	Size int `json:"size,omitempty"`
	// Func calls the fallback function the program registered for the
	// method (policy.WithFallbackFunc). Default false.
	Func bool `json:"func,omitempty"`
	// Codes are the failures that fall back, by name. Default: an open
	// breaker, admission rejections, and UNAVAILABLE, DEADLINE_EXCEEDED,
	// RESOURCE_EXHAUSTED, INTERNAL, UNKNOWN.
	Codes []string `json:"codes,omitempty"`
}

// Limits is the admission policy of a service's servers (see package
// limit). A server hosting several services applies each one's method
// limits; callers, maxConcurrency and shed apply to the whole server, taken
// from the policies of the services it hosts (the smallest maxConcurrency,
// the first shed and caller limit by service name).
type Limits struct {
	// Methods are per-method token buckets, keyed by method name. Default
	// none.
	Methods map[string]limit.Rate `json:"methods,omitempty"`
	// Callers are per-calling-service token buckets. Default none.
	Callers map[string]limit.Rate `json:"callers,omitempty"`
	// MaxConcurrency bounds calls in flight. Default 0: no bound.
	MaxConcurrency int `json:"maxConcurrency,omitempty"`
	// Shed turns on adaptive load shedding; {} means the defaults.
	// Default off.
	Shed *limit.ShedConfig `json:"shed,omitempty"`
	// RetryAfter is suggested to callers turned away by the concurrency
	// bound or the shedder. Default 1s.
	RetryAfter config.Duration `json:"retryAfter,omitempty"`
}

// merge returns r with the fields o sets replacing r's.
func (r Rules) merge(o Rules) Rules {
	if o.Timeout != 0 {
		r.Timeout = o.Timeout
	}
	if o.Idempotent != nil {
		r.Idempotent = o.Idempotent
	}
	if o.Retries != nil {
		r.Retries, r.Hedging = o.Retries, nil
	}
	if o.Hedging != nil {
		r.Hedging, r.Retries = o.Hedging, nil
	}
	if o.Breaker != nil {
		r.Breaker = o.Breaker
	}
	if o.Fallback != nil {
		r.Fallback = o.Fallback
	}
	return r
}

func (r Rules) idempotent() bool { return r.Idempotent != nil && *r.Idempotent }

// validate checks a TrafficPolicy spec; every error names its field.
func validate(p *TrafficPolicy) error {
	var errs config.FieldErrors
	add := func(path, format string, a ...any) {
		errs = append(errs, &config.FieldError{Path: path, Reason: fmt.Sprintf(format, a...)})
	}
	if p.Service == "" {
		add("spec.service", "required: the full protobuf service name, e.g. pkg.OrderService")
	} else if strings.ContainsAny(p.Service, "/ ") {
		add("spec.service", "must be a protobuf service name like pkg.OrderService, not %q", p.Service)
	}
	p.Rules.check("spec", true, add)
	for _, m := range sortedKeys(p.Methods) {
		path := "spec.methods." + m
		if m == "" || strings.ContainsAny(m, "/. ") {
			add(path, "must be a method name like Get")
		}
		r := p.Methods[m]
		r.check(path, false, add)
		if eff := p.Rules.merge(r); eff.Hedging != nil && !eff.idempotent() {
			add(path+".hedging", "needs idempotent: true (set here or service-wide): hedging may run the call more than once")
		}
	}
	if p.Rules.Hedging != nil && !p.Rules.idempotent() {
		add("spec.hedging", "needs idempotent: true: hedging may run the call more than once")
	}
	if l := p.Limits; l != nil {
		for _, m := range sortedKeys(l.Methods) {
			if err := checkRate(l.Methods[m]); err != "" {
				add("spec.limits.methods."+m, "%s", err)
			}
		}
		for _, c := range sortedKeys(l.Callers) {
			if err := checkRate(l.Callers[c]); err != "" {
				add("spec.limits.callers."+c, "%s", err)
			}
		}
		if l.MaxConcurrency < 0 {
			add("spec.limits.maxConcurrency", "must not be negative")
		}
		if l.RetryAfter < 0 {
			add("spec.limits.retryAfter", "must not be negative")
		}
		if _, err := limit.New(l.config(p.Service)); err != nil {
			add("spec.limits", "%v", err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func checkRate(r limit.Rate) string {
	switch {
	case !(r.QPS > 0) || math.IsInf(r.QPS, 0):
		return fmt.Sprintf("qps must be above 0, not %v", r.QPS)
	case r.Burst < 0:
		return fmt.Sprintf("burst must not be negative, not %d", r.Burst)
	}
	return ""
}

// config returns l as a limit.Config for service.
func (l *Limits) config(service string) limit.Config {
	cfg := limit.Config{
		Callers:        l.Callers,
		MaxConcurrency: l.MaxConcurrency,
		Shed:           l.Shed,
		RetryAfter:     l.RetryAfter,
	}
	if len(l.Methods) > 0 {
		cfg.Methods = make(map[string]limit.Rate, len(l.Methods))
		for m, r := range l.Methods {
			cfg.Methods[service+"/"+m] = r
		}
	}
	return cfg
}

func (r *Rules) check(path string, top bool, add func(path, format string, a ...any)) {
	if r.Timeout < 0 {
		add(path+".timeout", "must not be negative")
	}
	if r.Retries != nil && r.Hedging != nil {
		add(path+".hedging", "a method has retries or hedging, not both (as in gRPC's service config)")
	}
	if rt := r.Retries; rt != nil {
		p := path + ".retries"
		if rt.MaxAttempts < 0 {
			add(p+".maxAttempts", "must not be negative")
		}
		if rt.InitialBackoff < 0 || rt.MaxBackoff < 0 || rt.PerTryTimeout < 0 {
			add(p, "initialBackoff, maxBackoff and perTryTimeout must not be negative")
		}
		if rt.MaxBackoff != 0 && rt.MaxBackoff < max(rt.InitialBackoff, 0) {
			add(p+".maxBackoff", "must be at least initialBackoff (%v)", rt.InitialBackoff)
		}
		if rt.Multiplier != 0 && rt.Multiplier < 1 {
			add(p+".multiplier", "must be at least 1")
		}
		if rt.Jitter < 0 || rt.Jitter > 1 {
			add(p+".jitter", "must be from 0 to 1")
		}
		checkCodes(p+".codes", rt.Codes, add)
		checkBudget(p+".budget", rt.Budget, add)
	}
	if h := r.Hedging; h != nil {
		p := path + ".hedging"
		if h.MaxAttempts != 0 && (h.MaxAttempts < 2 || h.MaxAttempts > 5) {
			add(p+".maxAttempts", "must be from 2 to 5")
		}
		if h.Delay < 0 {
			add(p+".delay", "must not be negative")
		}
		checkCodes(p+".nonFatalCodes", h.NonFatalCodes, add)
		checkBudget(p+".budget", h.Budget, add)
	}
	if b := r.Breaker; b != nil {
		p := path + ".breaker"
		if b.Mode != "" && b.Mode != "classic" && b.Mode != "sre" {
			add(p+".mode", "must be classic or sre, not %q", b.Mode)
		}
		if b.PerInstance != nil && !top {
			add(p+".perInstance", "is set service-wide only")
		}
		checkCodes(p+".failureCodes", b.FailureCodes, add)
		if _, err := b.config(nil); err != nil {
			add(p, "%v", err)
		}
	}
	if f := r.Fallback; f != nil {
		p := path + ".fallback"
		if f.TTL < 0 {
			add(p+".ttl", "must not be negative")
		}
		if f.Size < 0 {
			add(p+".size", "must not be negative")
		}
		if !f.Cache && !f.Func {
			add(p, "sets neither cache nor func: nothing would answer")
		}
		checkCodes(p+".codes", f.Codes, add)
	}
}

func checkBudget(path string, b *Budget, add func(path, format string, a ...any)) {
	if b == nil {
		return
	}
	if b.Ratio < 0 || b.Ratio > 1 {
		add(path+".ratio", "must be from 0 to 1")
	}
	if b.MinPerSecond < 0 {
		add(path+".minPerSecond", "must not be negative")
	}
}

func checkCodes(path string, names []string, add func(path, format string, a ...any)) {
	for i, n := range names {
		c, ok := status.ParseName(n)
		if !ok {
			add(fmt.Sprintf("%s[%d]", path, i), "%q is not a status code name (UNAVAILABLE, DEADLINE_EXCEEDED, ...)", n)
		} else if c == codes.OK {
			add(fmt.Sprintf("%s[%d]", path, i), "OK is not a failure")
		}
	}
}

// parseCodes parses names already checked by validate.
func parseCodes(names []string) []codes.Code {
	if names == nil {
		return nil
	}
	cs := make([]codes.Code, 0, len(names))
	for _, n := range names {
		if c, ok := status.ParseName(n); ok {
			cs = append(cs, c)
		}
	}
	return cs
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
