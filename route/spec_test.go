package route_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/route"
)

func TestDecodeFullDocuments(t *testing.T) {
	rules, lanes := docs(t, `
apiVersion: sluice/v1
kind: RouteRule
metadata: {name: orders}
spec:
  service: shop.v1.OrderService
  routes:
  - name: testers
    match:
      method: Get
      headers: [{key: x-user-group, exact: testers}, {key: x-app, regex: "ios-[0-9]+"}]
      baggage: [{key: tenant, present: true}]
      caller: [shop.v1.Web, shop.v1.Cart]
      callerLabels: {zone: eu-1}
    destinations: [{subset: {version: v2}, name: canary}]
  - name: split
    sticky: x-user-id
    destinations:
    - {subset: {version: v1}, weight: 90}
    - {subset: {version: v2}, weight: 10}
    mirror: {subset: {version: v3}, percent: 5}
    fault:
      side: server
      delay: {fixed: 200ms, percent: 1}
      abort: {code: UNAVAILABLE, percent: 0.5}
---
apiVersion: sluice/v1
kind: Lane
metadata: {name: blue}
spec:
  label: {key: env, value: blue-env}
  mode: STRICT
  ingress:
    services: shop.v1.Gateway
    headers: [{key: x-lane, exact: blue}]
    cookies: [{name: lane, value: blue}]
    hash: {key: x-user-id, percent: 5, offset: 10}
    percent: 1
`)
	r := rules[0]
	if r.Name != "orders" || r.Service != svc || len(r.Routes) != 2 {
		t.Fatalf("rule: %+v", r)
	}
	m := r.Routes[0].Match
	if len(m.Method) != 1 || m.Method[0] != "Get" || len(m.Caller) != 2 || m.Headers[1].Regex != "ios-[0-9]+" || !m.Baggage[0].Present || m.CallerLabels["zone"] != "eu-1" {
		t.Errorf("match: %+v", m)
	}
	s := r.Routes[1]
	if s.Sticky != "x-user-id" || s.Destinations[1].Weight != 10 || *s.Mirror.Percent != 5 || s.Fault.Side != "server" ||
		time.Duration(s.Fault.Delay.Fixed) != 200*time.Millisecond || *s.Fault.Abort.Percent != 0.5 {
		t.Errorf("split route: %+v", s)
	}
	l := lanes[0]
	if l.Name != "blue" || l.Label.Key != "env" || l.Mode != route.ModeStrict || l.Ingress.Services[0] != "shop.v1.Gateway" ||
		*l.Ingress.Hash.Offset != 10 || l.Ingress.Percent != 1 || l.Ingress.Cookies[0].Value != "blue" {
		t.Errorf("lane: %+v", l)
	}
	tb, err := route.NewTable(rules, lanes)
	if err != nil {
		t.Fatal(err)
	}
	if got := tb.Rules(); len(got) != 1 || got[0].Name != "orders" {
		t.Errorf("Rules() = %+v", got)
	}
	if got := tb.Lanes(); len(got) != 1 || got[0].Name != "blue" {
		t.Errorf("Lanes() = %+v", got)
	}
}

