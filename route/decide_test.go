package route_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/callinfo"
	"github.com/sluicerpc/sluice/route"
	"github.com/sluicerpc/sluice/status"
)

// TestMatch runs one route with one match against calls: whether the route
// takes the call, for every kind of condition.
func TestMatch(t *testing.T) {
	type call struct {
		method, caller string
		callerLabels   map[string]string
		md, bag        route.Lookup
		want           bool
	}
	cases := []struct {
		name  string
		match string // YAML of the match
		calls []call
	}{
		{"method", `{method: Get}`, []call{
			{method: "Get", want: true}, {method: "List"}, {method: "get"}}},
		{"method list", `{method: [Get, List]}`, []call{
			{method: "Get", want: true}, {method: "List", want: true}, {method: "Put"}}},
		{"header exact", `{headers: [{key: x-user, exact: alice}]}`, []call{
			{md: kv("x-user", "alice"), want: true}, {md: kv("x-user", "alice2")}, {md: kv("x-other", "alice")}, {}}},
		{"header key matched in lower case", `{headers: [{key: X-User, exact: alice}]}`, []call{
			{md: kv("x-user", "alice"), want: true}}},
		{"header prefix", `{headers: [{key: x-app, prefix: ios-}]}`, []call{
			{md: kv("x-app", "ios-17"), want: true}, {md: kv("x-app", "ios-"), want: true}, {md: kv("x-app", "android-1")}, {md: kv("x-app", "ios")}}},
		{"header regex anchored", `{headers: [{key: x-v, regex: "v[0-9]+"}]}`, []call{
			{md: kv("x-v", "v12"), want: true}, {md: kv("x-v", "v12x")}, {md: kv("x-v", "xv1")}, {md: kv("x-v", "")}, {}}},
		{"header regex literal", `{headers: [{key: x-v, regex: beta}]}`, []call{
			{md: kv("x-v", "beta"), want: true}, {md: kv("x-v", "betas")}}},
		// U+FFFD in a regex matches each invalid byte, as in package
		// regexp: such a literal is no exact match, nor a byte prefix.
		{"header regex literal with U+FFFD", "{headers: [{key: x-v, regex: \"a\\uFFFD\"}]}", []call{
			{md: kv("x-v", "a\xff"), want: true}, {md: kv("x-v", "a\uFFFD"), want: true}, {md: kv("x-v", "ab")}}},
		{"header regex with U+FFFD and a class", "{headers: [{key: x-v, regex: \"\\uFFFD[0-9]+\\uFFFD\"}]}", []call{
			{md: kv("x-v", "\xfe12\xff"), want: true}, {md: kv("x-v", "x12\xff")}}},
		{"header regex alternation with a common prefix", `{headers: [{key: x-v, regex: "ab(c|d)"}]}`, []call{
			{md: kv("x-v", "abc"), want: true}, {md: kv("x-v", "abd"), want: true}, {md: kv("x-v", "abe")}}},
		{"header regex case-insensitive", `{headers: [{key: x-v, regex: "(?i)beta-.*"}]}`, []call{
			{md: kv("x-v", "BETA-1"), want: true}, {md: kv("x-v", "alpha")}}},
		{"header present", `{headers: [{key: x-debug, present: true}]}`, []call{
			{md: kv("x-debug", ""), want: true}, {md: kv("x-debug", "1"), want: true}, {md: kv("x-other", "1")}, {}}},
		{"header absent", `{headers: [{key: x-debug, absent: true}]}`, []call{
			{md: kv("x-debug", "1")}, {md: kv("x-other", "1"), want: true}, {want: true}}},
		{"headers all hold", `{headers: [{key: a, exact: "1"}, {key: b, regex: "[0-9]"}, {key: c, absent: true}]}`, []call{
			{md: kv("a", "1", "b", "2"), want: true}, {md: kv("a", "1", "b", "x")}, {md: kv("a", "1", "b", "2", "c", "")}, {md: kv("b", "2")}}},
		{"baggage exact", `{baggage: [{key: tenant, exact: acme}]}`, []call{
			{bag: kv("tenant", "acme"), want: true}, {bag: kv("tenant", "other")}, {md: kv("tenant", "acme")}, {}}},
		{"baggage prefix and present", `{baggage: [{key: Tenant, prefix: ac}, {key: region, present: true}]}`, []call{
			{bag: kv("Tenant", "acme", "region", "eu"), want: true}, {bag: kv("tenant", "acme", "region", "eu")}, {bag: kv("Tenant", "acme")}}},
		{"baggage absent", `{baggage: [{key: sluice-lane, absent: true}]}`, []call{
			{bag: lane("blue")}, {want: true}}},
		{"caller", `{caller: shop.v1.CartService}`, []call{
			{caller: "shop.v1.CartService", want: true}, {caller: "shop.v1.Other"}, {}}},
		{"caller list", `{caller: [a.A, b.B]}`, []call{
			{caller: "a.A", want: true}, {caller: "b.B", want: true}, {caller: "c.C"}}},
		{"caller labels", `{callerLabels: {zone: eu-1, env: prod}}`, []call{
			{callerLabels: map[string]string{"zone": "eu-1", "env": "prod", "x": "y"}, want: true},
			{callerLabels: map[string]string{"zone": "eu-1"}}, {callerLabels: map[string]string{"zone": "eu-2", "env": "prod"}}, {}}},
		{"everything", `{method: Get, caller: a.A, callerLabels: {zone: z}, headers: [{key: h, exact: v}], baggage: [{key: b, exact: v}]}`, []call{
			{method: "Get", caller: "a.A", callerLabels: map[string]string{"zone": "z"}, md: kv("h", "v"), bag: kv("b", "v"), want: true},
			{method: "Get", caller: "a.A", callerLabels: map[string]string{"zone": "z"}, md: kv("h", "v"), bag: kv("b", "w")},
			{method: "Get", caller: "a.A", md: kv("h", "v"), bag: kv("b", "v")},
			{method: "Put", caller: "a.A", callerLabels: map[string]string{"zone": "z"}, md: kv("h", "v"), bag: kv("b", "v")}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := table(t, fmt.Sprintf(`
apiVersion: sluice/v1
kind: RouteRule
metadata: {name: r}
spec:
  service: %s
  routes:
  - {name: m, match: %s}
  - {name: rest}
`, svc, c.match))
			for i, k := range c.calls {
				d := tb.Decide(route.Input{Service: svc, Method: k.method, Caller: k.caller, CallerLabels: k.callerLabels, Metadata: k.md, Baggage: k.bag})
				if got := d.Route == "m"; got != k.want {
					t.Errorf("call %d (%+v): route %q, want match %v", i, k, d.Route, k.want)
				}
				if d.Rule != "r" {
					t.Errorf("call %d: rule %q", i, d.Rule)
				}
			}
		})
	}
}

