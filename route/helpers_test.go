package route_test

import (
	"testing"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/route"
)

const svc = "shop.v1.OrderService"

// docs parses YAML documents and decodes their specs: rules take their
// document's name, lanes without a name too (as Follow does).
func docs(t testing.TB, yaml string) ([]route.Rule, []route.Lane) {
	t.Helper()
	ds, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var rules []route.Rule
	var lanes []route.Lane
	for _, d := range ds {
		spec, err := config.Decode(d)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		switch s := spec.(type) {
		case *route.Rule:
			r := *s
			r.Name = d.Metadata.Name
			rules = append(rules, r)
		case *route.Lane:
			l := *s
			if l.Name == "" {
				l.Name = d.Metadata.Name
			}
			lanes = append(lanes, l)
		default:
			t.Fatalf("unexpected spec %T", spec)
		}
	}
	return rules, lanes
}

// table returns a Table holding the documents in yaml.
func table(t testing.TB, yaml string) *route.Table {
	t.Helper()
	rules, lanes := docs(t, yaml)
	tb, err := route.NewTable(rules, lanes)
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	return tb
}

// kv returns a Lookup over key/value pairs; nil for none.
func kv(pairs ...string) route.Lookup {
	if len(pairs) == 0 {
		return nil
	}
	m := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// lane returns a baggage Lookup carrying the lane l.
func lane(l string) route.Lookup { return kv(route.LaneKey, l) }

// rng is a small deterministic generator (SplitMix64) for statistical tests.
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
