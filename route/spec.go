package route

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/status"
)

// The document kinds of this package.
const (
	// RuleKind is the kind of a RouteRule document, whose spec is a Rule.
	RuleKind = "RouteRule"
	// LaneKind is the kind of a Lane document, whose spec is a Lane.
	LaneKind = "Lane"
)

func init() {
	config.Register(RuleKind, config.KindOf(validateRule))
	config.Register(LaneKind, config.KindOf(validateLane))
}

// Rule is the spec of a RouteRule document: how the calls to one service
// are routed. Routes are tried in order and the first that matches a call
// decides it; a call no route matches (and every call of a service with no
// rule) goes to all the service's instances. Every zero value means the
// default given in the field's comment.
//
//	apiVersion: sluice/v1
//	kind: RouteRule
//	metadata: {name: orders}
//	spec:
//	  service: shop.v1.OrderService
//	  routes:
//	  - name: testers
//	    match:
//	      method: [Get, List]
//	      headers: [{key: x-user-group, exact: testers}]
//	    destinations: [{subset: {version: v2}}]
//	  - name: split
//	    sticky: x-user-id
//	    destinations:
//	    - {subset: {version: v1}, weight: 90}
//	    - {subset: {version: v2}, weight: 10}
//	    mirror: {subset: {version: v3}, percent: 5}
//	    fault: {delay: {fixed: 200ms, percent: 1}}
type Rule struct {
	// Name names the rule in decisions, call info and metrics. It is not
	// part of the spec: Table.Follow sets it to the document's
	// metadata.name; programs calling Update may set it. Default: the
	// service name.
	Name string `json:"-"`
	// Service is the full protobuf name of the service whose calls the
	// rule routes, "pkg.OrderService". Required; at most one rule per
	// service is used (Follow keeps the one whose document name sorts
	// first).
	Service string `json:"service"`
	// Routes are tried in order; the first that matches a call wins. A
	// route with no match catches every call and must be the last.
	// Default none: every call goes to all instances.
	Routes []Route `json:"routes,omitempty"`
}

// Route is one way of routing the calls it matches.
type Route struct {
	// Name names the route in decisions, call info and metrics (label
	// "route"); unique within the rule. Default "route-<index>", counting
	// from 0.
	Name string `json:"name,omitempty"`
	// Match selects the calls the route takes; every condition it sets
	// must hold. Default: every call (a default route).
	Match *Match `json:"match,omitempty"`
	// Destinations are the subsets the calls go to, shared by weight.
	// Default none: all instances of the service.
	Destinations []Destination `json:"destinations,omitempty"`
	// Sticky is a metadata key (such as x-user-id) whose value picks the
	// destination instead of a random draw, so that one value always lands
	// on the same subset, in every process, while the weights stay. Calls
	// without the key are drawn at random. Default none.
	Sticky string `json:"sticky,omitempty"`
	// Mirror sends copies of a share of the calls to a shadow subset,
	// fire and forget. Default none.
	Mirror *Mirror `json:"mirror,omitempty"`
	// Fault injects delays and failures into a share of the calls, for
	// chaos testing. Default none.
	Fault *Fault `json:"fault,omitempty"`
}

// Match is the conditions a call must meet, all of them. Unset conditions
// hold for every call.
type Match struct {
	// Method is a method name ("Get") or a list of them; the call's method
	// must be one. Default: any method.
	Method Names `json:"method,omitempty"`
	// Headers must all hold on the request metadata (the headers, on HTTP
	// protocols). Default none.
	Headers []StringMatch `json:"headers,omitempty"`
	// Baggage must all hold on the W3C baggage members of the call.
	// Default none.
	Baggage []StringMatch `json:"baggage,omitempty"`
	// Caller is the calling service's name or a list of names; the call's
	// caller must be one. Default: any caller, none included.
	Caller Names `json:"caller,omitempty"`
	// CallerLabels must all equal the calling instance's labels. Default
	// none.
	CallerLabels map[string]string `json:"callerLabels,omitempty"`
}

