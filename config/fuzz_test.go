package config_test

import (
	"strings"
	"testing"

	"github.com/sluicerpc/sluice/config"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"apiVersion: sluice/v1\nkind: Widget\nmetadata: {name: a, labels: {x: y}}\nspec: {size: 1, parts: [{name: p}]}\n",
		"---\napiVersion: sluice/v1\nkind: Widget\nmetadata:\n  name: a\n---\n",
		`[{"apiVersion":"sluice/v1","kind":"Widget","metadata":{"name":"a","version":3},"spec":{"t":"1s"}}]`,
		`{"apiVersion":"sluice/v1"} {"kind":1}`,
		"a: &x [*x]\n",
		"spec: {<<: {a: 1}, b: .inf}\n",
		"{a: 1,}",
		"\xef\xbb\xbf{}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := config.Parse(data)
		if err != nil {
			if docs != nil {
				t.Fatalf("documents and an error")
			}
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error %q does not start with config:", err)
			}
			return
		}
		// What parses encodes, and parses back to the same documents.
		out, err := config.Encode(docs)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		again, err := config.Parse(out)
		if err != nil {
			t.Fatalf("Parse(Encode(docs)): %v\n%s", err, out)
		}
		if len(again) != len(docs) {
			t.Fatalf("%d documents, %d after a round trip", len(docs), len(again))
		}
		for i := range docs {
			a, b := docs[i], again[i]
			if a.Key() != b.Key() || a.Metadata.Version != b.Metadata.Version || string(a.Spec) != string(b.Spec) || len(a.Metadata.Labels) != len(b.Metadata.Labels) {
				t.Fatalf("document %d changed in a round trip:\n%+v\n%+v\n%s", i, a, b, out)
			}
		}
	})
}
