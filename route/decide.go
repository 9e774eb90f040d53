package route

import (
	"errors"
	"math"
	"math/bits"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/internal/stablehash"
	"github.com/sluicerpc/sluice/status"
)

// LaneKey is the W3C baggage member that carries a call's lane.
const LaneKey = "sluice-lane"

// Lookup finds the value of a key: a metadata key (lower case) or a baggage
// member key. Any func literal will do; one that captures only variables
// (ctx, an MD) does not allocate, as Decide and Ingress do not keep it.
//
//	in.Metadata = func(k string) (string, bool) { return metadata.OutgoingValue(ctx, k) }
type Lookup func(key string) (value string, ok bool)

// Input is what Decide and Ingress know of one call. Only Service is
// required; the rest that a rule does not look at may stay zero.
type Input struct {
	// Side is the side evaluating: callinfo.Client (the zero value counts
	// as Client) or callinfo.Server. Faults fire only on the side their
	// route names; on the server side Decide does not draw a destination
	// or a mirror.
	Side callinfo.Side
	// Service and Method are the callee's full protobuf service name and
	// the method name.
	Service, Method string
	// Caller is the calling service's name; "" when unknown.
	Caller string
	// CallerLabels are the calling instance's labels: on the client this
	// process's own; on a server whatever the caller told. Nil for none.
	CallerLabels map[string]string
	// Metadata looks up the request metadata by lower-case key. On the
	// client that is the outgoing metadata (metadata.OutgoingValue; a
	// client that wants header matches to see persistent keys by their
	// plain names also tries metadata.PersistentValue); on a server the
	// incoming metadata. Nil for none.
	Metadata Lookup
	// Baggage looks up the call's W3C baggage members
	// (metadata.BaggageValue), the lane member LaneKey included. Nil for
	// none.
	Baggage Lookup
	// Rand is the call's random number: every random choice of the call
	// (destination, mirror, delay, abort, ingress) is derived from it,
	// independently, through a mixing function, so any value that differs
	// from call to call will do (math/rand/v2's Uint64; the client passes
	// the call's start time mixed with a salt, so that every attempt of a
	// call draws the same). Tests pass fixed values.
	Rand uint64
}

// Mode is what a call in a lane does when the callee has no instance in
// the lane.
type Mode uint8

// The lane modes.
const (
	// Permissive falls back to the base instances (the default).
	Permissive Mode = iota
	// Strict fails the call with Unavailable.
	Strict
)

func (m Mode) String() string {
	if m == Strict {
		return ModeStrict
	}
	return ModePermissive
}

// Decision is how one call is routed, as Decide returned it. It holds no
// allocation of its own: its strings and pointers are shared with the Table
// generation that made it and must not be modified.
type Decision struct {
	// Rule names the RouteRule of the callee's service; "" when it has
	// none.
	Rule string
	// Route names the route that matched; "" when none did (the call goes
	// to all instances).
	Route string
	// Subset is where the call goes; the zero Subset is all instances.
	Subset Subset
	// Lane is the call's lane: the baggage member LaneKey naming a Lane in
	// force; "" for none (a lane no Lane document defines counts as none).
	Lane string
	// LaneMode is the lane's mode.
	LaneMode Mode
	// Mirror, when not nil, is the subset a copy of this call is sent to.
	Mirror *Subset
	// Delay, when above 0, is how long to hold the call back before
	// sending it (client side) or handling it (server side).
	Delay time.Duration
	// Abort, when not nil, is the error to fail the call with, after the
	// delay, instead of sending or handling it. It is a status error with
	// the configured code; errors.Is(err, ErrInjected) holds.
	Abort error

	gen  *generation // nil for a Decision built by hand
	lane *lane
}

// ErrInjected matches, under errors.Is, the errors of injected aborts.
var ErrInjected = errors.New("route: fault injected")

// ErrNoInstance matches, under errors.Is, the errors of NoInstance.
var ErrNoInstance = errors.New("route: no instance")

// NoInstance returns the error for a call to service that Select found no
// instance for: code Unavailable, naming the subset and lane.
// errors.Is(err, ErrNoInstance) holds.
func NoInstance(service string, d Decision) error {
	var b strings.Builder
	b.WriteString("route: no instance of ")
	b.WriteString(service)
	if d.Subset.Key != "" {
		b.WriteString(" in subset ")
		b.WriteString(d.Subset.Name)
	}
	if d.Lane != "" {
		b.WriteString(" in lane ")
		b.WriteString(d.Lane)
		if d.LaneMode == Strict {
			b.WriteString(" (STRICT: no fallback to the base instances)")
		}
	}
	return status.Wrap(codes.Unavailable, b.String(), ErrNoInstance)
}

