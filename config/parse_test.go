package config_test

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/config/configtest"
)

func TestMain(m *testing.M) {
	configtest.Register()
	// Kinds whose validators misbehave in the ways a kind's author might.
	config.Register("Plain", config.KindOf(func(*struct {
		N int `json:"n"`
	}) error {
		return errors.New("plain error")
	}))
	config.Register("Relative", config.KindOf(func(s *struct {
		N int `json:"n"`
	}) error {
		return errors.Join(&config.FieldError{Path: "n", Reason: "r1"}, config.FieldErrors{{Path: "[0]", Reason: "r2"}})
	}))
	config.Register("Nil", config.KindOf[struct{}](nil))
	config.Register("Outer", config.KindOf[outer](nil))
	goleak.VerifyTestMain(m)
}

// field is one expected field error: its path, a piece of its reason, its line.
type field struct {
	path, reason string
	line         int
}

// checkErr checks that err is a set of *InvalidError, one per entry of want,
// keyed by document index, each with exactly the fields listed.
func checkErr(t *testing.T, err error, want map[int][]field) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", want)
	}
	if !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("error %q does not start with config:", err)
	}
	if !errors.Is(err, config.ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
	}
	got := map[int][]field{}
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var ie *config.InvalidError
		if !errors.As(e, &ie) {
			t.Errorf("%v is not an *InvalidError", e)
			return
		}
		for _, f := range ie.Fields {
			got[ie.Index] = append(got[ie.Index], field{f.Path, f.Reason, f.Line})
		}
	}
	walk(err)
	if len(got) != len(want) {
		t.Errorf("errors for documents %v, want %v (%v)", keys(got), keys(want), err)
	}
	for i, wf := range want {
		gf := got[i]
		if len(gf) != len(wf) {
			t.Errorf("document %d: fields %v, want %v", i, gf, wf)
			continue
		}
		sort.Slice(gf, func(a, b int) bool { return gf[a].path < gf[b].path })
		sort.Slice(wf, func(a, b int) bool { return wf[a].path < wf[b].path })
		for j := range wf {
			if gf[j].path != wf[j].path || !strings.Contains(gf[j].reason, wf[j].reason) || (wf[j].line != 0 && gf[j].line != wf[j].line) {
				t.Errorf("document %d: field %+v, want %+v", i, gf[j], wf[j])
			}
		}
	}
}

func keys(m map[int][]field) []int {
	var k []int
	for i := range m {
		k = append(k, i)
	}
	sort.Ints(k)
	return k
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name  string
		in    string
		names []string // of the documents parsed
		specs []string // their Spec, as canonical JSON
	}{
		{
			name: "YAML multi-document",
			in: "---\napiVersion: sluice/v1\nkind: Widget\nmetadata:\n  name: a\n  labels: {team: pay}\nspec:\n  size: 1\n  color: red\n" +
				"---\n---\n# only a comment\n---\napiVersion: sluice/v1\nkind: Widget\nmetadata: {name: b}\n...\n",
			names: []string{"a", "b"},
			specs: []string{`{"color":"red","size":1}`, ``},
		},
		{
			name:  "JSON object",
			in:    "\t{\"apiVersion\": \"sluice/v1\", \"kind\": \"Widget\", \"metadata\": {\"name\": \"a\"}, \"spec\": {\"color\": \"r\\/g <b>\"}}",
			names: []string{"a"},
			specs: []string{`{"color":"r/g <b>"}`},
		},
		{
			name: "JSON array, tab-indented",
			in: "[\n\t{\"apiVersion\": \"sluice/v1\", \"kind\": \"Widget\", \"metadata\": {\"name\": \"a\"}},\n" +
				"\t{\"apiVersion\": \"sluice/v1\", \"kind\": \"Widget\", \"metadata\": {\"name\": \"b\"}, \"spec\": {\"size\": 2e0}}\n]",
			names: []string{"a", "b"},
			specs: []string{``, `{"size":2e0}`},
		},
		{
			name:  "JSON stream",
			in:    `{"apiVersion":"sluice/v1","kind":"Widget","metadata":{"name":"a"}} {"apiVersion":"sluice/v1","kind":"Widget","metadata":{"name":"b"}}`,
			names: []string{"a", "b"},
			specs: []string{``, ``},
		},
		{
			name:  "YAML flow mapping that is not JSON",
			in:    `{apiVersion: sluice/v1, kind: Widget, metadata: {name: a}, spec: {size: 3,}}`,
			names: []string{"a"},
			specs: []string{`{"size":3}`},
		},
		{
			name: "anchors, aliases and merge keys",
			in: "apiVersion: sluice/v1\nkind: Widget\nmetadata: {name: a}\nspec:\n  base: &b {size: 1, color: red}\n" +
				"  merged:\n    <<: *b\n    color: blue\n  copy: *b\n",
			names: []string{"a"},
			specs: []string{`{"base":{"color":"red","size":1},"copy":{"color":"red","size":1},"merged":{"color":"blue","size":1}}`},
		},
		{
			name:  "YAML scalars: timestamps stay text, numbers are numbers",
			in:    "apiVersion: sluice/v1\nkind: Widget\nmetadata: {name: a}\nspec: {t: 2024-01-02, h: 0x10, f: 1.5, y: yes, n: ~, q: '1', big: 18446744073709551615}\n",
			names: []string{"a"},
			specs: []string{`{"big":18446744073709551615,"f":1.5,"h":16,"n":null,"q":"1","t":"2024-01-02","y":"yes"}`},
		},
		{
			name:  "YAML list of documents",
			in:    "- {apiVersion: sluice/v1, kind: Widget, metadata: {name: a}}\n- apiVersion: sluice/v1\n  kind: Widget\n  metadata: {name: b}\n",
			names: []string{"a", "b"},
			specs: []string{``, ``},
		},
		{
			name:  "JSON with a byte order mark",
			in:    "\xef\xbb\xbf{\"apiVersion\": \"sluice/v1\", \"kind\": \"Widget\", \"metadata\": {\"name\": \"a\"}, \"spec\": {\"color\": \"\\/\"}}",
			names: []string{"a"},
			specs: []string{`{"color":"/"}`},
		},
		{name: "empty", in: "", names: nil},
		{name: "only separators and comments", in: "# nothing\n---\n---\n", names: nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			docs, err := config.Parse([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for i, d := range docs {
				names = append(names, d.Metadata.Name)
				if d.APIVersion != config.APIVersion || d.Kind != "Widget" {
					t.Errorf("document %d envelope %q %q", i, d.APIVersion, d.Kind)
				}
				if string(d.Spec) != c.specs[i] {
					t.Errorf("document %d spec %s, want %s", i, d.Spec, c.specs[i])
				}
			}
			if fmt.Sprint(names) != fmt.Sprint(c.names) {
				t.Errorf("names %v, want %v", names, c.names)
			}
		})
	}
}

