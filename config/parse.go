package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"

	yaml "go.yaml.in/yaml/v3"
)

// Limits on what Parse accepts, so that a hostile or broken input cannot eat
// the process: rule documents are small and shallow.
const (
	maxDepth = 64      // nesting of mappings and sequences
	maxNodes = 100_000 // values in one input, aliases expanded
)

// Parse reads documents from YAML or JSON. YAML may hold several documents
// separated by "---"; JSON may be one object, an array of objects, or
// several values one after another. A YAML list, like a JSON array, is a
// list of documents. Empty YAML documents are skipped.
//
// Parse checks the envelope: syntax, the shape and type of apiVersion, kind,
// metadata and spec, no unknown fields beside them, apiVersion "sluice/v1",
// kind and metadata.name present and well formed. It does not look at the
// spec: Decode, NewSnapshot and the stores do that against the registered
// kinds. Every error is an *InvalidError (several are joined with
// errors.Join) naming the document, the field path and the line.
func Parse(data []byte) ([]Document, error) { return ParseSource("", data) }

// ParseSource is Parse for data read from source (a file name, an etcd
// key), which errors name, now and when the documents are validated later.
func ParseSource(source string, data []byte) ([]Document, error) {
	raws, err := parseValues(source, data)
	var errs []error
	docs := make([]Document, 0, len(raws))
	for _, r := range raws {
		d, fes := r.document()
		if fes = append(fes, checkEnvelopeOnce(&d, fes)...); len(fes) > 0 {
			errs = append(errs, d.invalid(fes))
			continue
		}
		docs = append(docs, d)
	}
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return docs, nil
}

// checkEnvelopeOnce runs the envelope checks, except for fields whose shape
// was already wrong.
func checkEnvelopeOnce(d *Document, shape FieldErrors) FieldErrors {
	bad := make(map[string]bool, len(shape))
	for _, e := range shape {
		bad[e.Path] = true
	}
	if bad[""] {
		return nil
	}
	var out FieldErrors
	for _, e := range checkEnvelope(d) {
		if !bad[e.Path] && !(e.Path == "metadata.name" && bad["metadata"]) {
			out = append(out, e)
		}
	}
	return out
}

// invalid wraps field errors of d into an *InvalidError, with lines.
func (d *Document) invalid(fes FieldErrors) *InvalidError {
	e := &InvalidError{Kind: d.Kind, Name: d.Metadata.Name, Fields: make(FieldErrors, len(fes))}
	for i, fe := range fes {
		c := *fe
		if c.Line == 0 && d.src != nil {
			c.Line = d.src.lineOf(c.Path)
		}
		e.Fields[i] = &c
	}
	if d.src != nil {
		e.Source, e.Index, e.Line = d.src.name, d.src.index, d.src.line
	}
	return e
}

// rawDoc is one parsed document before its envelope is read: a tree of
// map[string]any, []any, string, json.Number, bool and nil.
type rawDoc struct {
	value any
	src   *source
}

// parseValues splits data into documents. It returns those read before a
// syntax error together with the error.
func parseValues(name string, data []byte) ([]rawDoc, error) {
	if looksLikeJSON(data) {
		docs, err := parseJSON(name, bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
		if err == nil {
			return docs, nil
		}
		// YAML is a superset of JSON in practice ({a: 1} is YAML, not JSON):
		// try it, and report the JSON error if YAML fails too.
		if ydocs, yerr := parseYAML(name, data); yerr == nil {
			return ydocs, nil
		}
		return docs, err
	}
	return parseYAML(name, data)
}

func looksLikeJSON(data []byte) bool {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	for _, c := range data {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[':
			return true
		}
		return false
	}
	return false
}

// syntaxError reports a syntax error in document index of source.
func syntaxError(name string, index, line int, reason string) *InvalidError {
	return &InvalidError{Source: name, Index: index, Fields: FieldErrors{{Line: line, Reason: reason}}}
}

// ---- YAML

func parseYAML(name string, data []byte) ([]rawDoc, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	w := &yamlWalker{budget: maxNodes}
	var docs []rawDoc
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return docs, syntaxError(name, len(docs)+1, 0, err.Error())
		}
		if isEmptyYAML(&n) {
			continue
		}
		root := n.Content[0]
		items := []*yaml.Node{root}
		if root.Kind == yaml.SequenceNode {
			items = root.Content // a list of documents, as a JSON array is
		}
		for _, item := range items {
			src := &source{name: name, index: len(docs) + 1, line: item.Line, lines: map[string]int{}}
			w.src = src
			v, fe := w.value(item, "", 0)
			if fe != nil {
				return docs, &InvalidError{Source: name, Index: src.index, Line: src.line, Fields: FieldErrors{fe}}
			}
			docs = append(docs, rawDoc{value: v, src: src})
		}
	}
}