// Target identifies the instances Select picks for a Decision, for a client
// that keeps a picker per target: two Decisions with the same Target select
// the same instances from the same list, as long as the Table is not
// updated (Subscribe tells when it is). It is comparable and costs nothing
// to make.
type Target struct {
	// Subset is the subset's Key.
	Subset string
	// Lane is the lane, "" for none.
	Lane string
	// Strict is the lane's mode.
	Strict bool
}

// Target returns the Decision's Target.
func (d Decision) Target() Target {
	return Target{Subset: d.Subset.Key, Lane: d.Lane, Strict: d.LaneMode == Strict}
}

// MirrorTarget returns the Decision that routes the mirrored copy of the
// call: to the mirror subset among the base instances. ok is false when the
// call is not mirrored.
func (d Decision) MirrorTarget() (m Decision, ok bool) {
	if d.Mirror == nil {
		return Decision{}, false
	}
	return Decision{Rule: d.Rule, Route: d.Route, Subset: *d.Mirror, gen: d.gen}, true
}

// Subset is a set of instances chosen by their labels. The zero Subset
// holds every instance.
type Subset struct {
	// Name names the subset in metrics (label "subset"): the destination's
	// name, by default its labels. "" for the zero Subset.
	Name string
	// Key is the subset's labels in a canonical form, "k1=v1,k2=v2" with
	// keys sorted: equal label sets have equal keys. "" for all instances.
	Key string

	labels []label // sorted by key
}

type label struct{ key, value string }

// NewSubset returns the subset of instances having all of labels, named
// name (default: its Key).
func NewSubset(name string, labels map[string]string) Subset {
	s := Subset{Key: subsetKey(labels)}
	for _, k := range sortedKeys(labels) {
		s.labels = append(s.labels, label{k, labels[k]})
	}
	s.Name = name
	if name == "" {
		s.Name = s.Key
	}
	return s
}

// subsetKey returns the canonical key of labels.
func subsetKey(labels map[string]string) string {
	var b strings.Builder
	for i, k := range sortedKeys(labels) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(labels[k])
	}
	return b.String()
}

// Match reports whether in has every label of the subset.
func (s Subset) Match(in discovery.Instance) bool {
	for _, l := range s.labels {
		if v, ok := in.Labels[l.key]; !ok || v != l.value {
			return false
		}
	}
	return true
}

// Labels returns a copy of the subset's labels; nil for all instances.
func (s Subset) Labels() map[string]string {
	if len(s.labels) == 0 {
		return nil
	}
	m := make(map[string]string, len(s.labels))
	for _, l := range s.labels {
		m[l.key] = l.value
	}
	return m
}

// Select returns the instances the call d decides may go to:
//
//   - A call in a lane goes to the instances labelled for the lane, those
//     of them in d.Subset if there are any, else all of them: the lane
//     wins over the route's subsets. When the list has no instance of the
//     lane, a PERMISSIVE lane falls back as if the call had no lane and a
//     STRICT lane gets none.
//   - Any other call goes to the base instances in d.Subset: instances in
//     any lane in force (having the label key of a Lane) are left out.
//
// An empty result means the call must fail with Unavailable (see
// NoInstance). The result may be instances itself, when every instance
// qualifies; it is never modified. Select allocates: clients call it when
// the instances or the Target change, not per call.
func Select(instances []discovery.Instance, d Decision) []discovery.Instance {
	if l := d.lane; l != nil {
		in := filter(instances, func(x discovery.Instance) bool { return l.has(x) })
		if len(in) > 0 {
			if sub := filter(in, d.Subset.Match); len(sub) > 0 {
				return sub
			}
			return in
		}
		if l.mode == Strict {
			return nil
		}
	}
	var keys []string
	if d.gen != nil {
		keys = d.gen.laneKeys
	}
	return filter(instances, func(x discovery.Instance) bool {
		if !d.Subset.Match(x) {
			return false
		}
		for _, k := range keys {
			if _, laned := x.Labels[k]; laned {
				return false
			}
		}
		return true
	})
}

// filter returns the instances keep holds for: ins itself when it holds for
// all.
func filter(ins []discovery.Instance, keep func(discovery.Instance) bool) []discovery.Instance {
	for i := range ins {
		if keep(ins[i]) {
			continue
		}
		out := make([]discovery.Instance, i, len(ins)-1)
		copy(out, ins[:i])
		for _, x := range ins[i+1:] {
			if keep(x) {
				out = append(out, x)
			}
		}
		return out
	}
	return ins
}

