package config

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Decode checks d against its registered kind and returns its typed spec:
// the value the kind's New returned, filled in from d.Spec. It checks the
// envelope as Parse does, that the kind is registered, that the spec has no
// unknown fields and no values of the wrong type, and then runs the kind's
// Validate. A failure is an *InvalidError listing every field at fault.
func Decode(d Document) (any, error) {
	spec, _, err := decode(&d)
	if err != nil {
		return nil, err
	}
	return spec, nil
}

// Validate decodes every document, and checks that no two share a kind and
// name. It returns nil, or the *InvalidError of each bad document joined
// with errors.Join.
func Validate(docs []Document) error {
	var errs []error
	seen := make(map[Key]int, len(docs))
	for i := range docs {
		d := &docs[i]
		if _, _, err := decode(d); err != nil {
			setIndex(err, i+1)
			errs = append(errs, err)
			continue
		}
		if first, dup := seen[d.Key()]; dup {
			e := d.invalid(FieldErrors{{Path: "metadata.name", Reason: fmt.Sprintf("%s appears twice (first as document %d)", d.Key(), first)}})
			setIndex(e, i+1)
			errs = append(errs, e)
			continue
		}
		seen[d.Key()] = i + 1
	}
	return errors.Join(errs...)
}

// setIndex numbers a document built in code by its place in a batch.
func setIndex(e *InvalidError, i int) {
	if e.Index == 0 {
		e.Index = i
	}
}

// decode does Decode's work and also returns the spec as canonical JSON:
// compact, keys sorted.
func decode(d *Document) (spec any, canon json.RawMessage, _ *InvalidError) {
	fes := checkEnvelope(d)
	k, known := lookup(d.Kind)
	if d.Kind != "" && !known {
		fes = append(fes, &FieldError{Path: "kind", Reason: unknownKind(d.Kind)})
	}
	if known {
		var sfes FieldErrors
		spec, canon, sfes = decodeSpec(k, d.Spec)
		fes = append(fes, sfes...)
	}
	if len(fes) > 0 {
		return nil, nil, d.invalid(fes)
	}
	return spec, canon, nil
}

func unknownKind(kind string) string {
	known := Kinds()
	if len(known) == 0 {
		return fmt.Sprintf("unknown kind %q: no kinds are registered in this program", kind)
	}
	return fmt.Sprintf("unknown kind %q; known kinds: %s", kind, strings.Join(known, ", "))
}

func decodeSpec(k Kind, raw json.RawMessage) (any, json.RawMessage, FieldErrors) {
	var tree any = map[string]any{}
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, FieldErrors{{Path: "spec", Reason: "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}}
		}
		if dec.More() {
			return nil, nil, FieldErrors{{Path: "spec", Reason: "invalid JSON: more than one value"}}
		}
		if v != nil {
			tree = v
		}
	}
	if _, ok := tree.(map[string]any); !ok {
		return nil, nil, FieldErrors{{Path: "spec", Reason: "must be a mapping, not " + typeName(tree)}}
	}
	canon, err := marshalJSON(tree)
	if err != nil {
		return nil, nil, FieldErrors{{Path: "spec", Reason: err.Error()}}
	}
	spec := k.New()
	var fes FieldErrors
	check(tree, reflect.TypeOf(spec), "spec", &fes)
	if len(fes) > 0 {
		return nil, nil, fes
	}
	// The walk above found what encoding/json would refuse, with paths; this
	// is the decoding itself, strict as a backstop.
	dec := json.NewDecoder(bytes.NewReader(canon))
	dec.DisallowUnknownFields()
	if err := dec.Decode(spec); err != nil {
		return nil, nil, FieldErrors{jsonFieldError(err)}
	}
	for _, fe := range fieldErrors(k.Validate(spec)) {
		c := *fe
		c.Path = specPath(c.Path)
		fes = append(fes, &c)
	}
	if len(fes) > 0 {
		return nil, nil, fes
	}
	return spec, canon, nil
}

// specPath makes a validator's path start at the document root.
func specPath(p string) string {
	switch {
	case p == "" || p == "spec":
		return "spec"
	case strings.HasPrefix(p, "spec.") || strings.HasPrefix(p, "spec["):
		return p
	case p[0] == '[':
		return "spec" + p
	}
	return "spec." + p
}

func jsonFieldError(err error) *FieldError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &FieldError{Path: "spec." + te.Field, Reason: "must be " + te.Type.String() + ", not " + te.Value}
	}
	return &FieldError{Path: "spec", Reason: strings.TrimPrefix(err.Error(), "json: ")}
}

