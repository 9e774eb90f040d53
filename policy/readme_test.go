package policy_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/sluicerpc/sluice/policy"
)

// TestREADMEExample: the TrafficPolicy in the README is valid and compiles.
func TestREADMEExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(apiVersion: sluice/v1\nkind: TrafficPolicy.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no TrafficPolicy example")
	}
	p, err := decode(t, string(m[1]))
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	if _, err := policy.NewTable([]policy.TrafficPolicy{*p}); err != nil {
		t.Fatalf("README example: %v", err)
	}
}