// ---- evaluation

// maxSlots is how many distinct keys of one rule Decide looks up once
// each; the values of further keys are looked up at each use.
const maxSlots = 16

// lookups holds the values of the keys with slots that one Decide has
// looked up. It lives on Decide's stack.
type lookups struct {
	vals       [maxSlots]string
	done, have uint32 // by slot: looked up, found
}

// verdicts are the results of a rule's tests of index < 64 that one
// Decide knows: by test (rule.tests[i] for bit i), which held and which
// failed. They live on Decide's stack.
type verdicts struct{ held, failed uint64 }

// settle looks up the key of r's slot s and records in t the tests on the
// key that its value settles (see keyTests): its presence settles the
// present and absent tests, or, when absent, every test; an exact test
// that holds settles every test on the key, else all its exact tests
// fail; and the probes fail the prefix and regex tests the value cannot
// pass, those of them that routes from index from on need. The tests
// left run when a route needs them.
func (c *lookups) settle(in *Input, r *rule, s uint, from int, t *verdicts) {
	k := &r.keys[s]
	v, ok := lookup(in, k.bag, k.key)
	c.vals[s] = v
	c.done |= 1 << s
	if !ok {
		t.held |= k.absent
		t.failed |= k.present | k.valued
		return
	}
	c.have |= 1 << s
	held, failed := k.present, k.absent
	if k.exactAll != 0 {
		if i := k.exactTest(v); i >= 0 {
			m := &r.tests[i]
			t.held |= held | 1<<i | m.implyHeld
			t.failed |= failed | m.implyFailed
			return
		}
		failed |= k.exactAll
	}
	for i := range k.probes {
		p := &k.probes[i]
		if p.route < from {
			break // only routes tried already need the rest
		}
		if !p.pass(v) {
			failed |= p.fails
		}
	}
	t.held |= held
	t.failed |= failed
}

// exactTest returns the index of the exact test on the key that v holds;
// -1 for none.
func (k *keyTests) exactTest(v string) int {
	if k.exactMap != nil {
		if i, ok := k.exactMap[v]; ok {
			return i
		}
		return -1
	}
	for _, e := range k.exact {
		if e.value == v {
			return e.test
		}
	}
	return -1
}

// pass reports whether v may pass the probe's test.
func (p *probe) pass(v string) bool {
	if len(v) < p.n {
		return false
	}
	off := 0
	if p.end {
		off = len(v) - p.n
	}
	return v[off] == p.first && v[off+p.n-1] == p.last
}

// value returns the value of the key m tests: the one looked up when
// its slot is settled, else looked up now.
func (c *lookups) value(in *Input, m *matcher) (string, bool) {
	if s := uint(m.slot); s < maxSlots && c.done&(1<<s) != 0 {
		return c.vals[s], c.have&(1<<s) != 0
	}
	return lookup(in, m.bag, m.key)
}

// metadata returns the value of a metadata key: the one looked up when
// slot is settled, else looked up now.
func (c *lookups) metadata(in *Input, slot int, key string) (string, bool) {
	if s := uint(slot); s < maxSlots && c.done&(1<<s) != 0 {
		return c.vals[s], c.have&(1<<s) != 0
	}
	return lookup(in, false, key)
}

// lookup looks up a metadata key, or a baggage member when bag.
func lookup(in *Input, bag bool, key string) (string, bool) {
	get := in.Metadata
	if bag {
		get = in.Baggage
	}
	if get == nil {
		return "", false
	}
	return get(key)
}