// StringMatch tests the value of one key: exactly one of Exact, Prefix,
// Regex, Present and Absent must be set.
type StringMatch struct {
	// Key is the metadata key (matched in lower case) or the baggage
	// member key (matched as written). Required.
	Key string `json:"key"`
	// Exact holds when the value is this.
	Exact string `json:"exact,omitempty"`
	// Prefix holds when the value starts with this.
	Prefix string `json:"prefix,omitempty"`
	// Regex holds when the whole value matches this RE2 expression (it is
	// anchored at both ends).
	Regex string `json:"regex,omitempty"`
	// Present holds when the key is there, whatever its value.
	Present bool `json:"present,omitempty"`
	// Absent holds when the key is not there.
	Absent bool `json:"absent,omitempty"`
}

// Destination is a subset of the instances, with its share of the calls.
type Destination struct {
	// Name names the subset in decisions and metrics (label "subset").
	// Default: its labels, "version=v2".
	Name string `json:"name,omitempty"`
	// Subset are the labels the instances must all have, {version: v2}.
	// Default none: all instances.
	Subset map[string]string `json:"subset,omitempty"`
	// Weight is the destination's share, relative to the route's other
	// destinations: 90 and 10 are 90% and 10%, as are 9 and 1. 0 gives it
	// no calls, but when every destination of a route has weight 0 (or
	// none) they share the calls equally. From 0 to 1000000. Default 0.
	Weight int `json:"weight,omitempty"`
}

// Mirror copies calls to a shadow subset. The copies are sent fire and
// forget and their replies dropped: the caller never waits for them.
type Mirror struct {
	// Name names the subset in metrics. Default: its labels.
	Name string `json:"name,omitempty"`
	// Subset are the labels of the shadow instances. Required.
	Subset map[string]string `json:"subset"`
	// Percent is the share of the route's calls copied, from 0 to 100.
	// Default 100.
	Percent *float64 `json:"percent,omitempty"`
}

// Fault injects faults into calls. A call may be both delayed and aborted:
// the delay comes first.
type Fault struct {
	// Side is where the fault is injected: "client" (before the call is
	// sent) or "server" (before the handler runs). Default "client".
	Side string `json:"side,omitempty"`
	// Delay holds a share of the calls back. Default none.
	Delay *Delay `json:"delay,omitempty"`
	// Abort fails a share of the calls. Default none.
	Abort *Abort `json:"abort,omitempty"`
}

// Delay holds calls back for a fixed time.
type Delay struct {
	// Fixed is how long, above 0 and at most 1h. Required.
	Fixed config.Duration `json:"fixed"`
	// Percent is the share of the route's calls delayed, from 0 to 100.
	// Default 100.
	Percent *float64 `json:"percent,omitempty"`
}

// Abort fails calls with a status code.
type Abort struct {
	// Code is the status code by name ("UNAVAILABLE"), not OK. Required.
	Code string `json:"code"`
	// Percent is the share of the route's calls failed, from 0 to 100.
	// Default 100.
	Percent *float64 `json:"percent,omitempty"`
}

// Lane is the spec of a Lane document: a full-link gray lane. Calls in a
// lane carry its name in the W3C baggage member "sluice-lane" (LaneKey),
// which travels the whole chain; at every hop they go to the callee's
// instances labelled for the lane, or, when it has none, to its base
// instances (those without the lane's label key) unless the lane is
// STRICT. Calls not in a lane never reach lane instances.
//
//	apiVersion: sluice/v1
//	kind: Lane
//	metadata: {name: blue}
//	spec:
//	  label: {key: lane, value: blue}   # the default for lane "blue"
//	  mode: PERMISSIVE
//	  ingress:
//	    headers: [{key: x-lane, exact: blue}]
//	    cookies: [{name: lane, value: blue}]
//	    hash: {key: x-user-id, percent: 5}
type Lane struct {
	// Name is the lane's name, the value of the baggage member: letters,
	// digits, '-', '_' and '.'. Default: the document's metadata.name
	// (set by Table.Follow); programs calling Update must set it.
	Name string `json:"name,omitempty"`
	// Label is the instance label that puts an instance in the lane.
	// Instances having its key, whatever the value, are kept from calls
	// in no lane, so the key should be one only lanes use. Default {key:
	// lane, value: <name>}.
	Label Label `json:"label,omitzero"`
	// Ingress says which calls entering the system join the lane.
	// Default none: only calls a program puts in the lane itself (by
	// setting the baggage member) are in it.
	Ingress *Ingress `json:"ingress,omitempty"`
	// Mode is what a call in the lane does when the callee has no
	// instance in it: PERMISSIVE goes to the base instances, STRICT fails
	// with Unavailable. Default PERMISSIVE.
	Mode string `json:"mode,omitempty"`
}