func TestFirstMatchWins(t *testing.T) {
	tb := table(t, `
apiVersion: sluice/v1
kind: RouteRule
metadata: {name: orders}
spec:
  service: shop.v1.OrderService
  routes:
  - name: vip
    match: {headers: [{key: x-user, prefix: vip-}]}
    destinations: [{subset: {version: v3}}]
  - name: alice
    match: {headers: [{key: x-user, exact: vip-alice}]}   # shadowed by vip
    destinations: [{subset: {version: v9}}]
  - name: gets
    match: {method: Get}
    destinations: [{subset: {version: v2}, name: canary}]
  - name: default
    destinations: [{subset: {version: v1}}]
`)
	for _, c := range []struct {
		method, user       string
		route, subset, key string
	}{
		{"Get", "vip-alice", "vip", "version=v3", "version=v3"},
		{"Put", "vip-bob", "vip", "version=v3", "version=v3"},
		{"Get", "bob", "gets", "canary", "version=v2"},
		{"Put", "bob", "default", "version=v1", "version=v1"},
		{"Put", "", "default", "version=v1", "version=v1"},
	} {
		d := tb.Decide(route.Input{Service: svc, Method: c.method, Metadata: kv("x-user", c.user)})
		if d.Route != c.route || d.Subset.Name != c.subset || d.Subset.Key != c.key {
			t.Errorf("%s as %q: route %q subset %q (%q), want %q %q (%q)", c.method, c.user, d.Route, d.Subset.Name, d.Subset.Key, c.route, c.subset, c.key)
		}
	}
}

