package route

import (
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"regexp"
	"regexp/syntax"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/status"
)

// Table holds the RouteRules and Lanes in force, compiled for the hot path
// (regular expressions compiled, label sets sorted, weights made
// cumulative), and swaps them whole on Update: a call is decided by the old
// rules or the new ones, never half of each. One Table may serve any number
// of clients and servers; it is safe for concurrent use.
type Table struct {
	opts tableOptions
	cur  atomic.Pointer[generation]

	mu   sync.Mutex // serialises Update
	subs config.Subscribers
}

// generation is one compiled set of rules and lanes.
type generation struct {
	rules    map[string]*rule // by service
	specs    []Rule           // sorted by service
	lanes    map[string]*lane // by name
	laneList []*lane          // sorted by name
	laneSpec []Lane           // sorted by name
	laneKeys []string         // the label keys of the lanes, sorted, distinct
}

// rule is a RouteRule compiled for Decide. The work of matching is done
// here, once per Update, so that what a call costs grows with the
// distinct tests and keys it must look at, not with the routes:
//
//   - Tests are deduplicated: identical tests (key, kind, value or
//     pattern) of all the routes are one entry of tests, numbered
//     cheapest kind first, and a route names those it needs as a bitset
//     (plan.need). Decide keeps on its stack which tests held and which
//     failed (verdicts), so a test runs at most once per call, however
//     many routes share it, and a route that needs a test that failed is
//     skipped with one AND.
//   - Each distinct key has a lookup slot: Decide looks it up once, when
//     the first route it tries that tests the key comes up, and settles at
//     once the tests on the key that its value decides cheaply (keyTests):
//     its presence settles the present and absent tests (and, when the key
//     is absent, every test); one scan of the exact values, or one map
//     access, finds the exact test that holds, whose value settles every
//     other test on the key (compileRule ran them on it), or else fails
//     every exact test; and probes, the first and last bytes of a prefix
//     or of a regex's literal prefix or suffix, fail most of the prefix
//     and regex tests that cannot hold without running them.
//   - The tests left run when a route needs them, and their results
//     settle the tests they imply (matcher.implyHeld and friends): a value
//     that starts with "ios-17" starts with "ios-", and not with
//     "android-".
//   - Regular expressions that are simple sequences of literals and
//     character classes match without package regexp (simpleRE).
//
// In BenchmarkDecide's rule (20 routes of 5 tests on 5 keys, the routes
// but the last each failing one), Decide so looks each key up once,
// settles all but three tests while doing so, and runs those three (two
// prefixes and a regex).
type rule struct {
	name   string
	routes []route
	// plan is, by route, what Decide's loop over the routes reads, packed.
	plan []plan
	// tests are the rule's distinct metadata and baggage tests, cheapest
	// first; a route names its own by index.
	tests []matcher
	// keys holds, by lookup slot, the tests (of index < 64) on the slot's
	// key that its presence or value settles.
	keys []keyTests
}

// keyTests are the tests (of index < 64) on the key of one lookup slot,
// which Decide settles, as far as the value decides them cheaply, when it
// looks the key up (lookups.settle): present and absent tests; the tests
// of a value, which fail without one; exact tests, of which at most one
// holds; and probes of prefix and regex tests.
type keyTests struct {
	key string // lower case for metadata
	bag bool   // a baggage member, not metadata

	present, absent, valued uint64
	// exactAll are the exact tests, whose values are in exact, or in
	// exactMap when there are many: one scan or map access settles them.
	exactAll uint64
	exact    []exactTest
	exactMap map[string]int
	probes   []probe
}

// exactTest is an exact test's value and index.
type exactTest struct {
	value string
	test  int
}

// maxExactScan is how many exact values on one key keyTests.exact scans;
// more go in a map.
const maxExactScan = 8

// probe is a cheap necessary condition of a prefix or regex test: the
// value holds a literal of n bytes (the prefix, or the regex's literal
// prefix or suffix) at its start, or at its end when end, as the
// literal's first and last bytes show.
type probe struct {
	// fails are the tests a value that fails the probe fails: the test
	// and those its failure implies.
	fails uint64
	// route is the last route that needs one of fails. A key's probes
	// are sorted by route, latest first: Decide runs only those that
	// the routes it has yet to try need.
	route       int
	n           int
	end         bool
	first, last byte
}

