package config_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/config/configtest"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// widget builds a Widget document with a raw JSON spec.
func widget(name, spec string) config.Document {
	return config.Document{APIVersion: config.APIVersion, Kind: "Widget", Metadata: config.Metadata{Name: name}, Spec: json.RawMessage(spec)}
}

func TestDecode(t *testing.T) {
	for _, c := range []struct {
		name string
		doc  config.Document
		want []field // none: valid
	}{
		{"valid", widget("a", `{"size": 2, "timeout": "1.5s", "parts": [{"name": "x", "weight": 100}], "tags": {"k": "v"}}`), nil},
		{"no spec", widget("a", ``), nil},
		{"null spec", widget("a", `null`), nil},
		{"wrong apiVersion", config.Document{APIVersion: "v1", Kind: "Widget", Metadata: config.Metadata{Name: "a"}},
			[]field{{"apiVersion", `must be "sluice/v1"`, 0}}},
		{"unknown kind", config.Document{APIVersion: config.APIVersion, Kind: "Gizmo", Metadata: config.Metadata{Name: "a"}},
			[]field{{"kind", `unknown kind "Gizmo"; known kinds: Greeting, Nil, Outer, Plain, Relative, Widget`, 0}}},
		{"unknown spec field", widget("a", `{"foo": 1}`), []field{{"spec.foo", "unknown field", 0}}},
		{"misspelt field", widget("a", `{"Size": 1, "colr": "red"}`), []field{
			{"spec.Size", `unknown field (did you mean "size"?)`, 0}, {"spec.colr", `did you mean "color"?`, 0},
		}},
		{"nested unknown field", widget("a", `{"parts": [{"name": "x"}, {"nme": "y"}]}`), []field{{"spec.parts[1].nme", `did you mean "name"?`, 0}}},
		{"wrong types", widget("a", `{"size": "big", "color": 3, "parts": {}, "tags": {"k": 1}}`), []field{
			{"spec.size", "must be an integer, not a string", 0}, {"spec.color", "must be a string, not a number", 0},
			{"spec.parts", "must be a list, not a mapping", 0}, {"spec.tags.k", "must be a string", 0},
		}},
		{"fraction for an integer", widget("a", `{"size": 1.5}`), []field{{"spec.size", "must be an integer, not 1.5", 0}}},
		{"out of range", widget("a", `{"size": 99999999999999999999}`), []field{{"spec.size", "out of range", 0}}},
		{"bad duration", widget("a", `{"timeout": "5 parsecs"}`), []field{{"spec.timeout", `must be a duration such as "250ms"`, 0}}},
		{"number for a duration", widget("a", `{"timeout": 5}`), []field{{"spec.timeout", "must be a duration", 0}}},
		{"spec not a mapping", widget("a", `[1]`), []field{{"spec", "must be a mapping, not a list", 0}}},
		{"spec not JSON", widget("a", `{`), []field{{"spec", "invalid JSON", 0}}},
		{"validator error", widget("a", `{"size": -1}`), []field{{"spec.size", "must not be negative", 0}}},
		{"several validator errors", widget("a", `{"size": -1, "parts": [{"weight": 101}]}`), []field{
			{"spec.size", "must not be negative", 0}, {"spec.parts[0].name", "required", 0}, {"spec.parts[0].weight", "from 0 to 100", 0},
		}},
		{"envelope and spec errors together", config.Document{APIVersion: config.APIVersion, Kind: "Widget", Spec: json.RawMessage(`{"x":1}`)},
			[]field{{"metadata.name", "required", 0}, {"spec.x", "unknown field", 0}}},
		{"validator returns a plain error", config.Document{APIVersion: config.APIVersion, Kind: "Plain", Metadata: config.Metadata{Name: "a"}},
			[]field{{"spec", "plain error", 0}}},
		{"validator paths relative to spec", config.Document{APIVersion: config.APIVersion, Kind: "Relative", Metadata: config.Metadata{Name: "a"}},
			[]field{{"spec.n", "r1", 0}, {"spec[0]", "r2", 0}}},
		{"nil validator", config.Document{APIVersion: config.APIVersion, Kind: "Nil", Metadata: config.Metadata{Name: "a"}}, nil},
		{"nil validator, unknown field", config.Document{APIVersion: config.APIVersion, Kind: "Nil", Metadata: config.Metadata{Name: "a"}, Spec: json.RawMessage(`{"a":1}`)},
			[]field{{"spec.a", "unknown field", 0}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec, err := config.Decode(c.doc)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if c.doc.Kind == "Widget" && spec.(*configtest.Widget) == nil {
					t.Fatal("nil spec")
				}
				return
			}
			if spec != nil {
				t.Errorf("spec %v with an error", spec)
			}
			checkErr(t, err, map[int][]field{0: c.want})
			if code := status.Code(err); code != codes.InvalidArgument {
				t.Errorf("code %v, want InvalidArgument", code)
			}
		})
	}
}