func TestParseLabels(t *testing.T) {
	docs, err := config.Parse([]byte("apiVersion: sluice/v1\nkind: Widget\nmetadata:\n  name: a\n  labels: {team: pay, tier: '1'}\n  version: 42\n"))
	if err != nil {
		t.Fatal(err)
	}
	md := docs[0].Metadata
	if md.Labels["team"] != "pay" || md.Labels["tier"] != "1" || md.Version != 42 {
		t.Errorf("metadata %+v", md)
	}
}

func TestParseErrors(t *testing.T) {
	const head = "apiVersion: sluice/v1\nkind: Widget\n"
	for _, c := range []struct {
		name string
		in   string
		want map[int][]field
	}{
		{"bad YAML", head + "metadata:\n  name: a\nspec: [\n", map[int][]field{1: {{"", "yaml: line 5: did not find expected node content", 0}}}},
		{"bad YAML in the second document", head + "metadata: {name: a}\n---\n" + head + "metadata: {name: b\n",
			map[int][]field{2: {{"", "yaml: line", 0}}}},
		{"tab indentation", head + "metadata:\n\tname: a\n", map[int][]field{1: {{"", "yaml: line 4: found character that cannot start any token", 0}}}},
		{"bad JSON", "{\"apiVersion\": \"sluice/v1\",\n \"kind\": \"Widget\"\n \"metadata\": {}}", map[int][]field{1: {{"", "invalid character '\"' after object key:value pair", 3}}}},
		{"truncated JSON", `[{"apiVersion": "sluice/v1"`, map[int][]field{1: {{"", "unexpected end of JSON input", 0}}}},
		{"missing fields", "metadata: {}\nspec: {}\n", map[int][]field{1: {
			{"apiVersion", "required", 0}, {"kind", "required", 0}, {"metadata.name", "required", 1},
		}}},
		{"no metadata", head, map[int][]field{1: {{"metadata.name", "required", 0}}}},
		{"wrong apiVersion", "apiVersion: sluice/v2\nkind: Widget\nmetadata: {name: a}\n", map[int][]field{1: {{"apiVersion", `must be "sluice/v1", not "sluice/v2"`, 1}}}},
		{"bad name", head + "metadata: {name: Not_OK}\n", map[int][]field{1: {{"metadata.name", "lowercase", 3}}}},
		{"wrong types", "apiVersion: 1\nkind: [Widget]\nmetadata:\n  name: 5\n  labels: {tier: 1}\n  version: x\nspec: [1]\n",
			map[int][]field{1: {
				{"apiVersion", "must be a string, not a number", 1}, {"kind", "must be a string, not a list", 2},
				{"metadata.name", "must be a string", 4}, {"metadata.labels.tier", "quote it", 5},
				{"metadata.version", "must be an integer", 6}, {"spec", "must be a mapping, not a list", 7},
			}}},
		{"unknown envelope fields", head + "metadata: {name: a, nmae: b}\nspecs: {}\nstatus: {}\n", map[int][]field{1: {
			{"metadata.nmae", `unknown field (did you mean "name"?)`, 3}, {"specs", `did you mean "spec"?`, 4}, {"status", "unknown field", 5},
		}}},
		{"not a mapping", "a\n", map[int][]field{1: {{"", "must be a mapping", 0}}}},
		{"list of non-mappings", "- a\n- [b]\n", map[int][]field{1: {{"", "must be a mapping", 0}}, 2: {{"", "must be a mapping", 0}}}},
		{"repeated key", head + "metadata: {name: a}\nkind: Widget\n", map[int][]field{1: {{"kind", "repeated (first at line 2)", 4}}}},
		{"repeated JSON key", `{"kind": "Widget", "kind": "Widget"}`, map[int][]field{1: {{"kind", "repeated", 1}}}},
		{"NaN", head + "metadata: {name: a}\nspec: {x: .nan}\n", map[int][]field{1: {{"spec.x", "NaN", 4}}}},
		{"custom tag", head + "metadata: {name: a}\nspec: {x: !foo 1}\n", map[int][]field{1: {{"spec.x", "unsupported YAML tag !foo", 4}}}},
		{"quoted path", head + "metadata: {name: a}\nspec: {'a.b': !foo 1}\n", map[int][]field{1: {{`spec["a.b"]`, "tag", 4}}}},
		{"recursive alias", head + "metadata: {name: a}\nspec: &x {a: *x}\n", map[int][]field{1: {{"", "", 0}}}},
		{"two bad documents", "kind: Widget\nmetadata: {name: a}\n---\napiVersion: sluice/v1\nkind: Widget\nmetadata: {name: '-'}\n", map[int][]field{
			1: {{"apiVersion", "required", 0}}, 2: {{"metadata.name", "lowercase", 6}},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			docs, err := config.Parse([]byte(c.in))
			if docs != nil {
				t.Errorf("Parse returned %d documents with an error", len(docs))
			}
			if c.name == "recursive alias" { // any error will do, as long as it ends
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			checkErr(t, err, c.want)
		})
	}
}

func TestParseSourceNamesTheFile(t *testing.T) {
	_, err := config.ParseSource("rules.yaml", []byte("apiVersion: sluice/v1\nkind: Widget\nmetadata: {name: A}\n"))
	want := "config: rules.yaml: document 1 Widget/A (line 1): metadata.name (line 3): must be lowercase"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %v, want it to start with %q", err, want)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	in := []config.Document{
		configtest.Doc("a", configtest.Widget{Size: 1, Color: "true", Parts: []configtest.Part{{Name: "x", Weight: 3}}, Tags: map[string]string{"a.b": "null"}}),
		configtest.Doc("b", configtest.Widget{}),
	}
	in[0].Metadata.Labels = map[string]string{"team": "pay", "n": "1"}
	in[1].Metadata.Version = 7
	data, err := config.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `apiVersion: sluice/v1
kind: Widget
metadata:
  name: a
  labels:
    n: "1"
    team: pay
spec:
  color: "true"
  parts:
    - name: x
      weight: 3
  size: 1
  tags:
    a.b: "null"
---
apiVersion: sluice/v1
kind: Widget
metadata:
  name: b
  version: 7
spec: {}
`
	if string(data) != want {
		t.Errorf("Encode:\n%s\nwant:\n%s", data, want)
	}
	out, err := config.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	snapIn, err := config.NewSnapshot(1, in)
	if err != nil {
		t.Fatal(err)
	}
	snapOut, err := config.NewSnapshot(1, out)
	if err != nil {
		t.Fatal(err)
	}
	if !snapIn.Equal(snapOut) || out[1].Metadata.Version != 7 {
		t.Errorf("round trip changed the documents:\n%s", data)
	}
}

func TestParseLimits(t *testing.T) {
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	if _, err := config.Parse([]byte(`{"spec": ` + deep + `}`)); err == nil || !strings.Contains(err.Error(), "nested too deeply") {
		t.Errorf("deep JSON: %v", err)
	}
	// A billion laughs: each level doubles the values the aliases expand to.
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x]\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d]\n", i, i, i-1, i-1)
	}
	if _, err := config.Parse([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "too many values") {
		t.Errorf("alias bomb: %v", err)
	}
}

func TestParseKeepsNoHoldOnInput(t *testing.T) {
	data := []byte("apiVersion: sluice/v1\nkind: Widget\nmetadata: {name: a}\nspec: {size: 1}\n")
	docs, err := config.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = 'x'
	}
	if string(docs[0].Spec) != `{"size":1}` || docs[0].Metadata.Name != "a" {
		t.Errorf("document changed with its input: %+v", docs[0])
	}
}