// isEmptyYAML reports whether a document node holds nothing: only comments,
// or null.
func isEmptyYAML(n *yaml.Node) bool {
	if len(n.Content) == 0 {
		return true
	}
	c := n.Content[0]
	return c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null"
}

type yamlWalker struct {
	src    *source
	budget int
}

// value converts a YAML node to the JSON-like tree and records field lines.
func (w *yamlWalker) value(n *yaml.Node, path string, depth int) (any, *FieldError) {
	if w.budget--; w.budget < 0 {
		return nil, &FieldError{Path: path, Line: n.Line, Reason: "too many values (aliases expanded)"}
	}
	if depth > maxDepth {
		return nil, &FieldError{Path: path, Line: n.Line, Reason: "nested too deeply"}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return nil, &FieldError{Line: n.Line, Reason: "empty document"}
		}
		return w.value(n.Content[0], path, depth)
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, &FieldError{Path: path, Line: n.Line, Reason: "unknown alias"}
		}
		return w.value(n.Alias, path, depth+1)
	case yaml.ScalarNode:
		return w.scalar(n, path)
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			p := indexPath(path, i)
			w.src.lines[p] = c.Line
			v, fe := w.value(c, p, depth+1)
			if fe != nil {
				return nil, fe
			}
			out[i] = v
		}
		return out, nil
	case yaml.MappingNode:
		return w.mapping(n, path, depth)
	}
	return nil, &FieldError{Path: path, Line: n.Line, Reason: "unsupported YAML node"}
}

func (w *yamlWalker) mapping(n *yaml.Node, path string, depth int) (any, *FieldError) {
	out := make(map[string]any, len(n.Content)/2)
	keyLine := make(map[string]int, len(n.Content)/2)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			return nil, &FieldError{Path: path, Line: k.Line, Reason: "mapping keys must be plain scalars"}
		}
		key := k.Value
		p := keyPath(path, key)
		if first, dup := keyLine[key]; dup {
			return nil, &FieldError{Path: p, Line: k.Line, Reason: "key " + strconv.Quote(key) + " repeated (first at line " + strconv.Itoa(first) + ")"}
		}
		keyLine[key] = k.Line
		w.src.lines[p] = k.Line
		val, fe := w.value(v, p, depth+1)
		if fe != nil {
			return nil, fe
		}
		out[key] = val
	}
	// Merge keys (<<: *base) fill in what the mapping does not set itself;
	// of several merged mappings, the first wins.
	for _, m := range merges {
		srcs := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, s := range srcs {
			v, fe := w.value(s, path, depth+1)
			if fe != nil {
				return nil, fe
			}
			mm, ok := v.(map[string]any)
			if !ok {
				return nil, &FieldError{Path: path, Line: s.Line, Reason: "merge (<<) needs a mapping"}
			}
			for k, x := range mm {
				if _, set := out[k]; !set {
					out[k] = x
				}
			}
		}
	}
	return out, nil
}

func (w *yamlWalker) scalar(n *yaml.Node, path string) (any, *FieldError) {
	switch tag := n.ShortTag(); tag {
	case "!!str", "!!timestamp", "!!binary":
		// Timestamps stay the text they were written as; binary stays base64.
		return n.Value, nil
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, &FieldError{Path: path, Line: n.Line, Reason: err.Error()}
		}
		return b, nil
	case "!!int":
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, &FieldError{Path: path, Line: n.Line, Reason: err.Error()}
		}
		switch i := v.(type) {
		case int:
			return json.Number(strconv.FormatInt(int64(i), 10)), nil
		case int64:
			return json.Number(strconv.FormatInt(i, 10)), nil
		case uint64:
			return json.Number(strconv.FormatUint(i, 10)), nil
		case float64:
			return floatNumber(i, n, path)
		}
		return nil, &FieldError{Path: path, Line: n.Line, Reason: "integer out of range"}
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, &FieldError{Path: path, Line: n.Line, Reason: err.Error()}
		}
		return floatNumber(f, n, path)
	default:
		return nil, &FieldError{Path: path, Line: n.Line, Reason: "unsupported YAML tag " + tag}
	}
}