func TestDecodeTypedSpec(t *testing.T) {
	spec, err := config.Decode(widget("a", `{"size": 2, "timeout": "1.5s", "parts": [{"name": "x", "weight": 9}]}`))
	if err != nil {
		t.Fatal(err)
	}
	w := spec.(*configtest.Widget)
	if w.Size != 2 || time.Duration(w.Timeout) != 1500*time.Millisecond || len(w.Parts) != 1 || w.Parts[0].Weight != 9 {
		t.Errorf("spec %+v", w)
	}
}

func TestDecodeLinesFromSource(t *testing.T) {
	docs, err := config.Parse([]byte("apiVersion: sluice/v1\nkind: Widget\nmetadata: {name: a}\nspec:\n  size: -1\n  parts:\n    - name: p\n      weight: 500\n    - weight: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = config.Decode(docs[0])
	checkErr(t, err, map[int][]field{1: {
		{"spec.size", "negative", 5}, {"spec.parts[0].weight", "from 0 to 100", 8},
		// parts[1].name is missing: the line is that of the part.
		{"spec.parts[1].name", "required", 9},
	}})
}

// Embedded structs, "-" fields and ",string" options follow encoding/json.
type inner struct {
	A int `json:"a"`
}

type outer struct {
	inner
	B    int    `json:"b"`
	Skip string `json:"-"`
	S    int    `json:"s,string"`
	Raw  json.RawMessage
	Any  any `json:"any"`
	M    map[int]bool
	Arr  [2]int  `json:"arr"`
	Ptr  *inner  `json:"ptr"`
	Data []byte  `json:"data"`
	U    uint8   `json:"u"`
	F    float32 `json:"f"`
}

func TestDecodeFollowsEncodingJSON(t *testing.T) {
	doc := func(spec string) config.Document {
		return config.Document{APIVersion: config.APIVersion, Kind: "Outer", Metadata: config.Metadata{Name: "o"}, Spec: json.RawMessage(spec)}
	}
	spec, err := config.Decode(doc(`{"a": 1, "b": 2, "s": "3", "Raw": {"x": [1]}, "any": [true], "M": {"4": true}, "arr": [5, 6], "ptr": {"a": 7}, "data": "aGk=", "u": 8, "f": 0.5}`))
	if err != nil {
		t.Fatal(err)
	}
	o := spec.(*outer)
	if o.A != 1 || o.B != 2 || o.S != 3 || string(o.Raw) != `{"x":[1]}` || !o.M[4] || o.Arr[1] != 6 || o.Ptr.A != 7 || string(o.Data) != "hi" || o.U != 8 {
		t.Errorf("decoded %+v", o)
	}
	_, err = config.Decode(doc(`{"Skip": "x", "M": {"k": true}, "arr": [1, 2, 3], "ptr": {"b": 1}, "data": 5, "u": -1, "f": "x", "s": "x"}`))
	checkErr(t, err, map[int][]field{0: {
		{"spec.Skip", "unknown field", 0}, {"spec.M.k", "key must be an integer", 0}, {"spec.arr", "at most 2 items", 0},
		{"spec.ptr.b", "unknown field", 0}, {"spec.data", "base64", 0}, {"spec.u", "must not be negative", 0},
		{"spec.f", "must be a number", 0},
		// "s" is ",string": left to encoding/json, which fails after the walk passes.
	}})
	_, err = config.Decode(doc(`{"s": "x"}`))
	checkErr(t, err, map[int][]field{0: {{"spec", "invalid use of ,string", 0}}})
}

func TestValidateBatch(t *testing.T) {
	err := config.Validate([]config.Document{
		widget("a", `{"size": 1}`),
		widget("b", `{"size": -1}`),
		widget("a", `{"size": 2}`),
	})
	checkErr(t, err, map[int][]field{
		2: {{"spec.size", "negative", 0}},
		3: {{"metadata.name", "Widget/a appears twice (first as document 1)", 0}},
	})
	if err := config.Validate([]config.Document{widget("a", ``), widget("b", ``)}); err != nil {
		t.Errorf("valid batch: %v", err)
	}
}

func TestRegisterPanics(t *testing.T) {
	for _, c := range []struct {
		name string
		kind string
		k    config.Kind
	}{
		{"lowercase", "widget", config.KindOf[struct{}](nil)},
		{"taken", "Widget", config.KindOf[struct{}](nil)},
		{"nil", "Fresh", nil},
		{"not a pointer", "Fresh", notPointer{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil || !strings.HasPrefix(r.(string), "config: Register") {
					t.Errorf("recovered %v, want a config: Register panic", r)
				}
			}()
			config.Register(c.kind, c.k)
		})
	}
	if config.Registered("Fresh") || !config.Registered("Widget") {
		t.Errorf("Registered is wrong")
	}
}

type notPointer struct{}

func (notPointer) New() any           { return struct{}{} }
func (notPointer) Validate(any) error { return nil }

func TestErrorsCarryCodes(t *testing.T) {
	k := config.Key{Kind: "Widget", Name: "a"}
	for _, c := range []struct {
		err      error
		sentinel error
		code     codes.Code
		text     string
	}{
		{&config.ConflictError{Key: k, Expected: 3, Actual: 5}, config.ErrConflict, codes.Aborted, "config: Widget/a: version conflict: expected version 3, found version 5"},
		{&config.ConflictError{Key: k, Expected: config.Absent, Actual: 5}, config.ErrConflict, codes.Aborted, "expected absent, found version 5"},
		{&config.ConflictError{Key: k, Expected: 3}, config.ErrConflict, codes.Aborted, "expected version 3, found absent"},
		{&config.NotFoundError{Key: k}, config.ErrNotFound, codes.NotFound, "config: Widget/a: not found"},
	} {
		if !errors.Is(c.err, c.sentinel) || status.Code(c.err) != c.code || !strings.HasSuffix(c.err.Error(), c.text) {
			t.Errorf("%v: want errors.Is %v, code %v, text %q", c.err, c.sentinel, c.code, c.text)
		}
	}
}

func TestDuration(t *testing.T) {
	var d config.Duration
	if err := json.Unmarshal([]byte(`"250ms"`), &d); err != nil || d != config.Duration(250*time.Millisecond) {
		t.Errorf("250ms: %v %v", d, err)
	}
	if err := json.Unmarshal([]byte(`null`), &d); err != nil || d != config.Duration(250*time.Millisecond) {
		t.Errorf("null changed d: %v %v", d, err)
	}
	b, err := json.Marshal(config.Duration(90 * time.Second))
	if err != nil || string(b) != `"1m30s"` {
		t.Errorf("Marshal = %s, %v", b, err)
	}
}