// plan is what Decide needs to know of a route to skip it, or to look up
// the keys it tests before running its tests.
type plan struct {
	need  uint64 // the tests (rule.tests[i] for bit i < 64) that must hold
	slots uint32 // the lookup slots of the keys the route tests
	cond  bool   // the route has methods, callers or callerLabels
}

type route struct {
	name         string
	methods      []string
	callers      []string
	callerLabels []label
	more         []int // the tests of index 64 and up that must hold
	dests        []Subset
	cum          []uint64 // cumulative weights of dests
	total        uint64
	sticky       string // lower case
	stickySlot   int
	mirror       *mirror
	fault        *fault
}

type matcher struct {
	bag    bool   // tests a baggage member, not metadata
	key    string // lower case for metadata
	slot   int    // of the key's value in lookups; -1 for none
	op     uint8
	value  string // exact value, prefix, or a regex's literal prefix
	suffix string // a regex's literal suffix
	re     *regexp.Regexp
	simple *simpleRE // matches re's values without package regexp, when not nil
	src    string    // the regex as written, to tell tests apart
	// When an exact test holds, the value is known, and so are the
	// results of the other tests on the key: implyHeld and implyFailed.
	// When a prefix test holds, the shorter prefixes of it hold, other
	// prefixes and the exact values without it fail; when it fails, the
	// longer prefixes and the exact values with it fail (failImplies).
	implyHeld, implyFailed, failImplies uint64
}

type mirror struct {
	subset Subset
	odds   odds
}

type fault struct {
	server               bool
	delay                time.Duration
	delayOdds, abortOdds odds
	abort                error
}

type lane struct {
	name       string
	key, value string // the instance label
	mode       Mode

	ingress      bool
	services     []string
	headers      []matcher
	cookies      []Cookie
	hashKey      string
	hashRange    span
	percentRange span
}

// has reports whether the instance is in the lane.
func (l *lane) has(in discovery.Instance) bool {
	v, ok := in.Labels[l.key]
	return ok && v == l.value
}

// TableOption configures a Table.
type TableOption func(*tableOptions)

type tableOptions struct {
	logger *slog.Logger
}

// WithLogger sets where Follow reports documents it could not apply
// (default slog.Default()).
func WithLogger(l *slog.Logger) TableOption { return func(o *tableOptions) { o.logger = l } }

// NewTable returns a Table holding rules and lanes, validated as documents
// are (see Update).
func NewTable(rules []Rule, lanes []Lane, opts ...TableOption) (*Table, error) {
	t := &Table{opts: tableOptions{logger: slog.Default()}}
	for _, o := range opts {
		o(&t.opts)
	}
	t.cur.Store(&generation{rules: map[string]*rule{}, lanes: map[string]*lane{}})
	if err := t.Update(rules, lanes); err != nil {
		return nil, err
	}
	return t, nil
}

// Update replaces the rules and lanes in force. It checks them all first,
// each as its document kind does plus what only shows across documents
// (two rules for one service, two lanes of one name or label, lane
// ingress ranges that overlap or add up to more than 100%): on error
// nothing changes, and the error names the rule or lane and the field
// (errors.As finds the config.FieldErrors).
func (t *Table) Update(rules []Rule, lanes []Lane) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, err := compile(rules, lanes)
	if err != nil {
		return err
	}
	t.cur.Store(g)
	t.subs.Notify()
	return nil
}

// Subscribe calls fn after every Update (not now), for clients that keep
// pickers per Target and must drop them. fn must return quickly.
func (t *Table) Subscribe(fn func()) (cancel func()) { return t.subs.Add(fn) }

// Rules returns the rules in force, sorted by service.
func (t *Table) Rules() []Rule { return append([]Rule(nil), t.cur.Load().specs...) }

// Lanes returns the lanes in force, sorted by name.
func (t *Table) Lanes() []Lane { return append([]Lane(nil), t.cur.Load().laneSpec...) }

// Follow keeps the Table in step with the RouteRule and Lane documents of
// w's snapshots, starting with the current one, until stop is called. A
// rule takes its document's name; a lane without a name takes its
// document's. Where two documents name one service (or two lanes one
// name), the one whose document name sorts first wins and the other is
// logged. A snapshot whose documents do not fit together (see Update) is
// logged and not applied: the rules in force stay.
func (t *Table) Follow(w *config.Watcher) (stop func()) {
	return w.Subscribe(func(s *config.Snapshot) {
		rules, lanes := t.fromSnapshot(s)
		if err := t.Update(rules, lanes); err != nil {
			t.opts.logger.Error("route: snapshot not applied; the previous rules stay", "revision", s.Revision(), "error", err)
		}
	})
}