// Label is an instance label.
type Label struct {
	// Key is the label key. Default "lane".
	Key string `json:"key,omitempty"`
	// Value is the label value. Default: the lane's name.
	Value string `json:"value,omitempty"`
}

// Ingress is how calls enter a lane: a call joins when any of the
// conditions set holds.
type Ingress struct {
	// Services are the services where calls join the lane, whoever calls
	// them. Default: any service, for calls that name no caller (calls
	// from outside, such as a browser through a gateway).
	Services Names `json:"services,omitempty"`
	// Headers: the call joins when any of them holds on its metadata.
	// Default none.
	Headers []StringMatch `json:"headers,omitempty"`
	// Cookies: the call joins when its "cookie" header holds any of these
	// cookies with this value. Default none.
	Cookies []Cookie `json:"cookies,omitempty"`
	// Hash: the call joins when the hash of a metadata value (a user id)
	// falls in a range of the hash space, so a user is in the lane on
	// every call. Default none.
	Hash *HashRange `json:"hash,omitempty"`
	// Percent is the share of other calls that join at random, from 0 to
	// 100; lanes draw from disjoint ranges, in name order, so their
	// percentages add up to at most 100. Default 0.
	Percent float64 `json:"percent,omitempty"`
}

// Cookie is a cookie name and value.
type Cookie struct {
	// Name is the cookie's name. Required.
	Name string `json:"name"`
	// Value is the cookie's value. Required.
	Value string `json:"value"`
}

// HashRange is a share of the hash space of a metadata key's values (the
// same hash as Route.Sticky's).
type HashRange struct {
	// Key is the metadata key whose value is hashed, x-user-id. Required.
	Key string `json:"key"`
	// Percent is the size of the range, above 0 and at most 100.
	// Required.
	Percent float64 `json:"percent"`
	// Offset is where the range starts, from 0 to 100 - Percent. Default:
	// just after the ranges of the lanes before this one (in name order)
	// that hash the same key, so that ranges never overlap; set it to keep
	// users in the lane when lanes are added.
	Offset *float64 `json:"offset,omitempty"`
}

// Names is one name or a list of names: documents write "Get" or
// [Get, List].
type Names []string

// UnmarshalJSON reads a string or a list of strings.
func (n *Names) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*n = Names{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("must be a name or a list of names")
	}
	*n = l
	return nil
}

// The lane modes.
const (
	ModePermissive = "PERMISSIVE"
	ModeStrict     = "STRICT"
)

// Fault sides.
const (
	SideClient = "client"
	SideServer = "server"
)

// maxWeight bounds a destination's weight, so that sums cannot overflow.
const maxWeight = 1_000_000

var laneNameRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)

// errs collects field errors.
type errs config.FieldErrors

func (e *errs) add(path, format string, a ...any) {
	*e = append(*e, &config.FieldError{Path: path, Reason: fmt.Sprintf(format, a...)})
}

func (e errs) err() error {
	if len(e) == 0 {
		return nil
	}
	return config.FieldErrors(e)
}