func TestNoRuleOrNoMatch(t *testing.T) {
	tb := table(t, `
apiVersion: sluice/v1
kind: RouteRule
metadata: {name: orders}
spec:
  service: shop.v1.OrderService
  routes:
  - match: {method: Get}
    destinations: [{subset: {version: v2}}]
`)
	// Another service: no rule at all.
	if d := tb.Decide(route.Input{Service: "other.Service", Method: "Get"}); d.Rule != "" || d.Route != "" || d.Subset.Key != "" {
		t.Errorf("no rule: %+v", d)
	}
	// No route matches: all instances.
	d := tb.Decide(route.Input{Service: svc, Method: "Put"})
	if d.Rule != "orders" || d.Route != "" || d.Subset.Key != "" || d.Subset.Name != "" {
		t.Errorf("no match: %+v", d)
	}
	// Default route names.
	if d := tb.Decide(route.Input{Service: svc, Method: "Get"}); d.Route != "route-0" {
		t.Errorf("unnamed route: %q", d.Route)
	}
	// A nil Table decides nothing.
	var nilTable *route.Table
	if d := nilTable.Decide(route.Input{Service: svc}); d.Rule != "" || d.Subset.Key != "" {
		t.Errorf("nil table: %+v", d)
	}
	if l, ok := nilTable.Ingress(route.Input{Service: svc}); ok || l != "" {
		t.Errorf("nil table ingress: %q %v", l, ok)
	}
	// A rule built in code without a name is named by its service.
	tb2, err := route.NewTable([]route.Rule{{Service: svc, Routes: []route.Route{{Name: "all"}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := tb2.Decide(route.Input{Service: svc}); d.Rule != svc || d.Route != "all" {
		t.Errorf("unnamed rule: %+v", d)
	}
}

func TestFault(t *testing.T) {
	tb := table(t, `
apiVersion: sluice/v1
kind: RouteRule
metadata: {name: chaos}
spec:
  service: shop.v1.OrderService
  routes:
  - name: client
    match: {method: Get}
    fault: {delay: {fixed: 150ms}, abort: {code: unavailable}}
  - name: server
    match: {method: Put}
    fault: {side: server, abort: {code: DEADLINE_EXCEEDED, percent: 100}}
`)
	d := tb.Decide(route.Input{Service: svc, Method: "Get"})
	if d.Delay != 150*time.Millisecond || d.Abort == nil {
		t.Fatalf("client fault: %+v", d)
	}
	if status.Code(d.Abort) != codes.Unavailable || !errors.Is(d.Abort, route.ErrInjected) || !strings.HasPrefix(status.Convert(d.Abort).Message(), "route: ") {
		t.Errorf("abort error %v: code %v", d.Abort, status.Code(d.Abort))
	}
	if d := tb.Decide(route.Input{Service: svc, Method: "Get", Side: callinfo.Server}); d.Delay != 0 || d.Abort != nil {
		t.Errorf("client fault fired on the server: %+v", d)
	}
	if d := tb.Decide(route.Input{Service: svc, Method: "Put"}); d.Abort != nil {
		t.Errorf("server fault fired on the client: %+v", d)
	}
	if d := tb.Decide(route.Input{Service: svc, Method: "Put", Side: callinfo.Server}); status.Code(d.Abort) != codes.DeadlineExceeded || d.Route != "server" {
		t.Errorf("server fault: %+v", d)
	}
}

func TestMirrorAndServerSide(t *testing.T) {
	tb := table(t, `
apiVersion: sluice/v1
kind: RouteRule
metadata: {name: m}
spec:
  service: shop.v1.OrderService
  routes:
  - destinations: [{subset: {version: v1}, weight: 1}, {subset: {version: v2}, weight: 1}]
    mirror: {subset: {version: v3}, name: shadow}
`)
	d := tb.Decide(route.Input{Service: svc})
	if d.Mirror == nil || d.Mirror.Name != "shadow" || d.Mirror.Key != "version=v3" {
		t.Fatalf("mirror: %+v", d.Mirror)
	}
	m, ok := d.MirrorTarget()
	if !ok || m.Subset.Key != "version=v3" || m.Lane != "" {
		t.Errorf("MirrorTarget: %+v %v", m, ok)
	}
	// On the server side no destination or mirror is drawn.
	if d := tb.Decide(route.Input{Service: svc, Side: callinfo.Server}); d.Mirror != nil || d.Subset.Key != "" || d.Route != "route-0" {
		t.Errorf("server side: %+v", d)
	}
	if _, ok := (route.Decision{}).MirrorTarget(); ok {
		t.Error("MirrorTarget of an unmirrored call")
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	tb := table(t, `
apiVersion: sluice/v1
kind: RouteRule
metadata: {name: all}
spec:
  service: shop.v1.OrderService
  routes:
  - match:
      method: [Get, List]
      caller: shop.v1.Web
      callerLabels: {zone: z1}
      headers: [{key: x-a, exact: "1"}, {key: x-b, prefix: p}, {key: x-c, regex: "c[0-9]+"}, {key: x-d, absent: true}]
      baggage: [{key: tenant, present: true}]
    sticky: x-user
    destinations: [{subset: {version: v1}, weight: 90}, {subset: {version: v2}, weight: 10}]
    mirror: {subset: {version: v3}, percent: 50}
    fault: {delay: {fixed: 1ms, percent: 50}, abort: {code: INTERNAL, percent: 50}}
---
apiVersion: sluice/v1
kind: Lane
metadata: {name: blue}
spec:
  ingress: {headers: [{key: x-lane, exact: blue}], cookies: [{name: lane, value: blue}], hash: {key: x-user, percent: 5}, percent: 1}
`)
	md := map[string]string{"x-a": "1", "x-b": "pq", "x-c": "c42", "x-user": "u-1", "cookie": "a=b; lane=green"}
	bag := map[string]string{"tenant": "acme", route.LaneKey: "blue"}
	labels := map[string]string{"zone": "z1"}
	var r rng
	var d route.Decision
	allocs := testing.AllocsPerRun(1000, func() {
		d = tb.Decide(route.Input{
			Service: svc, Method: "List", Caller: "shop.v1.Web", CallerLabels: labels, Rand: r.next(),
			Metadata: func(k string) (string, bool) { v, ok := md[k]; return v, ok },
			Baggage:  func(k string) (string, bool) { v, ok := bag[k]; return v, ok },
		})
		_ = d.Target()
	})
	if allocs != 0 {
		t.Errorf("Decide: %v allocations per call", allocs)
	}
	if d.Route != "route-0" || d.Lane != "blue" {
		t.Errorf("decision: %+v", d)
	}
	allocs = testing.AllocsPerRun(1000, func() {
		tb.Ingress(route.Input{
			Service: svc, Rand: r.next(),
			Metadata: func(k string) (string, bool) { v, ok := md[k]; return v, ok },
		})
	})
	if allocs != 0 {
		t.Errorf("Ingress: %v allocations per call", allocs)
	}
}

// TestDecideDuringUpdates decides calls while the rules change: every
// decision comes whole from one generation (-race checks the rest).
func TestDecideDuringUpdates(t *testing.T) {
	gen := func(v string) []route.Rule {
		return []route.Rule{{Service: svc, Routes: []route.Route{{Name: v, Destinations: []route.Destination{{Name: v, Subset: map[string]string{"version": v}}}}}}}
	}
	tb, err := route.NewTable(gen("v1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	updates := 0
	cancel := tb.Subscribe(func() { updates++ })
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := tb.Decide(route.Input{Service: svc})
				if d.Route != d.Subset.Name {
					t.Errorf("torn decision: route %q subset %q", d.Route, d.Subset.Name)
					return
				}
			}
		})
	}
	for i := range 200 {
		if err := tb.Update(gen(fmt.Sprintf("v%d", i%3+1)), nil); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	cancel()
	if err := tb.Update(gen("v1"), nil); err != nil {
		t.Fatal(err)
	}
	if updates != 200 {
		t.Errorf("Subscribe saw %d updates, want 200", updates)
	}
}

// TestHashIsStable pins the sticky hash: it must never change, or users
// would move between subsets and lanes on an upgrade.
func TestHashIsStable(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{
		{"", 0xefd01f60ba992926},
		{"user-42", 0xa39532c7ab051e8d},
		{"alice@example.com", 0x53e4b3bc79050458},
	} {
		if got := route.Hash(c.in); got != c.want {
			t.Errorf("Hash(%q) = %#x, want %#x", c.in, got, c.want)
		}
	}
}