func (t *Table) fromSnapshot(s *config.Snapshot) ([]Rule, []Lane) {
	var rules []Rule
	seen := map[string]string{}
	for _, e := range s.List(RuleKind) { // sorted by name
		r, ok := e.Spec.(*Rule)
		if !ok {
			continue
		}
		if first, dup := seen[r.Service]; dup {
			t.opts.logger.Warn("route: two RouteRule documents for one service; using the first", "service", r.Service, "used", first, "ignored", e.Doc.Metadata.Name)
			continue
		}
		seen[r.Service] = e.Doc.Metadata.Name
		c := *r
		c.Name = e.Doc.Metadata.Name
		rules = append(rules, c)
	}
	var lanes []Lane
	seen = map[string]string{}
	for _, e := range s.List(LaneKind) {
		l, ok := e.Spec.(*Lane)
		if !ok {
			continue
		}
		c := *l
		if c.Name == "" {
			c.Name = e.Doc.Metadata.Name
		}
		if first, dup := seen[c.Name]; dup {
			t.opts.logger.Warn("route: two Lane documents for one lane; using the first", "lane", c.Name, "used", first, "ignored", e.Doc.Metadata.Name)
			continue
		}
		seen[c.Name] = e.Doc.Metadata.Name
		lanes = append(lanes, c)
	}
	return rules, lanes
}

// ---- compiling

func compile(rules []Rule, lanes []Lane) (*generation, error) {
	g := &generation{
		rules: make(map[string]*rule, len(rules)),
		lanes: make(map[string]*lane, len(lanes)),
	}
	for i := range rules {
		r := rules[i]
		name := r.Name
		if name == "" {
			name = r.Service
		}
		if err := validateRule(&r); err != nil {
			return nil, fmt.Errorf("route: RouteRule %s: %w", name, err)
		}
		if _, dup := g.rules[r.Service]; dup {
			return nil, fmt.Errorf("route: RouteRule %s: %w", name, config.FieldErrors{{Path: "spec.service", Reason: "another rule routes " + r.Service}})
		}
		g.rules[r.Service] = compileRule(name, &r)
		g.specs = append(g.specs, r)
	}
	sort.Slice(g.specs, func(i, j int) bool { return g.specs[i].Service < g.specs[j].Service })

	labels := map[label]string{}
	for i := range lanes {
		l := lanes[i]
		if err := validateLane(&l); err != nil {
			return nil, fmt.Errorf("route: Lane %s: %w", l.Name, err)
		}
		if l.Name == "" {
			return nil, fmt.Errorf("route: Lane #%d: %w", i+1, config.FieldErrors{{Path: "spec.name", Reason: "required (a document's name stands in for it only under Follow)"}})
		}
		if _, dup := g.lanes[l.Name]; dup {
			return nil, fmt.Errorf("route: Lane %s: %w", l.Name, config.FieldErrors{{Path: "spec.name", Reason: "another lane has this name"}})
		}
		cl := compileLane(&l)
		lb := label{cl.key, cl.value}
		if other, dup := labels[lb]; dup {
			return nil, fmt.Errorf("route: Lane %s: %w", l.Name, config.FieldErrors{{Path: "spec.label", Reason: fmt.Sprintf("lane %s has the label %s=%s too", other, cl.key, cl.value)}})
		}
		labels[lb] = l.Name
		g.lanes[l.Name] = cl
		g.laneList = append(g.laneList, cl)
		g.laneSpec = append(g.laneSpec, l)
	}
	sort.Slice(g.laneList, func(i, j int) bool { return g.laneList[i].name < g.laneList[j].name })
	sort.Slice(g.laneSpec, func(i, j int) bool { return g.laneSpec[i].Name < g.laneSpec[j].Name })
	if err := assignRanges(g.laneList, g.laneSpec); err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for _, l := range g.laneList {
		if !keys[l.key] {
			keys[l.key] = true
			g.laneKeys = append(g.laneKeys, l.key)
		}
	}
	sort.Strings(g.laneKeys)
	return g, nil
}

