package route_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/route"
	"github.com/sluicerpc/sluice/status"
)

const lanes = `
apiVersion: sluice/v1
kind: RouteRule
metadata: {name: orders}
spec:
  service: shop.v1.OrderService
  routes:
  - name: v1
    match: {method: V1}
    destinations: [{subset: {version: v1}}]
  - name: v2
    match: {method: V2}
    destinations: [{subset: {version: v2}}]
---
apiVersion: sluice/v1
kind: Lane
metadata: {name: blue}
---
apiVersion: sluice/v1
kind: Lane
metadata: {name: green}
---
apiVersion: sluice/v1
kind: Lane
metadata: {name: red}
spec: {label: {key: env, value: red-env}, mode: STRICT}
---
apiVersion: sluice/v1
kind: Lane
metadata: {name: yellow}   # no instance anywhere
---
apiVersion: sluice/v1
kind: Lane
metadata: {name: black}    # no instance anywhere
spec: {mode: STRICT}
`

var instances = []discovery.Instance{
	{Addr: "base-v1", Labels: map[string]string{"version": "v1"}},
	{Addr: "base-v2", Labels: map[string]string{"version": "v2"}},
	{Addr: "blue-v2", Labels: map[string]string{"version": "v2", "lane": "blue"}},
	{Addr: "green-v1", Labels: map[string]string{"version": "v1", "lane": "green"}},
	{Addr: "green-v2", Labels: map[string]string{"version": "v2", "lane": "green"}},
	{Addr: "red", Labels: map[string]string{"version": "v1", "env": "red-env"}},
	{Addr: "stale-lane", Labels: map[string]string{"version": "v1", "lane": "gone"}},
	{Addr: "no-labels"},
}

func addrs(ins []discovery.Instance) string {
	var out []string
	for _, in := range ins {
		out = append(out, in.Addr)
	}
	return strings.Join(out, " ")
}

// TestSelectLanes: a call in a lane goes to the lane's instances (those in
// the route's subset if any); without them, to the base instances in a
// PERMISSIVE lane and nowhere in a STRICT one; calls in no lane never
// reach lane instances.
func TestSelectLanes(t *testing.T) {
	tb := table(t, lanes)
	cases := []struct {
		name, method, lane string
		want               string
		strict             bool
	}{
		{"no lane, all instances: base only", "", "", "base-v1 base-v2 no-labels", false},
		{"no lane, subset", "V1", "", "base-v1", false},
		{"lane present", "", "blue", "blue-v2", false},
		{"lane present, subset in the lane", "V1", "green", "green-v1", false},
		{"lane present, subset not in the lane: the lane wins", "V1", "blue", "blue-v2", false},
		{"lane by another label key", "", "red", "red", true},
		{"lane absent, PERMISSIVE: base", "V2", "yellow", "base-v2", false},
		{"lane absent, PERMISSIVE, all: base", "", "yellow", "base-v1 base-v2 no-labels", false},
		{"lane absent, STRICT: none", "V2", "black", "", true},
		{"unknown lane: as no lane", "V1", "purple", "base-v1", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := tb.Decide(route.Input{Service: svc, Method: c.method, Baggage: lane(c.lane)})
			if got := addrs(route.Select(instances, d)); got != c.want {
				t.Errorf("Select = %q, want %q", got, c.want)
			}
			if (d.LaneMode == route.Strict) != c.strict || d.Target().Strict != c.strict {
				t.Errorf("mode %v, want strict %v", d.LaneMode, c.strict)
			}
		})
	}
	// The lane is known to services with no rule too.
	d := tb.Decide(route.Input{Service: "other.Service", Baggage: lane("blue")})
	if d.Lane != "blue" || addrs(route.Select(instances, d)) != "blue-v2" {
		t.Errorf("no rule, lane blue: %+v -> %s", d, addrs(route.Select(instances, d)))
	}
	// A Decision built by hand knows no lanes: the subset alone decides.
	if got := addrs(route.Select(instances, route.Decision{Subset: route.NewSubset("", map[string]string{"version": "v2"})})); got != "base-v2 blue-v2 green-v2" {
		t.Errorf("hand-made decision: %s", got)
	}
	// With no lanes in force, no instance is left out.
	empty, _ := route.NewTable(nil, nil)
	if got := route.Select(instances, empty.Decide(route.Input{Service: svc, Baggage: lane("blue")})); len(got) != len(instances) || &got[0] != &instances[0] {
		t.Errorf("no lanes: %s (want the list itself)", addrs(got))
	}
}