// Decide evaluates the rules for one call: the rule of in.Service, its
// first route that matches, the destination drawn by weight (or by the
// sticky key's hash), whether to mirror, delay or abort, and the lane the
// call carries in its baggage. A call of a service with no rule, or that no
// route matches, goes to all instances (the zero Subset), in its lane.
//
// Decide does not allocate and takes no lock; a nil Table decides the zero
// Decision. Its cost grows with the distinct tests and keys it must look
// at, not with the routes: each key is looked up once, and its value
// settles at once most tests on it (all exact tests by one scan or map
// access, most prefix and regex tests by a byte or two); each distinct
// test of a rule runs at most once per call, and its result settles the
// tests it implies (a value that starts with "ios-17" starts with "ios-",
// and not with "android-"); so the routes needing a test that failed are
// skipped at once. The rule type in table.go tells more.
func (t *Table) Decide(in Input) Decision {
	if t == nil {
		return Decision{}
	}
	g := t.cur.Load()
	d := Decision{gen: g}
	if len(g.lanes) > 0 && in.Baggage != nil {
		if v, ok := in.Baggage(LaneKey); ok {
			if l := g.lanes[v]; l != nil {
				d.Lane, d.LaneMode, d.lane = l.name, l.mode, l
			}
		}
	}
	r := g.rules[in.Service]
	if r == nil {
		return d
	}
	d.Rule = r.name
	var c lookups
	if i := c.first(r, &in); i >= 0 {
		rt := &r.routes[i]
		d.Route = rt.name
		server := in.Side == callinfo.Server
		if !server {
			switch len(rt.dests) {
			case 0:
			case 1:
				d.Subset = rt.dests[0]
			default:
				u := mix(in.Rand ^ saltDest)
				if rt.sticky != "" {
					if v, ok := c.metadata(&in, rt.stickySlot, rt.sticky); ok {
						u = Hash(v)
					}
				}
				hi, _ := bits.Mul64(u, rt.total)
				for j, cw := range rt.cum {
					if hi < cw {
						d.Subset = rt.dests[j]
						break
					}
				}
			}
			if m := rt.mirror; m != nil && m.odds.hit(mix(in.Rand^saltMirror)) {
				d.Mirror = &m.subset
			}
		}
		if f := rt.fault; f != nil && f.server == server {
			if f.delay > 0 && f.delayOdds.hit(mix(in.Rand^saltDelay)) {
				d.Delay = f.delay
			}
			if f.abort != nil && f.abortOdds.hit(mix(in.Rand^saltAbort)) {
				d.Abort = f.abort
			}
		}
	}
	return d
}

// Ingress reports the lane a call entering the system joins: the lane it
// already carries in its baggage when that lane is in force, else the first
// lane, in name order, whose Lane.Ingress admits it, else none. The caller
// then puts the lane in the baggage the call passes on
// (metadata.SetBaggage(ctx, LaneKey, lane)) unless the call carries it
// already. Ingress does not allocate.
func (t *Table) Ingress(in Input) (lane string, ok bool) {
	if t == nil {
		return "", false
	}
	g := t.cur.Load()
	if len(g.laneList) == 0 {
		return "", false
	}
	if in.Baggage != nil {
		if v, ok := in.Baggage(LaneKey); ok {
			if l := g.lanes[v]; l != nil {
				return l.name, true
			}
		}
	}
	for _, l := range g.laneList {
		if l.admits(&in) {
			return l.name, true
		}
	}
	return "", false
}

// meets reports whether the call meets the route's conditions other than
// its metadata and baggage tests.
func (rt *route) meets(in *Input) bool {
	if len(rt.methods) > 0 && !contains(rt.methods, in.Method) {
		return false
	}
	if len(rt.callers) > 0 && !contains(rt.callers, in.Caller) {
		return false
	}
	for _, l := range rt.callerLabels {
		if v, ok := in.CallerLabels[l.key]; !ok || v != l.value {
			return false
		}
	}
	return true
}