func compileRule(name string, r *Rule) *rule {
	cr := &rule{name: name, routes: make([]route, len(r.Routes))}
	// The distinct tests of all routes, numbered cheapest first, and the
	// distinct keys they read, each of which gets a lookup slot.
	type testKey struct {
		bag   bool
		key   string
		op    uint8
		value string
	}
	var tests []matcher
	index := map[testKey]int{}
	perRoute := make([][]int, len(r.Routes)) // indexes into tests, before sorting
	for i := range r.Routes {
		if m := r.Routes[i].Match; m != nil {
			all := append(compileMatches(m.Headers, false), compileMatches(m.Baggage, true)...)
			for _, t := range all {
				k := testKey{t.bag, t.key, t.op, t.value + "\x00" + t.src}
				j, ok := index[k]
				if !ok {
					j = len(tests)
					index[k] = j
					tests = append(tests, t)
				}
				perRoute[i] = append(perRoute[i], j)
			}
		}
	}
	order := make([]int, len(tests)) // order[new] = old
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return tests[order[a]].op < tests[order[b]].op })
	renum := make([]int, len(tests)) // renum[old] = new
	cr.tests = make([]matcher, len(tests))
	type slotKey struct {
		bag bool
		key string
	}
	slots := map[slotKey]int{}
	slotOf := func(bag bool, key string) int { // -1 past maxSlots
		k := slotKey{bag, key}
		if s, ok := slots[k]; ok {
			return s
		}
		if len(slots) >= maxSlots {
			return -1
		}
		slots[k] = len(slots)
		return slots[k]
	}
	for n, o := range order {
		renum[o] = n
		t := tests[o]
		t.slot = slotOf(t.bag, t.key)
		cr.tests[n] = t
	}
	cr.keys = make([]keyTests, len(slots))
	for sk, i := range slots {
		cr.keys[i].key, cr.keys[i].bag = sk.key, sk.bag
	}
	for n := range cr.tests {
		t := &cr.tests[n]
		if n >= 64 {
			break
		}
		if t.slot >= 0 {
			k := &cr.keys[t.slot]
			switch t.op {
			case opPresent:
				k.present |= 1 << n
			case opAbsent:
				k.absent |= 1 << n
			default:
				k.valued |= 1 << n
			}
		}
		if t.op == opPrefix {
			t.implyHeld, t.implyFailed, t.failImplies = prefixImplications(cr.tests, n)
		}
		if t.op != opExact {
			continue
		}
		if t.slot >= 0 {
			k := &cr.keys[t.slot]
			k.exactAll |= 1 << n
			k.exact = append(k.exact, exactTest{t.value, n})
		}
		for n2 := range cr.tests[:min(len(cr.tests), 64)] {
			t2 := &cr.tests[n2]
			if n2 == n || t2.bag != t.bag || t2.key != t.key {
				continue
			}
			if t2.test(t.value, true) {
				t.implyHeld |= 1 << n2
			} else {
				t.implyFailed |= 1 << n2
			}
		}
	}
	var last [64]int // by test: the last route that needs it
	for i := range perRoute {
		for _, o := range perRoute[i] {
			if n := renum[o]; n < 64 {
				last[n] = i
			}
		}
	}
	for n := range cr.tests[:min(len(cr.tests), 64)] {
		if t := &cr.tests[n]; t.slot >= 0 {
			if p, ok := probeOf(t); ok {
				p.fails = 1<<n | t.failImplies
				for f := p.fails; f != 0; f &= f - 1 {
					p.route = max(p.route, last[bits.TrailingZeros64(f)])
				}
				k := &cr.keys[t.slot]
				k.probes = append(k.probes, p)
			}
		}
	}
	for i := range cr.keys {
		ps := cr.keys[i].probes
		sort.SliceStable(ps, func(a, b int) bool { return ps[a].route > ps[b].route })
	}
	for i := range cr.keys {
		if k := &cr.keys[i]; len(k.exact) > maxExactScan {
			k.exactMap = make(map[string]int, len(k.exact))
			for _, e := range k.exact {
				k.exactMap[e.value] = e.test
			}
			k.exact = nil
		}
	}
	for i := range r.Routes {
		rt := &r.Routes[i]
		c := &cr.routes[i]
		c.name = routeName(rt, i)
		var pl plan
		if m := rt.Match; m != nil {
			c.methods = append([]string(nil), m.Method...)
			c.callers = append([]string(nil), m.Caller...)
			for _, k := range sortedKeys(m.CallerLabels) {
				c.callerLabels = append(c.callerLabels, label{k, m.CallerLabels[k]})
			}
			pl.cond = len(c.methods)+len(c.callers)+len(c.callerLabels) > 0
			for _, o := range perRoute[i] {
				n := renum[o]
				if n < 64 {
					pl.need |= 1 << n
				} else {
					c.more = append(c.more, n)
				}
				if s := cr.tests[n].slot; s >= 0 {
					pl.slots |= 1 << s
				}
			}
			sort.Ints(c.more)
		}
		cr.plan = append(cr.plan, pl)
		var total uint64
		for _, d := range rt.Destinations {
			total += uint64(d.Weight)
		}
		for _, d := range rt.Destinations {
			c.dests = append(c.dests, NewSubset(d.Name, d.Subset))
			w := uint64(d.Weight)
			if total == 0 {
				w = 1 // every weight 0: equal shares
			}
			c.total += w
			c.cum = append(c.cum, c.total)
		}
		if rt.Sticky != "" {
			c.sticky = strings.ToLower(rt.Sticky)
			c.stickySlot = slotOf(false, c.sticky)
		}
		if m := rt.Mirror; m != nil {
			c.mirror = &mirror{subset: NewSubset(m.Name, m.Subset), odds: oddsOf(percentOr(m.Percent, 100))}
		}
		if f := rt.Fault; f != nil {
			cf := &fault{server: f.Side == SideServer}
			if d := f.Delay; d != nil {
				cf.delay, cf.delayOdds = time.Duration(d.Fixed), oddsOf(percentOr(d.Percent, 100))
			}
			if a := f.Abort; a != nil {
				code, _ := status.ParseName(a.Code)
				cf.abort = status.Wrap(code, fmt.Sprintf("route: fault injected by rule %s, route %s", name, c.name), ErrInjected)
				cf.abortOdds = oddsOf(percentOr(a.Percent, 100))
			}
			c.fault = cf
		}
	}
	return cr
}

