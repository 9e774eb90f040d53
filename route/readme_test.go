package route_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/sluicerpc/sluice/config"
)

// TestREADMEExample: the RouteRule and Lane documents in the README are
// valid.
func TestREADMEExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(apiVersion: sluice/v1\nkind: RouteRule.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no RouteRule example")
	}
	docs, err := config.Parse(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.NewSnapshot(1, docs); err != nil || len(docs) != 2 {
		t.Fatalf("README example: %d documents, %v", len(docs), err)
	}
}