// validateRule checks a Rule spec; every error names its field.
func validateRule(r *Rule) error {
	var e errs
	checkService(&e, "spec.service", r.Service, true)
	names := map[string]int{}
	for i := range r.Routes {
		rt := &r.Routes[i]
		p := fmt.Sprintf("spec.routes[%d]", i)
		name := routeName(rt, i)
		if first, dup := names[name]; dup {
			e.add(p+".name", "%q is also the name of routes[%d]", name, first)
		} else {
			names[name] = i
		}
		if catchAll(rt.Match) && i < len(r.Routes)-1 {
			e.add(p+".match", "matches every call, so routes[%d] and after would never match: a default route must be the last", i+1)
		}
		if m := rt.Match; m != nil {
			checkNames(&e, p+".match.method", m.Method, checkMethod)
			checkMatches(&e, p+".match.headers", m.Headers, true)
			checkMatches(&e, p+".match.baggage", m.Baggage, false)
			checkNames(&e, p+".match.caller", m.Caller, func(s string) string { return serviceReason(s) })
			for _, k := range sortedKeys(m.CallerLabels) {
				if k == "" {
					e.add(p+".match.callerLabels", "label keys must not be empty")
				}
			}
		}
		dnames := map[string]int{}
		dkeys := map[string]int{}
		for j, d := range rt.Destinations {
			dp := fmt.Sprintf("%s.destinations[%d]", p, j)
			checkSubset(&e, dp+".subset", d.Subset, false)
			if d.Weight < 0 || d.Weight > maxWeight {
				e.add(dp+".weight", "must be from 0 to %d, not %d", maxWeight, d.Weight)
			}
			key := subsetKey(d.Subset)
			if first, dup := dkeys[key]; dup {
				e.add(dp+".subset", "same subset as destinations[%d]", first)
				continue
			}
			dkeys[key] = j
			n := d.Name
			if n == "" {
				n = key
			}
			if first, dup := dnames[n]; dup {
				e.add(dp+".name", "%q is also the name of destinations[%d]", n, first)
			} else {
				dnames[n] = j
			}
		}
		if rt.Sticky != "" {
			checkKey(&e, p+".sticky", rt.Sticky, true)
		}
		if m := rt.Mirror; m != nil {
			checkSubset(&e, p+".mirror.subset", m.Subset, true)
			checkPercent(&e, p+".mirror.percent", m.Percent)
		}
		if f := rt.Fault; f != nil {
			fp := p + ".fault"
			if f.Side != "" && f.Side != SideClient && f.Side != SideServer {
				e.add(fp+".side", "must be client or server, not %q", f.Side)
			}
			if f.Delay == nil && f.Abort == nil {
				e.add(fp, "sets neither delay nor abort: nothing would be injected")
			}
			if d := f.Delay; d != nil {
				if d.Fixed <= 0 || time.Duration(d.Fixed) > time.Hour {
					e.add(fp+".delay.fixed", "required: a duration above 0 and at most 1h, such as \"100ms\"")
				}
				checkPercent(&e, fp+".delay.percent", d.Percent)
			}
			if a := f.Abort; a != nil {
				if c, ok := status.ParseName(a.Code); !ok {
					e.add(fp+".abort.code", "%q is not a status code name (UNAVAILABLE, DEADLINE_EXCEEDED, ...)", a.Code)
				} else if c == codes.OK {
					e.add(fp+".abort.code", "OK is not a failure")
				}
				checkPercent(&e, fp+".abort.percent", a.Percent)
			}
		}
	}
	return e.err()
}

// validateLane checks a Lane spec. A Lane's name may be empty here: Follow
// gives it the document's name.
func validateLane(l *Lane) error {
	var e errs
	if l.Name != "" && !laneNameRE.MatchString(l.Name) {
		e.add("spec.name", "must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit, not %q", l.Name)
	}
	if strings.ContainsAny(l.Label.Key, ",= ") {
		e.add("spec.label.key", "must not hold ',', '=' or spaces")
	}
	if strings.Contains(l.Label.Value, ",") {
		e.add("spec.label.value", "must not hold ','")
	}
	switch l.Mode {
	case "", ModePermissive, ModeStrict:
	default:
		e.add("spec.mode", "must be PERMISSIVE or STRICT, not %q", l.Mode)
	}
	if in := l.Ingress; in != nil {
		p := "spec.ingress"
		checkNames(&e, p+".services", in.Services, func(s string) string { return serviceReason(s) })
		for i, m := range in.Headers {
			checkMatch(&e, fmt.Sprintf("%s.headers[%d]", p, i), m, true)
		}
		for i, c := range in.Cookies {
			cp := fmt.Sprintf("%s.cookies[%d]", p, i)
			if c.Name == "" || strings.ContainsAny(c.Name, "=; ") {
				e.add(cp+".name", "required: a cookie name, without '=', ';' or spaces")
			}
			if c.Value == "" || strings.ContainsAny(c.Value, "; ") {
				e.add(cp+".value", "required: a cookie value, without ';' or spaces")
			}
		}
		if h := in.Hash; h != nil {
			checkKey(&e, p+".hash.key", h.Key, true)
			if !(h.Percent > 0 && h.Percent <= 100) {
				e.add(p+".hash.percent", "must be above 0 and at most 100, not %v", h.Percent)
			}
			if o := h.Offset; o != nil && !(*o >= 0 && *o+h.Percent <= 100) {
				e.add(p+".hash.offset", "must be from 0 to 100 - percent (%v), not %v", 100-h.Percent, *o)
			}
		}
		if !(in.Percent >= 0 && in.Percent <= 100) {
			e.add(p+".percent", "must be from 0 to 100, not %v", in.Percent)
		}
		if len(in.Headers) == 0 && len(in.Cookies) == 0 && in.Hash == nil && in.Percent == 0 {
			e.add(p, "sets no condition (headers, cookies, hash or percent): no call would join")
		}
	}
	return e.err()
}