// probeOf returns the probe of a prefix or regex test; false for other
// tests, and for a regex without a literal prefix or suffix. A regex's
// probe tests the longer of the two.
func probeOf(t *matcher) (probe, bool) {
	lit, end := t.value, false
	switch t.op {
	case opPrefix:
	case opRegex:
		if len(t.suffix) >= len(lit) {
			lit, end = t.suffix, true
		}
	default:
		return probe{}, false
	}
	if lit == "" {
		return probe{}, false
	}
	return probe{n: len(lit), end: end, first: lit[0], last: lit[len(lit)-1]}, true
}

// prefixImplications returns what the result of the prefix test tests[n]
// tells of the other tests (of index < 64) on its key.
func prefixImplications(tests []matcher, n int) (held, failed, failIfFails uint64) {
	t := &tests[n]
	for n2 := range tests[:min(len(tests), 64)] {
		t2 := &tests[n2]
		if n2 == n || t2.bag != t.bag || t2.key != t.key {
			continue
		}
		bit := uint64(1) << n2
		switch t2.op {
		case opPresent:
			held |= bit
		case opAbsent:
			failed |= bit
		case opPrefix:
			switch {
			case strings.HasPrefix(t.value, t2.value):
				held |= bit
			case strings.HasPrefix(t2.value, t.value):
				failIfFails |= bit
			default:
				failed |= bit
			}
		case opExact:
			if strings.HasPrefix(t2.value, t.value) {
				failIfFails |= bit
			} else {
				failed |= bit
			}
		}
	}
	return held, failed, failIfFails
}