// TestBadDocuments: every bad document is rejected with the path of the
// field at fault and a reason.
func TestBadDocuments(t *testing.T) {
	rule := func(spec string) string {
		return "apiVersion: sluice/v1\nkind: RouteRule\nmetadata: {name: r}\nspec:\n" + spec
	}
	laneDoc := func(spec string) string {
		return "apiVersion: sluice/v1\nkind: Lane\nmetadata: {name: blue}\nspec:\n" + spec
	}
	routes := func(r string) string { return rule("  service: a.B\n  routes:\n" + r) }
	cases := []struct {
		name, doc, path, reason string
	}{
		{"no service", rule("  routes: [{name: a}]\n"), "spec.service", "required"},
		{"bad service", rule("  service: /a.B/C\n"), "spec.service", "service name"},
		{"bad regex", routes("  - match: {headers: [{key: x, regex: \"v[0-9\"}]}\n"), "spec.routes[0].match.headers[0].regex", "missing closing ]"},
		{"two operators", routes("  - match: {headers: [{key: x, exact: a, prefix: b}]}\n"), "spec.routes[0].match.headers[0]", "exactly one of"},
		{"no operator", routes("  - match: {headers: [{key: x}]}\n"), "spec.routes[0].match.headers[0]", "exactly one of"},
		{"no key", routes("  - match: {headers: [{exact: a}]}\n"), "spec.routes[0].match.headers[0].key", "required"},
		{"bad header key", routes("  - match: {headers: [{key: \"a b\", exact: a}]}\n"), "spec.routes[0].match.headers[0].key", "metadata key"},
		{"bad baggage key", routes("  - match: {baggage: [{key: \"a/b\", exact: a}]}\n"), "spec.routes[0].match.baggage[0].key", "W3C baggage key"},
		{"bad baggage regex", routes("  - match: {baggage: [{key: a, regex: \"(\"}]}\n"), "spec.routes[0].match.baggage[0].regex", "missing closing )"},
		{"bad method", routes("  - match: {method: a.Get}\n"), "spec.routes[0].match.method", "method name"},
		{"bad method in list", routes("  - match: {method: [Get, \"\"]}\n"), "spec.routes[0].match.method[1]", "method name"},
		{"method of the wrong type", routes("  - match: {method: 3}\n"), "spec.routes[0].match.method", "a name or a list of names"},
		{"bad caller", routes("  - match: {caller: \"a b\"}\n"), "spec.routes[0].match.caller", "service name"},
		{"negative weight", routes("  - destinations: [{subset: {v: a}, weight: 1}, {subset: {v: b}, weight: -1}]\n"), "spec.routes[0].destinations[1].weight", "from 0 to"},
		{"huge weight", routes("  - destinations: [{subset: {v: a}, weight: 2000000}]\n"), "spec.routes[0].destinations[0].weight", "from 0 to"},
		{"weight of the wrong type", routes("  - destinations: [{subset: {v: a}, weight: \"10%\"}]\n"), "spec.routes[0].destinations[0].weight", "integer"},
		{"same subset twice", routes("  - destinations: [{subset: {v: a}, name: x}, {subset: {v: a}, name: y}]\n"), "spec.routes[0].destinations[1].subset", "same subset"},
		{"same destination name", routes("  - destinations: [{subset: {v: a}, name: x}, {subset: {v: b}, name: x}]\n"), "spec.routes[0].destinations[1].name", "also the name"},
		{"bad subset label", routes("  - destinations: [{subset: {\"a=b\": c}}]\n"), "spec.routes[0].destinations[0].subset", "label key"},
		{"misspelt field", routes("  - destinations: [{subset: {v: a}, wieght: 1}]\n"), "spec.routes[0].destinations[0].wieght", `did you mean "weight"`},
		{"duplicate route names", routes("  - {name: a, match: {method: Get}}\n  - {name: a}\n"), "spec.routes[1].name", "also the name of routes[0]"},
		{"default name taken", routes("  - {name: route-1, match: {method: Get}}\n  - {}\n"), "spec.routes[1].name", "also the name of routes[0]"},
		{"default route not last", routes("  - {name: a}\n  - {name: b, match: {method: Get}}\n"), "spec.routes[0].match", "must be the last"},
		{"mirror percent out of range", routes("  - mirror: {subset: {v: s}, percent: 150}\n"), "spec.routes[0].mirror.percent", "from 0 to 100"},
		{"mirror negative percent", routes("  - mirror: {subset: {v: s}, percent: -1}\n"), "spec.routes[0].mirror.percent", "from 0 to 100"},
		{"mirror without subset", routes("  - mirror: {percent: 10}\n"), "spec.routes[0].mirror.subset", "required"},
		{"fault delay percent", routes("  - fault: {delay: {fixed: 1s, percent: 101}}\n"), "spec.routes[0].fault.delay.percent", "from 0 to 100"},
		{"fault delay missing", routes("  - fault: {delay: {percent: 10}}\n"), "spec.routes[0].fault.delay.fixed", "required"},
		{"fault delay too long", routes("  - fault: {delay: {fixed: 2h}}\n"), "spec.routes[0].fault.delay.fixed", "at most 1h"},
		{"fault delay not a duration", routes("  - fault: {delay: {fixed: 10}}\n"), "spec.routes[0].fault.delay.fixed", "duration"},
		{"unknown abort code", routes("  - fault: {abort: {code: EXPLODED}}\n"), "spec.routes[0].fault.abort.code", "not a status code name"},
		{"abort with OK", routes("  - fault: {abort: {code: OK}}\n"), "spec.routes[0].fault.abort.code", "OK is not a failure"},
		{"abort percent", routes("  - fault: {abort: {code: INTERNAL, percent: 100.5}}\n"), "spec.routes[0].fault.abort.percent", "from 0 to 100"},
		{"fault side", routes("  - fault: {side: both, abort: {code: INTERNAL}}\n"), "spec.routes[0].fault.side", "client or server"},
		{"empty fault", routes("  - fault: {side: client}\n"), "spec.routes[0].fault", "neither delay nor abort"},
		{"bad sticky", routes("  - sticky: \"a b\"\n"), "spec.routes[0].sticky", "metadata key"},

		{"lane name", laneDoc("  name: \"-blue\"\n"), "spec.name", "letters, digits"},
		{"lane mode", laneDoc("  mode: strict\n"), "spec.mode", "PERMISSIVE or STRICT"},
		{"lane label", laneDoc("  label: {key: \"a,b\"}\n"), "spec.label.key", "must not hold"},
		{"ingress percent", laneDoc("  ingress: {percent: 120}\n"), "spec.ingress.percent", "from 0 to 100"},
		{"ingress hash percent", laneDoc("  ingress: {hash: {key: x-user, percent: 0}}\n"), "spec.ingress.hash.percent", "above 0"},
		{"ingress hash offset", laneDoc("  ingress: {hash: {key: x-user, percent: 20, offset: 90}}\n"), "spec.ingress.hash.offset", "from 0 to 100 - percent"},
		{"ingress hash key", laneDoc("  ingress: {hash: {percent: 20}}\n"), "spec.ingress.hash.key", "required"},
		{"ingress cookie", laneDoc("  ingress: {cookies: [{name: lane}]}\n"), "spec.ingress.cookies[0].value", "required"},
		{"ingress header", laneDoc("  ingress: {headers: [{key: x-lane, regex: \"[\"}]}\n"), "spec.ingress.headers[0].regex", "missing closing ]"},
		{"ingress without condition", laneDoc("  ingress: {services: a.B}\n"), "spec.ingress", "sets no condition"},
		{"ingress services", laneDoc("  ingress: {services: [\"a/b\"], percent: 1}\n"), "spec.ingress.services", "service name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds, err := config.Parse([]byte(c.doc))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			_, err = config.Decode(ds[0])
			var ie *config.InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("Decode: %v, want an *InvalidError", err)
			}
			for _, fe := range ie.Fields {
				if fe.Path == c.path && strings.Contains(fe.Reason, c.reason) {
					if fe.Line == 0 {
						t.Errorf("%s: no line", fe.Path)
					}
					return
				}
			}
			t.Errorf("got %v\nwant %s: ...%s...", err, c.path, c.reason)
		})
	}
}