func TestMirrorTargetSkipsLanes(t *testing.T) {
	tb := table(t, lanes+`
---
apiVersion: sluice/v1
kind: RouteRule
metadata: {name: m}
spec:
  service: m.M
  routes: [{mirror: {subset: {version: v2}}}]
`)
	d := tb.Decide(route.Input{Service: "m.M", Baggage: lane("blue")})
	m, ok := d.MirrorTarget()
	if !ok {
		t.Fatal("not mirrored")
	}
	if got := addrs(route.Select(instances, m)); got != "base-v2" {
		t.Errorf("mirror goes to %s, want base-v2", got)
	}
}

func TestTargetAndNoInstance(t *testing.T) {
	tb := table(t, lanes)
	a := tb.Decide(route.Input{Service: svc, Method: "V1", Baggage: lane("blue")})
	b := tb.Decide(route.Input{Service: svc, Method: "V1", Baggage: lane("blue"), Rand: 99})
	c := tb.Decide(route.Input{Service: svc, Method: "V1"})
	if a.Target() != b.Target() || a.Target() == c.Target() {
		t.Errorf("targets: %+v %+v %+v", a.Target(), b.Target(), c.Target())
	}
	if want := (route.Target{Subset: "version=v1", Lane: "blue"}); a.Target() != want {
		t.Errorf("Target() = %+v, want %+v", a.Target(), want)
	}
	d := tb.Decide(route.Input{Service: svc, Method: "V2", Baggage: lane("black")})
	err := route.NoInstance(svc, d)
	if status.Code(err) != codes.Unavailable || !errors.Is(err, route.ErrNoInstance) {
		t.Errorf("NoInstance: %v", err)
	}
	want := "route: no instance of shop.v1.OrderService in subset version=v2 in lane black (STRICT: no fallback to the base instances)"
	if msg := status.Convert(err).Message(); msg != want {
		t.Errorf("message %q\nwant    %q", msg, want)
	}
}

func TestSubset(t *testing.T) {
	s := route.NewSubset("", map[string]string{"zone": "z1", "version": "v2"})
	if s.Name != "version=v2,zone=z1" || s.Key != s.Name {
		t.Errorf("subset %+v", s)
	}
	if n := route.NewSubset("canary", map[string]string{"version": "v2"}); n.Name != "canary" || n.Key != "version=v2" {
		t.Errorf("named subset %+v", n)
	}
	for _, c := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"zone": "z1", "version": "v2", "x": "y"}, true},
		{map[string]string{"zone": "z1"}, false},
		{map[string]string{"zone": "z1", "version": "v1"}, false},
		{nil, false},
	} {
		if got := s.Match(discovery.Instance{Labels: c.labels}); got != c.want {
			t.Errorf("Match(%v) = %v", c.labels, got)
		}
	}
	if !(route.Subset{}).Match(discovery.Instance{}) || (route.Subset{}).Labels() != nil {
		t.Error("the zero Subset must hold every instance")
	}
	if l := s.Labels(); len(l) != 2 || l["zone"] != "z1" {
		t.Errorf("Labels() = %v", l)
	}
}