// compileMatches compiles validated matches of metadata (bag false) or
// baggage, cheapest first.
func compileMatches(ms []StringMatch, bag bool) []matcher {
	out := make([]matcher, 0, len(ms))
	for _, m := range ms {
		c := matcher{bag: bag, key: m.Key, slot: -1}
		if !bag {
			c.key = strings.ToLower(m.Key)
		}
		switch {
		case m.Present:
			c.op = opPresent
		case m.Absent:
			c.op = opAbsent
		case m.Exact != "":
			c.op, c.value = opExact, m.Exact
		case m.Prefix != "":
			c.op, c.value = opPrefix, m.Prefix
		default:
			re, _ := compileRegex(m.Regex) // validated
			prefix, complete := regexp.MustCompile(m.Regex).LiteralPrefix()
			// A literal needs no regex, unless it holds U+FFFD, which
			// package regexp also matches against each invalid byte.
			if complete && !strings.ContainsRune(prefix, utf8.RuneError) {
				c.op, c.value = opExact, prefix
				break
			}
			c.op, c.re, c.src = opRegex, re, m.Regex
			c.value, _ = re.LiteralPrefix()
			c.suffix = literalSuffix(m.Regex)
			if strings.ContainsRune(c.value+c.suffix, utf8.RuneError) {
				c.value, c.suffix = "", "" // a bad byte matches it: no byte checks
			}
			c.simple = compileSimple(m.Regex)
		}
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].op < out[j].op })
	return out
}

// literalSuffix returns a literal every whole match of expr ends with; ""
// when it finds none.
func literalSuffix(expr string) string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return ""
	}
	re = re.Simplify()
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	var suffix []rune
	for i := len(subs) - 1; i >= 0; i-- {
		s := subs[i]
		if s.Op == syntax.OpEndText && len(suffix) == 0 {
			continue
		}
		if s.Op != syntax.OpLiteral || s.Flags&syntax.FoldCase != 0 {
			break
		}
		suffix = append(append([]rune(nil), s.Rune...), suffix...)
	}
	return string(suffix)
}

func compileLane(l *Lane) *lane {
	cl := &lane{name: l.Name, key: l.Label.Key, value: l.Label.Value}
	if cl.key == "" {
		cl.key = "lane"
	}
	if cl.value == "" {
		cl.value = l.Name
	}
	if l.Mode == ModeStrict {
		cl.mode = Strict
	}
	cl.hashRange, cl.percentRange = span{empty: true}, span{empty: true}
	if in := l.Ingress; in != nil {
		cl.ingress = true
		cl.services = append([]string(nil), in.Services...)
		cl.headers = compileMatches(in.Headers, false)
		cl.cookies = append([]Cookie(nil), in.Cookies...)
		if in.Hash != nil {
			cl.hashKey = strings.ToLower(in.Hash.Key)
		}
	}
	return cl
}

// assignRanges gives each lane its share of the random draws and of the
// hash space of its hash key. ls and specs are in name order, one to one.
func assignRanges(ls []*lane, specs []Lane) error {
	const slack = 1e-9 // for float sums like 33.3 + 33.3 + 33.4
	var acc float64
	type hashed struct {
		lane     string
		from, to float64
	}
	byKey := map[string][]hashed{}
	next := map[string]float64{}
	for i, l := range ls {
		in := specs[i].Ingress
		if in == nil {
			continue
		}
		if in.Percent > 0 {
			if acc+in.Percent > 100+slack {
				return fmt.Errorf("route: Lane %s: %w", l.name, config.FieldErrors{{Path: "spec.ingress.percent",
					Reason: fmt.Sprintf("the lanes' ingress percents add up to more than 100 (%v before this lane, in name order)", acc)}})
			}
			l.percentRange = spanOf(acc, math.Min(acc+in.Percent, 100))
			acc += in.Percent
		}
		if h := in.Hash; h != nil {
			from := next[l.hashKey]
			if h.Offset != nil {
				from = *h.Offset
			}
			to := from + h.Percent
			if to > 100+slack {
				return fmt.Errorf("route: Lane %s: %w", l.name, config.FieldErrors{{Path: "spec.ingress.hash",
					Reason: fmt.Sprintf("the range [%v, %v) of the hash of %s ends past 100: the lanes before it (in name order) hashing that key take up to %v", from, to, h.Key, from)}})
			}
			for _, o := range byKey[l.hashKey] {
				if from < o.to-slack && o.from < to-slack {
					return fmt.Errorf("route: Lane %s: %w", l.name, config.FieldErrors{{Path: "spec.ingress.hash",
						Reason: fmt.Sprintf("the range [%v, %v) of the hash of %s overlaps lane %s's [%v, %v)", from, to, h.Key, o.lane, o.from, o.to)}})
				}
			}
			byKey[l.hashKey] = append(byKey[l.hashKey], hashed{l.name, from, to})
			next[l.hashKey] = math.Max(next[l.hashKey], to)
			l.hashRange = spanOf(from, math.Min(to, 100))
		}
	}
	return nil
}