// ---- the walk: the spec tree against the Go type it decodes into

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// check reports, with paths, every value of v that encoding/json would not
// decode into a t: unknown fields, wrong types, numbers out of range, and
// errors of the type's own UnmarshalJSON or UnmarshalText.
func check(v any, t reflect.Type, path string, fes *FieldErrors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return // null leaves the zero value
	}
	add := func(reason string) { *fes = append(*fes, &FieldError{Path: path, Reason: reason}) }
	pt := reflect.PointerTo(t)
	if pt.Implements(jsonUnmarshalerType) {
		b, err := marshalJSON(v)
		if err == nil {
			err = reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(b)
		}
		if err != nil {
			add(unmarshalReason(err))
		}
		return
	}
	if pt.Implements(textUnmarshalerType) {
		s, ok := v.(string)
		if !ok {
			add("must be a string, not " + typeName(v))
			return
		}
		if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			add(unmarshalReason(err))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			add("must be a mapping, not " + typeName(v))
			return
		}
		fields := structFields(t)
		for _, k := range sortedKeys(m) {
			p := keyPath(path, k)
			f, ok := fields.byName[k]
			if !ok {
				*fes = append(*fes, unknownField(p, k, fields.names))
				continue
			}
			if !f.opaque {
				check(m[k], f.typ, p, fes)
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			add("must be a mapping, not " + typeName(v))
			return
		}
		kt := t.Key()
		for _, k := range sortedKeys(m) {
			p := keyPath(path, k)
			if r := keyReason(k, kt); r != "" {
				*fes = append(*fes, &FieldError{Path: p, Reason: r})
				continue
			}
			check(m[k], t.Elem(), p, fes)
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			if _, ok := v.(string); !ok {
				add("must be a base64 string, not " + typeName(v))
			}
			return
		}
		l, ok := v.([]any)
		if !ok {
			add("must be a list, not " + typeName(v))
			return
		}
		if t.Kind() == reflect.Array && len(l) > t.Len() {
			add(fmt.Sprintf("must have at most %d items", t.Len()))
			return
		}
		for i, x := range l {
			check(x, t.Elem(), indexPath(path, i), fes)
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			add("must be a string, not " + typeName(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			add("must be true or false, not " + typeName(v))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			add("must be an integer, not " + typeName(v))
			return
		}
		if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err != nil {
			add(numberReason(n, err, "an integer"))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, ok := v.(json.Number)
		if !ok {
			add("must be a non-negative integer, not " + typeName(v))
			return
		}
		if strings.HasPrefix(string(n), "-") {
			add("must not be negative")
			return
		}
		if _, err := strconv.ParseUint(string(n), 10, t.Bits()); err != nil {
			add(numberReason(n, err, "a non-negative integer"))
		}
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			add("must be a number, not " + typeName(v))
			return
		}
		if _, err := strconv.ParseFloat(string(n), t.Bits()); err != nil {
			add(numberReason(n, err, "a number"))
		}
	}
	// Interfaces take anything; other kinds cannot be decoded into and are
	// left to encoding/json.
}

func numberReason(n json.Number, err error, want string) string {
	if errors.Is(err, strconv.ErrRange) {
		return string(n) + " is out of range"
	}
	return "must be " + want + ", not " + string(n)
}

func unmarshalReason(err error) string {
	return strings.TrimPrefix(strings.TrimPrefix(err.Error(), "json: "), "config: ")
}

// keyReason says why a mapping key cannot be a key of type kt; "" if it can.
func keyReason(k string, kt reflect.Type) string {
	if reflect.PointerTo(kt).Implements(textUnmarshalerType) {
		if err := reflect.New(kt).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(k)); err != nil {
			return "bad key: " + unmarshalReason(err)
		}
		return ""
	}
	switch kt.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if _, err := strconv.ParseInt(k, 10, kt.Bits()); err != nil {
			return "key must be an integer"
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if _, err := strconv.ParseUint(k, 10, kt.Bits()); err != nil {
			return "key must be a non-negative integer"
		}
	}
	return ""
}

// unknownField reports key as unknown, suggesting the nearest known name.
func unknownField(path, key string, known []string) *FieldError {
	reason := "unknown field"
	if s := nearest(key, known); s != "" {
		reason += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return &FieldError{Path: path, Reason: reason}
}

// nearest returns the known name closest to key: equal but for case, or at
// most two edits away; "" if none is.
func nearest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if strings.EqualFold(k, key) {
			return k
		}
		if d := editDistance(strings.ToLower(key), strings.ToLower(k)); d < bestD && d < len(k) {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// fieldSet is what a struct type accepts, by JSON name.
type fieldSet struct {
	byName map[string]fieldInfo
	names  []string
}

type fieldInfo struct {
	typ    reflect.Type
	opaque bool // ",string" fields: left to encoding/json
	depth  int
}

var fieldCache sync.Map // reflect.Type -> *fieldSet

// structFields lists the JSON fields of struct type t as encoding/json sees
// them: tags, "-", embedded structs promoted (shallower fields win).
func structFields(t reflect.Type) *fieldSet {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(*fieldSet)
	}
	fs := &fieldSet{byName: map[string]fieldInfo{}}
	var walk func(t reflect.Type, depth int, seen map[reflect.Type]bool)
	walk = func(t reflect.Type, depth int, seen map[reflect.Type]bool) {
		if seen[t] {
			return
		}
		seen[t] = true
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if sf.Anonymous && name == "" {
				ft := sf.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft, depth+1, seen)
					continue
				}
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			if old, dup := fs.byName[name]; dup && old.depth <= depth {
				continue
			}
			fs.byName[name] = fieldInfo{typ: sf.Type, opaque: strings.Contains(","+opts+",", ",string,"), depth: depth}
		}
	}
	walk(t, 0, map[reflect.Type]bool{})
	for n := range fs.byName {
		fs.names = append(fs.names, n)
	}
	sort.Strings(fs.names)
	actual, _ := fieldCache.LoadOrStore(t, fs)
	return actual.(*fieldSet)
}