// first returns the index of the first route of r the call matches; -1
// for none. Of each route that needs no test known to have failed and
// meets its other conditions, it looks up the keys it tests that have
// not been (settle), then runs its tests that are left, cheapest first.
// A test of index < 64 runs at most once per call: t remembers which held
// and which failed.
func (c *lookups) first(r *rule, in *Input) int {
	var t verdicts
routes:
	for i := range r.plan {
		p := &r.plan[i]
		need := p.need
		if need&t.failed != 0 {
			continue
		}
		rt := &r.routes[i]
		if p.cond && !rt.meets(in) {
			continue
		}
		for ks := p.slots &^ c.done; ks != 0; ks &= ks - 1 {
			c.settle(in, r, uint(bits.TrailingZeros32(ks)), i, &t)
			if need&t.failed != 0 {
				continue routes
			}
		}
		for todo := need &^ t.held; todo != 0; todo = need &^ t.held {
			n := bits.TrailingZeros64(todo)
			m := &r.tests[n]
			var v string
			var ok bool
			if s := uint(m.slot); s < maxSlots {
				v, ok = c.vals[s], c.have&(1<<s) != 0
			} else {
				v, ok = lookup(in, m.bag, m.key)
			}
			if !m.test(v, ok) {
				t.failed |= 1<<n | m.failImplies
				continue routes
			}
			t.held |= 1<<n | m.implyHeld
			t.failed |= m.implyFailed
			if need&t.failed != 0 {
				continue routes
			}
		}
		for _, n := range rt.more { // their keys are looked up (plan.slots)
			m := &r.tests[n]
			if v, ok := c.value(in, m); !m.test(v, ok) {
				continue routes
			}
		}
		return i
	}
	return -1
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// The match operations, in the order a route tests them: cheapest first.
const (
	opPresent uint8 = iota
	opAbsent
	opExact
	opPrefix
	opRegex
)

func (m *matcher) test(v string, ok bool) bool {
	switch m.op {
	case opPresent:
		return ok
	case opAbsent:
		return !ok
	}
	if !ok {
		return false
	}
	switch m.op {
	case opExact:
		return v == m.value
	case opPrefix:
		return strings.HasPrefix(v, m.value)
	}
	if m.simple != nil {
		return m.simple.match(v)
	}
	// Every match starts with m.value and ends with m.suffix.
	if !strings.HasPrefix(v, m.value) || !strings.HasSuffix(v, m.suffix) {
		return false
	}
	return m.re.MatchString(v)
}

// admits reports whether the lane's ingress lets the call join.
func (l *lane) admits(in *Input) bool {
	if !l.ingress {
		return false
	}
	if len(l.services) > 0 {
		if !contains(l.services, in.Service) {
			return false
		}
	} else if in.Caller != "" {
		return false
	}
	for i := range l.headers {
		m := &l.headers[i]
		if v, ok := lookup(in, m.bag, m.key); m.test(v, ok) {
			return true
		}
	}
	if len(l.cookies) > 0 && in.Metadata != nil {
		if h, ok := in.Metadata("cookie"); ok {
			for _, ck := range l.cookies {
				if v, ok := cookie(h, ck.Name); ok && v == ck.Value {
					return true
				}
			}
		}
	}
	if l.hashKey != "" && in.Metadata != nil {
		if v, ok := in.Metadata(l.hashKey); ok && l.hashRange.has(Hash(v)) {
			return true
		}
	}
	return l.percentRange.has(mix(in.Rand ^ saltIngress))
}

// cookie finds the value of the cookie name in a Cookie header,
// "a=1; b=2", without allocating.
func cookie(header, name string) (string, bool) {
	for header != "" {
		var part string
		part, header, _ = strings.Cut(header, ";")
		part = strings.TrimSpace(part)
		k, v, ok := strings.Cut(part, "=")
		if ok && k == name {
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

// ---- randomness and hashing

// Salts derive independent draws from one Input.Rand.
const (
	saltDest    = 0x9e3779b97f4a7c15
	saltMirror  = 0xbf58476d1ce4e5b9
	saltDelay   = 0x94d049bb133111eb
	saltAbort   = 0x2545f4914f6cdd1d
	saltIngress = 0xd6e8feb86659fd93
)

// mix is SplitMix64's finaliser: it turns x into a well-spread value.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Hash is the hash of sticky keys and lane hash ranges: 64-bit FNV-1a of
// the value's bytes, finalised with MurmurHash3's fmix64. It is the same in
// every process, on every platform and in every version, so a value lands
// on the same subset and lane everywhere; a value at fraction f of the
// uint64 range falls in the destination whose cumulative weights span f.
func Hash(value string) uint64 { return stablehash.String(value) }

// odds is a probability as a threshold on uniform uint64 draws.
type odds struct {
	all bool
	t   uint64 // hit when the draw is below t
}

func oddsOf(percent float64) odds {
	if percent >= 100 {
		return odds{all: true}
	}
	return odds{t: fraction(percent)}
}

func (o odds) hit(u uint64) bool { return o.all || u < o.t }

// fraction returns percent of 2^64, for percent in [0, 100).
func fraction(percent float64) uint64 {
	f := percent / 100 * (1 << 64)
	switch {
	case !(f > 0):
		return 0
	case f >= 1<<64:
		return math.MaxUint64
	}
	return uint64(f)
}

// span is a range [lo, hi) of the uint64 space; full when hi reaches 2^64.
type span struct {
	lo, hi uint64
	full   bool // hi is 2^64
	empty  bool
}

func spanOf(from, to float64) span {
	if to <= from {
		return span{empty: true}
	}
	s := span{lo: fraction(from)}
	if to >= 100 {
		s.full = true
	} else {
		s.hi = fraction(to)
	}
	return s
}

func (s span) has(u uint64) bool {
	return !s.empty && u >= s.lo && (s.full || u < s.hi)
}
