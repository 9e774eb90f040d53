package route_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/route"
)

var fuzzSeeds = []string{
	`apiVersion: sluice/v1
kind: RouteRule
metadata: {name: r}
spec:
  service: a.B
  routes:
  - name: x
    match: {method: [Get], headers: [{key: x-a, regex: "v[0-9]+"}, {key: x-b, prefix: p}], baggage: [{key: t, exact: "1"}], caller: c.D, callerLabels: {z: "1"}}
    sticky: x-user
    destinations: [{subset: {v: "1"}, weight: 3}, {subset: {v: "2"}, weight: 1}]
    mirror: {subset: {v: "3"}, percent: 50}
    fault: {side: client, delay: {fixed: 1ms, percent: 10}, abort: {code: UNAVAILABLE, percent: 10}}
  - {name: y}
`,
	`apiVersion: sluice/v1
kind: Lane
metadata: {name: blue}
spec:
  mode: STRICT
  label: {key: env, value: b}
  ingress: {headers: [{key: x-lane, exact: blue}], cookies: [{name: lane, value: blue}], hash: {key: x-user, percent: 10, offset: 5}, percent: 5}
`,
	`{"apiVersion":"sluice/v1","kind":"RouteRule","metadata":{"name":"j"},"spec":{"service":"a.B","routes":[{"match":{"method":"Get"}}]}}`,
	"apiVersion: sluice/v1\nkind: RouteRule\nmetadata: {name: r}\nspec: {service: a.B, routes: [{match: {headers: [{key: k, regex: \"\\\\Q)$\"}]}}]}\n",
}

// FuzzDocuments runs arbitrary documents through the decoder, the Table
// and a few decisions: nothing panics, a document the decoder accepts on
// its own is accepted by a Table on its own, and errors say where they
// come from.
func FuzzDocuments(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), "Get", "v12", "blue")
	}
	ins := []discovery.Instance{
		{Addr: "1", Labels: map[string]string{"v": "1"}},
		{Addr: "2", Labels: map[string]string{"v": "2", "lane": "blue"}},
		{Addr: "3", Labels: map[string]string{"env": "b"}},
	}
	f.Fuzz(func(t *testing.T, data []byte, method, value, laneName string) {
		docs, err := config.Parse(data)
		if err != nil {
			return
		}
		var rules []route.Rule
		var lanes []route.Lane
		for _, d := range docs {
			spec, err := config.Decode(d)
			if err != nil {
				if !errors.Is(err, config.ErrInvalid) {
					t.Fatalf("Decode error %v is not ErrInvalid", err)
				}
				continue
			}
			switch s := spec.(type) {
			case *route.Rule:
				r := *s
				r.Name = d.Metadata.Name
				if _, err := route.NewTable([]route.Rule{r}, nil); err != nil {
					t.Fatalf("a rule the decoder accepts is refused: %v", err)
				}
				rules = append(rules, r)
			case *route.Lane:
				l := *s
				if l.Name == "" {
					l.Name = d.Metadata.Name
				}
				if _, err := route.NewTable(nil, []route.Lane{l}); err != nil {
					t.Fatalf("a lane the decoder accepts is refused: %v", err)
				}
				lanes = append(lanes, l)
			}
		}
		tb, err := route.NewTable(rules, lanes)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "route: ") {
				t.Fatalf("error %q does not start with route:", err)
			}
			return
		}
		get := func(string) (string, bool) { return value, true }
		for i, in := range []route.Input{
			{Service: "a.B", Method: method, Metadata: get, Baggage: get, Caller: "c.D", CallerLabels: map[string]string{"z": "1"}},
			{Service: "a.B", Method: method, Baggage: func(string) (string, bool) { return laneName, true }, Rand: ^uint64(0)},
			{Service: "a.B", Method: method, Side: callinfo.Server, Metadata: get, Rand: uint64(len(value)) << 60},
		} {
			d := tb.Decide(in)
			route.Select(ins, d)
			if m, ok := d.MirrorTarget(); ok {
				route.Select(ins, m)
			}
			if i == 1 {
				tb.Ingress(in)
			}
		}
	})
}

// FuzzDecide decides calls with arbitrary methods, metadata, baggage and
// randomness against a rule using every kind of match: nothing panics, and
// the decision is one the rule can make, the same every time for the same
// input.
func FuzzDecide(f *testing.F) {
	tb := table(f, fuzzSeeds[0]+"---\n"+fuzzSeeds[1])
	f.Add("Get", "c.D", "v1", "pq", "1", "u", uint64(0))
	f.Add("Put", "", "", "", "", "", ^uint64(0))
	f.Add("Get", "c.D", "v12", "p", "1", "user-42", uint64(1)<<63)
	f.Fuzz(func(t *testing.T, method, caller, a, b, bag, user string, rnd uint64) {
		md := map[string]string{"x-a": a, "x-b": b, "x-user": user, "x-lane": bag, "cookie": a}
		in := route.Input{
			Service: "a.B", Method: method, Caller: caller, CallerLabels: map[string]string{"z": "1"}, Rand: rnd,
			Metadata: func(k string) (string, bool) { v, ok := md[k]; return v, ok && v != "" },
			Baggage:  func(k string) (string, bool) { return bag, bag != "" },
		}
		d := tb.Decide(in)
		if d2 := tb.Decide(in); d2.Route != d.Route || d2.Subset.Key != d.Subset.Key || (d2.Mirror == nil) != (d.Mirror == nil) || d2.Delay != d.Delay || (d2.Abort == nil) != (d.Abort == nil) {
			t.Fatalf("two decisions for one input: %+v, %+v", d, d2)
		}
		switch d.Route {
		case "x":
			if d.Subset.Key != "v=1" && d.Subset.Key != "v=2" {
				t.Fatalf("subset %q", d.Subset.Key)
			}
		case "y":
			if d.Subset.Key != "" || d.Mirror != nil || d.Delay != 0 || d.Abort != nil {
				t.Fatalf("route y decided %+v", d)
			}
		default:
			t.Fatalf("route %q", d.Route)
		}
		if d.Lane != "" && d.Lane != "blue" {
			t.Fatalf("lane %q", d.Lane)
		}
		if l, ok := tb.Ingress(in); ok != (l != "") || ok && l != "blue" {
			t.Fatalf("Ingress = %q %v", l, ok)
		}
	})
}
