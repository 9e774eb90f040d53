package config

import (
	"encoding/json"
	"regexp"
)

// APIVersion is the apiVersion every document carries.
const APIVersion = "sluice/v1"

// Absent, as the expected version of a document, means "only if no document
// of that kind and name exists yet": Apply creates, never overwrites.
const Absent int64 = -1

// Document is one governance rule document, as written in YAML or JSON:
//
//	apiVersion: sluice/v1
//	kind: TrafficPolicy
//	metadata:
//	  name: checkout
//	spec:
//	  ...
//
// What spec holds depends on kind; the package that owns a kind registers it
// with Register, and Decode turns the spec into that kind's typed value.
type Document struct {
	// APIVersion must be "sluice/v1" (APIVersion).
	APIVersion string `json:"apiVersion"`
	// Kind names the registered kind of the spec: "TrafficPolicy", ...
	Kind string `json:"kind"`
	// Metadata names the document.
	Metadata Metadata `json:"metadata"`
	// Spec is the kind's settings as JSON. Omitted or null means the kind's
	// zero value, that is every setting at its default.
	Spec json.RawMessage `json:"spec,omitempty"`

	// src is where Parse found the document, for line numbers in errors;
	// nil for documents built in code.
	src *source
}

// Metadata names a document.
type Metadata struct {
	// Name is unique among documents of one kind: lowercase letters, digits,
	// '-' and '.', starting and ending with a letter or digit, at most 253
	// characters (a DNS subdomain, as Kubernetes names are). Required.
	Name string `json:"name"`
	// Labels are free-form key/value pairs for people and tools; no effect
	// on the rules. Default: none.
	Labels map[string]string `json:"labels,omitempty"`
	// Version is the store's version of the document (for etcd, the key's
	// ModRevision). Stores set it when they read; it is never written.
	//
	// In Apply it is the version the caller expects to replace: 0 applies
	// whatever is stored (create or overwrite), Absent applies only if the
	// document does not exist yet, and a version > 0 applies only if the
	// stored document is at exactly that version. A mismatch fails the
	// whole Apply with a *ConflictError.
	Version int64 `json:"version,omitempty"`
}

// Key names a document within a store: its kind and name.
type Key struct {
	Kind, Name string
}

// String returns "Kind/name".
func (k Key) String() string { return k.Kind + "/" + k.Name }

// Key returns the document's kind and name.
func (d Document) Key() Key { return Key{Kind: d.Kind, Name: d.Metadata.Name} }

// source records where a parsed document came from.
type source struct {
	name  string         // file name or etcd key; may be empty
	index int            // position in the source, from 1
	line  int            // first line of the document; 0 for unknown
	lines map[string]int // field path -> line
}

// lineOf returns the line of path, or of its nearest ancestor that has one.
func (s *source) lineOf(path string) int {
	if s == nil || len(s.lines) == 0 {
		return 0
	}
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := s.lines[p]; ok {
			return l
		}
	}
	return s.line
}

// parentPath drops the last step of a field path:
// "spec.a[2]" -> "spec.a", "spec.a" -> "spec", "spec" -> "".
func parentPath(p string) string {
	depth := 0
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case ']':
			depth++
		case '[':
			depth--
			if depth == 0 {
				return p[:i]
			}
		case '.':
			if depth == 0 {
				return p[:i]
			}
		}
	}
	return ""
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

const maxNameLen = 253

// checkEnvelope checks what every document needs, whatever its kind.
func checkEnvelope(d *Document) FieldErrors {
	var errs FieldErrors
	switch d.APIVersion {
	case APIVersion:
	case "":
		errs = append(errs, &FieldError{Path: "apiVersion", Reason: `required; must be "` + APIVersion + `"`})
	default:
		errs = append(errs, &FieldError{Path: "apiVersion", Reason: `must be "` + APIVersion + `", not "` + d.APIVersion + `"`})
	}
	if d.Kind == "" {
		errs = append(errs, &FieldError{Path: "kind", Reason: "required"})
	}
	switch n := d.Metadata.Name; {
	case n == "":
		errs = append(errs, &FieldError{Path: "metadata.name", Reason: "required"})
	case len(n) > maxNameLen || !nameRE.MatchString(n):
		errs = append(errs, &FieldError{Path: "metadata.name", Reason: "must be lowercase letters, digits, '-' and '.', start and end with a letter or digit, and be at most 253 characters"})
	}
	for k := range d.Metadata.Labels {
		if k == "" {
			errs = append(errs, &FieldError{Path: "metadata.labels", Reason: "label keys must not be empty"})
			break
		}
	}
	if d.Metadata.Version < Absent {
		errs = append(errs, &FieldError{Path: "metadata.version", Reason: "must be 0, -1 (absent) or a stored version"})
	}
	return errs
}