// TestUpdateKeepsOldRules: Update checks everything first; a bad set,
// whether one document is bad or the documents do not fit together, leaves
// the rules in force as they were.
func TestUpdateKeepsOldRules(t *testing.T) {
	good := func(v string) route.Rule {
		return route.Rule{Name: "r", Service: svc, Routes: []route.Route{{Name: v, Destinations: []route.Destination{{Subset: map[string]string{"version": v}}}}}}
	}
	tb, err := route.NewTable([]route.Rule{good("v1")}, []route.Lane{{Name: "blue"}})
	if err != nil {
		t.Fatal(err)
	}
	pct := func(f float64) *float64 { return &f }
	cases := []struct {
		name   string
		rules  []route.Rule
		lanes  []route.Lane
		prefix string // of the error
		path   string
	}{
		{"bad regex", []route.Rule{good("v2"), {Service: "a.B", Routes: []route.Route{{Match: &route.Match{Headers: []route.StringMatch{{Key: "x", Regex: "("}}}}}}},
			nil, "route: RouteRule a.B: ", "spec.routes[0].match.headers[0].regex"},
		{"two rules for one service", []route.Rule{good("v2"), good("v3")}, nil, "route: RouteRule r: ", "spec.service"},
		{"mirror percent", []route.Rule{{Service: svc, Routes: []route.Route{{Mirror: &route.Mirror{Subset: map[string]string{"v": "s"}, Percent: pct(-5)}}}}},
			nil, "route: RouteRule " + svc + ": ", "spec.routes[0].mirror.percent"},
		{"lane without name", []route.Rule{good("v2")}, []route.Lane{{}}, "route: Lane #1: ", "spec.name"},
		{"two lanes of one name", []route.Rule{good("v2")}, []route.Lane{{Name: "a"}, {Name: "a"}}, "route: Lane a: ", "spec.name"},
		{"two lanes of one label", []route.Rule{good("v2")}, []route.Lane{{Name: "a", Label: route.Label{Value: "x"}}, {Name: "b", Label: route.Label{Value: "x"}}}, "route: Lane ", "spec.label"},
		{"percents past 100", []route.Rule{good("v2")}, []route.Lane{{Name: "a", Ingress: &route.Ingress{Percent: 60}}, {Name: "b", Ingress: &route.Ingress{Percent: 50}}}, "route: Lane b: ", "spec.ingress.percent"},
		{"hash ranges overlap", []route.Rule{good("v2")}, []route.Lane{
			{Name: "a", Ingress: &route.Ingress{Hash: &route.HashRange{Key: "x-user", Percent: 30}}},
			{Name: "b", Ingress: &route.Ingress{Hash: &route.HashRange{Key: "X-User", Percent: 30, Offset: pct(20)}}}}, "route: Lane b: ", "spec.ingress.hash"},
		{"hash ranges past 100", []route.Rule{good("v2")}, []route.Lane{
			{Name: "a", Ingress: &route.Ingress{Hash: &route.HashRange{Key: "x-user", Percent: 60}}},
			{Name: "b", Ingress: &route.Ingress{Hash: &route.HashRange{Key: "x-user", Percent: 60}}}}, "route: Lane b: ", "spec.ingress.hash"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := tb.Update(c.rules, c.lanes)
			if err == nil {
				t.Fatal("Update accepted a bad set")
			}
			var fes config.FieldErrors
			if !strings.HasPrefix(err.Error(), c.prefix) || !errors.As(err, &fes) || fes[0].Path != c.path {
				t.Errorf("error %q, want prefix %q and path %s", err, c.prefix, c.path)
			}
			if d := tb.Decide(route.Input{Service: svc}); d.Route != "v1" {
				t.Errorf("after a rejected update the route is %q, want v1", d.Route)
			}
			if ls := tb.Lanes(); len(ls) != 1 || ls[0].Name != "blue" {
				t.Errorf("after a rejected update the lanes are %+v", ls)
			}
		})
	}
	// Lane hash ranges of different keys may overlap; ranges of one key
	// are laid out one after another.
	if err := tb.Update(nil, []route.Lane{
		{Name: "a", Ingress: &route.Ingress{Hash: &route.HashRange{Key: "x-user", Percent: 50}, Percent: 50}},
		{Name: "b", Ingress: &route.Ingress{Hash: &route.HashRange{Key: "x-user", Percent: 50}, Percent: 50}},
		{Name: "c", Ingress: &route.Ingress{Hash: &route.HashRange{Key: "x-device", Percent: 100}}},
	}); err != nil {
		t.Errorf("full ranges refused: %v", err)
	}
}

func TestNamesRoundTrip(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"method: Get", "[Get]"},
		{"method: [Get, List]", "[Get List]"},
		{"method: null", "[]"},
	} {
		rules, _ := docs(t, fmt.Sprintf("apiVersion: sluice/v1\nkind: RouteRule\nmetadata: {name: r}\nspec:\n  service: a.B\n  routes: [{match: {%s}}]\n", c.yaml))
		if got := fmt.Sprint([]string(rules[0].Routes[0].Match.Method)); got != c.want {
			t.Errorf("%s: %s, want %s", c.yaml, got, c.want)
		}
	}
}
