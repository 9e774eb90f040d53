package route_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicerpc/sluice/route"
)

// benchRule is 20 routes of 5 header matches each over the same 5 keys,
// exact, prefix and regex mixed (2, 2 and 1). Each route holds the call's
// value on 4 of its keys and differs on one, which moves from key to key
// (so routes fail on an exact, a prefix or a regex test in turn, after
// passing the others); only the last route matches the call. With allRegex
// every match is a regex instead; with distinct every route differs from
// the call on all 5 keys.
func benchRule(allRegex, distinct bool) (route.Rule, map[string]string) {
	const routes, keys = 20, 5
	ops := []string{"exact", "prefix", "regex", "exact", "prefix"}
	md := map[string]string{}
	for j := range keys {
		md[fmt.Sprint("x-key-", j)] = fmt.Sprintf("v%d-r%d", j, routes-1)
	}
	r := route.Rule{Name: "bench", Service: svc}
	for i := range routes {
		rt := route.Route{Name: fmt.Sprint("r", i), Destinations: []route.Destination{{Subset: map[string]string{"version": fmt.Sprint("v", i)}}}}
		rt.Match = &route.Match{}
		for j := range keys {
			val := fmt.Sprintf("v%d-r%d", j, routes-1) // the call's
			if (distinct || j == i%keys) && i < routes-1 {
				val = fmt.Sprintf("v%d-own%d", j, i) // this route's own
			}
			m := route.StringMatch{Key: fmt.Sprint("X-Key-", j)}
			op := ops[j]
			if allRegex {
				op = "regex"
			}
			switch op {
			case "exact":
				m.Exact = val
			case "prefix":
				m.Prefix = val
			case "regex":
				m.Regex = strings.Replace(val, fmt.Sprintf("v%d", j), "v[0-9]+", 1)
			}
			rt.Match.Headers = append(rt.Match.Headers, m)
		}
		r.Routes = append(r.Routes, rt)
	}
	return r, md
}

// BenchmarkDecide decides a call against 20 routes of 5 header matches; the
// route that matches is the last. Target: ≤ 300 ns/op, 0 allocs/op. Read
// the numbers against BenchmarkBaseline's on the same machine.
func BenchmarkDecide(b *testing.B) {
	for _, c := range []struct {
		name               string
		allRegex, distinct bool
	}{{"mixed", false, false}, {"distinct", false, true}, {"all-regex", true, false}} {
		b.Run(c.name, func(b *testing.B) {
			rule, md := benchRule(c.allRegex, c.distinct)
			tb, err := route.NewTable([]route.Rule{rule}, []route.Lane{{Name: "blue"}})
			if err != nil {
				b.Fatal(err)
			}
			get := func(k string) (string, bool) { v, ok := md[k]; return v, ok }
			bag := func(k string) (string, bool) { return "", false }
			in := route.Input{Service: svc, Method: "Get", Metadata: get, Baggage: bag}
			if d := tb.Decide(in); d.Route != "r19" {
				b.Fatalf("route %q, want r19", d.Route)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				in.Rand = uint64(i)
				tb.Decide(in)
			}
		})
	}
}

// BenchmarkBaseline is what any evaluation of BenchmarkDecide's call
// costs at least, to read its numbers by: looking up the call's 5
// metadata keys through its Lookup (one map access each), and, for scale,
// one regexp.MatchString of package regexp.
func BenchmarkBaseline(b *testing.B) {
	_, md := benchRule(false, false)
	get := func(k string) (string, bool) { v, ok := md[k]; return v, ok }
	keys := []string{"x-key-0", "x-key-1", "x-key-2", "x-key-3", "x-key-4"}
	b.Run("5-lookups", func(b *testing.B) {
		for b.Loop() {
			for _, k := range keys {
				get(k)
			}
		}
	})
	b.Run("regexp", func(b *testing.B) {
		re := regexp.MustCompile(`^(?:v[0-9]+-r19)$`)
		for b.Loop() {
			re.MatchString("v2-r19")
		}
	})
}

// BenchmarkDecideParallel is BenchmarkDecide's mixed rule on every core:
// Decide takes no lock, so it scales.
func BenchmarkDecideParallel(b *testing.B) {
	rule, md := benchRule(false, false)
	tb, err := route.NewTable([]route.Rule{rule}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		in := route.Input{Service: svc, Method: "Get", Metadata: func(k string) (string, bool) { v, ok := md[k]; return v, ok }}
		for pb.Next() {
			in.Rand++
			tb.Decide(in)
		}
	})
}

// BenchmarkIngress is the ingress of a call that joins no lane, past a
// header, a cookie, a hash range and a percentage.
func BenchmarkIngress(b *testing.B) {
	tb := table(b, `
apiVersion: sluice/v1
kind: Lane
metadata: {name: blue}
spec:
  ingress:
    headers: [{key: x-lane, exact: blue}]
    cookies: [{name: lane, value: blue}]
    hash: {key: x-user-id, percent: 5}
    percent: 5
`)
	md := map[string]string{"cookie": "session=abc; theme=dark; lane=green", "x-user-id": "user-42"}
	in := route.Input{Service: svc, Metadata: func(k string) (string, bool) { v, ok := md[k]; return v, ok }, Rand: ^uint64(0)}
	b.ReportAllocs()
	for b.Loop() {
		tb.Ingress(in)
	}
}