func floatNumber(f float64, n *yaml.Node, path string) (any, *FieldError) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, &FieldError{Path: path, Line: n.Line, Reason: "infinity and NaN are not allowed"}
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
}

// ---- JSON

func parseJSON(name string, data []byte) ([]rawDoc, error) {
	p := &jsonParser{dec: json.NewDecoder(bytes.NewReader(data)), name: name, lineAt: lineIndex(data), budget: maxNodes}
	p.dec.UseNumber()
	var docs []rawDoc
	fail := func(err error) ([]rawDoc, error) {
		var ie *InvalidError
		if errors.As(err, &ie) {
			return docs, ie
		}
		// Token errors lack context ("invalid character 'n'"); a plain
		// decode of the same input says more, at the same place.
		if full := jsonDecodeAll(data); full != nil {
			err = full
		}
		return docs, syntaxError(name, len(docs)+1, p.errLine(err), jsonReason(err))
	}
	for {
		tok, err := p.dec.Token()
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return fail(err)
		}
		if d, ok := tok.(json.Delim); ok && d == '[' {
			for p.dec.More() {
				tok, err := p.dec.Token()
				if err != nil {
					return fail(err)
				}
				doc, err := p.document(tok, len(docs)+1)
				if err != nil {
					return fail(err)
				}
				docs = append(docs, doc)
			}
			if _, err := p.dec.Token(); err != nil {
				return fail(err)
			}
			continue
		}
		doc, err := p.document(tok, len(docs)+1)
		if err != nil {
			return fail(err)
		}
		docs = append(docs, doc)
	}
}

type jsonParser struct {
	dec    *json.Decoder
	name   string
	lineAt func(offset int64) int
	src    *source
	budget int
}

// document reads one document whose first token was just read.
func (p *jsonParser) document(first json.Token, index int) (rawDoc, error) {
	p.src = &source{name: p.name, index: index, line: p.here(), lines: map[string]int{}}
	v, err := p.value(first, "", 0)
	if err != nil {
		return rawDoc{}, err
	}
	return rawDoc{value: v, src: p.src}, nil
}

// here returns the line of the last byte of the token just read.
func (p *jsonParser) here() int { return p.lineAt(p.dec.InputOffset() - 1) }

func (p *jsonParser) fieldError(path, reason string) error {
	return &InvalidError{Source: p.name, Index: p.src.index, Line: p.src.line,
		Fields: FieldErrors{{Path: path, Line: p.here(), Reason: reason}}}
}

func (p *jsonParser) value(tok json.Token, path string, depth int) (any, error) {
	if p.budget--; p.budget < 0 {
		return nil, p.fieldError(path, "too many values")
	}
	if depth > maxDepth {
		return nil, p.fieldError(path, "nested too deeply")
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, json.Number, bool or nil
	}
	switch d {
	case '{':
		out := map[string]any{}
		for p.dec.More() {
			kt, err := p.dec.Token()
			if err != nil {
				return nil, err
			}
			key := kt.(string) // the decoder guarantees object keys are strings
			kp := keyPath(path, key)
			if _, dup := out[key]; dup {
				return nil, p.fieldError(kp, "key "+strconv.Quote(key)+" repeated")
			}
			p.src.lines[kp] = p.here()
			vt, err := p.dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := p.value(vt, kp, depth+1)
			if err != nil {
				return nil, err
			}
			out[key] = v
		}
		if _, err := p.dec.Token(); err != nil {
			return nil, err
		}
		return out, nil
	case '[':
		out := []any{}
		for i := 0; p.dec.More(); i++ {
			ip := indexPath(path, i)
			vt, err := p.dec.Token()
			if err != nil {
				return nil, err
			}
			p.src.lines[ip] = p.here()
			v, err := p.value(vt, ip, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		if _, err := p.dec.Token(); err != nil {
			return nil, err
		}
		return out, nil
	}
	return nil, p.fieldError(path, "unexpected "+d.String())
}

// jsonDecodeAll decodes every value of data and returns the first error.
func jsonDecodeAll(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var v any
		if err := dec.Decode(&v); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

func (p *jsonParser) errLine(err error) int {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return p.lineAt(se.Offset)
	}
	return p.lineAt(p.dec.InputOffset())
}

func jsonReason(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of JSON input"
	}
	return err.Error()
}

// lineIndex returns a function from byte offset to 1-based line number.
func lineIndex(data []byte) func(int64) int {
	var starts []int64
	for i, c := range data {
		if c == '\n' {
			starts = append(starts, int64(i))
		}
	}
	return func(off int64) int {
		// The number of newlines before off, plus one.
		return sort.Search(len(starts), func(i int) bool { return starts[i] >= off }) + 1
	}
}

// ---- paths

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)