func routeName(rt *Route, i int) string {
	if rt.Name != "" {
		return rt.Name
	}
	return fmt.Sprintf("route-%d", i)
}

// catchAll reports whether m matches every call.
func catchAll(m *Match) bool {
	return m == nil || len(m.Method) == 0 && len(m.Headers) == 0 && len(m.Baggage) == 0 &&
		len(m.Caller) == 0 && len(m.CallerLabels) == 0
}

func checkService(e *errs, path, s string, required bool) {
	if s == "" {
		if required {
			e.add(path, "required: the full protobuf service name, e.g. pkg.OrderService")
		}
		return
	}
	if r := serviceReason(s); r != "" {
		e.add(path, "%s", r)
	}
}

func serviceReason(s string) string {
	if s == "" || strings.ContainsAny(s, "/ ") {
		return fmt.Sprintf("must be a service name like pkg.OrderService, not %q", s)
	}
	return ""
}

func checkMethod(m string) string {
	if m == "" || strings.ContainsAny(m, "/. ") {
		return fmt.Sprintf("must be a method name like Get, not %q", m)
	}
	return ""
}

func checkNames(e *errs, path string, names Names, reason func(string) string) {
	for i, n := range names {
		p := path
		if len(names) > 1 {
			p = fmt.Sprintf("%s[%d]", path, i)
		}
		if r := reason(n); r != "" {
			e.add(p, "%s", r)
		}
	}
}

func checkMatches(e *errs, path string, ms []StringMatch, metadataKey bool) {
	for i, m := range ms {
		checkMatch(e, fmt.Sprintf("%s[%d]", path, i), m, metadataKey)
	}
}

func checkMatch(e *errs, path string, m StringMatch, metadataKey bool) {
	checkKey(e, path+".key", m.Key, metadataKey)
	n := 0
	for _, set := range []bool{m.Exact != "", m.Prefix != "", m.Regex != "", m.Present, m.Absent} {
		if set {
			n++
		}
	}
	if n != 1 {
		e.add(path, "must set exactly one of exact, prefix, regex, present and absent (sets %d)", n)
	}
	if m.Regex != "" {
		if _, err := compileRegex(m.Regex); err != nil {
			e.add(path+".regex", "%v", err)
		}
	}
}

func checkKey(e *errs, path, k string, metadataKey bool) {
	switch {
	case k == "":
		e.add(path, "required")
	case metadataKey && strings.ContainsAny(k, " :\t\r\n"):
		e.add(path, "must be a metadata key, without spaces or ':', not %q", k)
	case !metadataKey && !token(k):
		e.add(path, "must be a W3C baggage key (letters, digits and !#$%%&'*+-.^_`|~), not %q", k)
	}
}

func checkSubset(e *errs, path string, labels map[string]string, required bool) {
	if len(labels) == 0 {
		if required {
			e.add(path, "required: the labels of the instances, such as {version: v2}")
		}
		return
	}
	for _, k := range sortedKeys(labels) {
		switch {
		case k == "" || strings.ContainsAny(k, ",= "):
			e.add(path, "label key %q must not be empty or hold ',', '=' or spaces", k)
		case strings.Contains(labels[k], ","):
			e.add(path+"."+k, "must not hold ','")
		}
	}
}

func checkPercent(e *errs, path string, p *float64) {
	if p != nil && !(*p >= 0 && *p <= 100) {
		e.add(path, "must be from 0 to 100, not %v", *p)
	}
}

// compileRegex compiles a match's expression, anchored at both ends. The
// anchors go around the parsed expression, not its text, which could
// swallow them (an unterminated \Q quotes to the end).
func compileRegex(expr string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(expr); err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "regexp: "))
	}
	parsed, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "regexp: "))
	}
	return regexp.Compile(`^(?:` + parsed.String() + `)$`)
}

// token reports whether s is an RFC 7230 token, the W3C baggage key syntax.
func token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// percentOr returns *p, or def when p is nil.
func percentOr(p *float64, def float64) float64 {
	if p == nil {
		return def
	}
	return *p
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
