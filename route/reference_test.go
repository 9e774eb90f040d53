package route_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicerpc/sluice/route"
)

// refMatch is the plain reading of a Match: every condition, in order.
func refMatch(m *route.Match, in route.Input) bool {
	if m == nil {
		return true
	}
	if len(m.Method) > 0 && !contains(m.Method, in.Method) {
		return false
	}
	if len(m.Caller) > 0 && !contains(m.Caller, in.Caller) {
		return false
	}
	for k, v := range m.CallerLabels {
		if got, ok := in.CallerLabels[k]; !ok || got != v {
			return false
		}
	}
	test := func(sm route.StringMatch, get route.Lookup, key string) bool {
		var v string
		var ok bool
		if get != nil {
			v, ok = get(key)
		}
		switch {
		case sm.Present:
			return ok
		case sm.Absent:
			return !ok
		case !ok:
			return false
		case sm.Exact != "":
			return v == sm.Exact
		case sm.Prefix != "":
			return strings.HasPrefix(v, sm.Prefix)
		}
		return regexp.MustCompile(`^(?:` + sm.Regex + `)$`).MatchString(v)
	}
	for _, h := range m.Headers {
		if !test(h, in.Metadata, strings.ToLower(h.Key)) {
			return false
		}
	}
	for _, b := range m.Baggage {
		if !test(b, in.Baggage, b.Key) {
			return false
		}
	}
	return true
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// TestDecideAgainstReference checks the compiled evaluation (shared tests
// run once, tests settled by a key's presence or by an exact value, lookup
// slots, rules past 64 tests and 16 keys) against the plain reading of
// the rules, on random rules and calls.
func TestDecideAgainstReference(t *testing.T) {
	r := rng(42)
	pick := func(n int) int { return int(r.next() % uint64(n)) }
	values := []string{"a", "ab", "abc", "b", "v1", "v12", "x-1"}
	regexes := []string{"a.*", "[ab]+", "v[0-9]+", "(a|b)c?", "(?i)AB", ".*1"}
	for round := range 300 {
		nkeys := 1 + pick(24) // past maxSlots sometimes
		nroutes := 1 + pick(40)
		key := func() string { return fmt.Sprint("K-", pick(nkeys)) }
		sm := func(k string) route.StringMatch {
			m := route.StringMatch{Key: k}
			switch pick(5) {
			case 0:
				m.Present = true
			case 1:
				m.Absent = true
			case 2:
				m.Exact = values[pick(len(values))]
			case 3:
				m.Prefix = values[pick(len(values))]
			default:
				m.Regex = regexes[pick(len(regexes))]
			}
			return m
		}
		rule := route.Rule{Service: svc}
		for i := range nroutes {
			rt := route.Route{Name: fmt.Sprint(i), Match: &route.Match{}}
			for range pick(6) {
				rt.Match.Headers = append(rt.Match.Headers, sm(key()))
			}
			for range pick(2) {
				rt.Match.Baggage = append(rt.Match.Baggage, sm(strings.ToLower(key())))
			}
			if pick(4) == 0 {
				rt.Match.Method = route.Names{"Get"}
			}
			if i == nroutes-1 || len(rt.Match.Headers)+len(rt.Match.Baggage)+len(rt.Match.Method) == 0 {
				rt.Match = nil
				if i < nroutes-1 {
					rt.Match = &route.Match{Method: route.Names{"Never"}}
				}
			}
			rule.Routes = append(rule.Routes, rt)
		}
		tb, err := route.NewTable([]route.Rule{rule}, nil)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for range 50 {
			md, bag := map[string]string{}, map[string]string{}
			for k := range nkeys {
				if pick(3) > 0 {
					md[fmt.Sprint("k-", k)] = values[pick(len(values))]
				}
				if pick(3) == 0 {
					bag[fmt.Sprint("k-", k)] = values[pick(len(values))]
				}
			}
			in := route.Input{
				Service:  svc,
				Method:   []string{"Get", "Put"}[pick(2)],
				Metadata: func(k string) (string, bool) { v, ok := md[k]; return v, ok },
				Baggage:  func(k string) (string, bool) { v, ok := bag[k]; return v, ok },
			}
			want := ""
			for i := range rule.Routes {
				if refMatch(rule.Routes[i].Match, in) {
					want = rule.Routes[i].Name
					break
				}
			}
			if got := tb.Decide(in).Route; got != want {
				t.Fatalf("round %d: route %q, want %q\nrule: %+v\nmetadata %v baggage %v method %s", round, got, want, rule, md, bag, in.Method)
			}
		}
	}
}