// keyPath appends a mapping key to a field path.
func keyPath(path, key string) string {
	if !plainKey.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// indexPath appends a sequence index to a field path.
func indexPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// ---- envelope

// document reads the envelope of a raw document. Field errors are about
// shape: wrong types, unknown fields.
func (r rawDoc) document() (Document, FieldErrors) {
	d := Document{src: r.src}
	m, ok := r.value.(map[string]any)
	if !ok {
		return d, FieldErrors{{Reason: "a document must be a mapping with apiVersion, kind, metadata and spec"}}
	}
	var errs FieldErrors
	str := func(path string, v any) string {
		s, ok := v.(string)
		if !ok && v != nil {
			errs = append(errs, &FieldError{Path: path, Reason: "must be a string, not " + typeName(v)})
		}
		return s
	}
	for _, k := range sortedKeys(m) {
		v := m[k]
		switch k {
		case "apiVersion":
			d.APIVersion = str(k, v)
		case "kind":
			d.Kind = str(k, v)
		case "metadata":
			errs = append(errs, readMetadata(&d.Metadata, v)...)
		case "spec":
			switch v.(type) {
			case nil:
			case map[string]any:
				b, err := marshalJSON(v)
				if err != nil {
					errs = append(errs, &FieldError{Path: "spec", Reason: err.Error()})
				}
				d.Spec = b
			default:
				errs = append(errs, &FieldError{Path: "spec", Reason: "must be a mapping, not " + typeName(v)})
			}
		default:
			errs = append(errs, unknownField(keyPath("", k), k, []string{"apiVersion", "kind", "metadata", "spec"}))
		}
	}
	return d, errs
}

func readMetadata(md *Metadata, v any) FieldErrors {
	m, ok := v.(map[string]any)
	if !ok {
		return FieldErrors{{Path: "metadata", Reason: "must be a mapping, not " + typeName(v)}}
	}
	var errs FieldErrors
	for _, k := range sortedKeys(m) {
		v := m[k]
		p := keyPath("metadata", k)
		switch k {
		case "name":
			s, ok := v.(string)
			if !ok {
				errs = append(errs, &FieldError{Path: p, Reason: "must be a string, not " + typeName(v)})
			}
			md.Name = s
		case "labels":
			if v == nil {
				continue
			}
			lm, ok := v.(map[string]any)
			if !ok {
				errs = append(errs, &FieldError{Path: p, Reason: "must be a mapping of strings, not " + typeName(v)})
				continue
			}
			md.Labels = make(map[string]string, len(lm))
			for _, lk := range sortedKeys(lm) {
				s, ok := lm[lk].(string)
				if !ok {
					errs = append(errs, &FieldError{Path: keyPath(p, lk), Reason: "label values must be strings, not " + typeName(lm[lk]) + " (quote it)"})
				}
				md.Labels[lk] = s
			}
		case "version":
			n, ok := v.(json.Number)
			i, err := n.Int64()
			if !ok || err != nil {
				errs = append(errs, &FieldError{Path: p, Reason: "must be an integer"})
			}
			md.Version = i
		default:
			errs = append(errs, unknownField(p, k, []string{"name", "labels", "version"}))
		}
	}
	return errs
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// typeName names the type of a tree value for error messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return "an unknown value"
}

// marshalJSON encodes a tree compactly, without HTML escaping.
func marshalJSON(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