func TestIngress(t *testing.T) {
	tb := table(t, `
apiVersion: sluice/v1
kind: Lane
metadata: {name: blue}
spec:
  ingress:
    headers: [{key: X-Lane, exact: blue}]
    cookies: [{name: lane, value: blue}]
---
apiVersion: sluice/v1
kind: Lane
metadata: {name: green}
spec:
  ingress: {hash: {key: x-user-id, percent: 20}}
---
apiVersion: sluice/v1
kind: Lane
metadata: {name: orange}
spec:
  ingress: {hash: {key: x-user-id, percent: 10}, percent: 5}
---
apiVersion: sluice/v1
kind: Lane
metadata: {name: pink}
spec:
  ingress: {percent: 15}
---
apiVersion: sluice/v1
kind: Lane
metadata: {name: gray}
spec:
  ingress: {services: shop.v1.Gateway, headers: [{key: x-gray, present: true}]}
`)
	for _, c := range []struct {
		name      string
		in        route.Input
		want      string
		wantFound bool
	}{
		{"header", route.Input{Service: svc, Metadata: kv("x-lane", "blue"), Rand: math.MaxUint64}, "blue", true},
		{"cookie", route.Input{Service: svc, Metadata: kv("cookie", "a=1; lane=blue; b=2"), Rand: math.MaxUint64}, "blue", true},
		{"quoted cookie", route.Input{Service: svc, Metadata: kv("cookie", `lane="blue"`), Rand: math.MaxUint64}, "blue", true},
		{"other cookie", route.Input{Service: svc, Metadata: kv("cookie", "lane=blues; xlane=blue"), Rand: math.MaxUint64}, "", false},
		{"called by a service: no ingress", route.Input{Service: svc, Caller: "a.B", Metadata: kv("x-lane", "blue")}, "", false},
		{"already in a lane", route.Input{Service: svc, Caller: "a.B", Baggage: lane("green")}, "green", true},
		{"in an unknown lane", route.Input{Service: svc, Baggage: lane("purple"), Metadata: kv("x-lane", "blue")}, "blue", true},
		{"listed service, any caller", route.Input{Service: "shop.v1.Gateway", Caller: "a.B", Metadata: kv("x-gray", "")}, "gray", true},
		{"unlisted service", route.Input{Service: svc, Metadata: kv("x-gray", ""), Rand: math.MaxUint64}, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := tb.Ingress(c.in)
			if got != c.want || ok != c.wantFound {
				t.Errorf("Ingress = %q %v, want %q %v", got, ok, c.want, c.wantFound)
			}
		})
	}

	// Users by hash range: green takes 20% of the space, orange the next
	// 10%, and a user stays where the hash puts them.
	count := map[string]int{}
	const users = 50_000
	for u := range users {
		md := kv("x-user-id", fmt.Sprint("u", u))
		l1, _ := tb.Ingress(route.Input{Service: svc, Metadata: md, Rand: math.MaxUint64})
		l2, _ := tb.Ingress(route.Input{Service: svc, Metadata: md, Rand: math.MaxUint64 - 1})
		if l1 != l2 {
			t.Fatalf("user %d moved from %q to %q", u, l1, l2)
		}
		count[l1]++
	}
	for l, want := range map[string]float64{"green": .2, "orange": .1} {
		if got := float64(count[l]) / users; !near(got, want, users) {
			t.Errorf("users in %s: %.4f, want %.2f", l, got, want)
		}
	}
	// Calls by percentage: orange 5%, pink the next 15%.
	count = map[string]int{}
	r := rng(11)
	for range draws {
		l, _ := tb.Ingress(route.Input{Service: svc, Rand: r.next()})
		count[l]++
	}
	for l, want := range map[string]float64{"orange": .05, "pink": .15, "": .8} {
		if got := float64(count[l]) / draws; !near(got, want, draws) {
			t.Errorf("calls in %q: %.4f, want %.2f", l, got, want)
		}
	}
}

func TestLaneDefaultsAndListing(t *testing.T) {
	tb, err := route.NewTable(nil, []route.Lane{{Name: "b"}, {Name: "a", Label: route.Label{Key: "env"}}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range tb.Lanes() {
		names = append(names, l.Name)
	}
	if !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("Lanes() = %v", names)
	}
	d := tb.Decide(route.Input{Service: svc, Baggage: lane("a")})
	got := route.Select([]discovery.Instance{{Addr: "x", Labels: map[string]string{"env": "a"}}, {Addr: "y", Labels: map[string]string{"lane": "a"}}}, d)
	if addrs(got) != "x" {
		t.Errorf("lane a (env=a): %s", addrs(got))
	}
	if route.Strict.String() != "STRICT" || route.Permissive.String() != "PERMISSIVE" {
		t.Error("Mode.String")
	}
}
