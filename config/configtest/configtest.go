// Package configtest helps test code that uses package config: Widget is a
// kind of document for tests only, and Suite runs the checks every
// config.Store must pass.
//
//	func TestSuite(t *testing.T) {
//		configtest.Suite(t, func(t *testing.T) config.Store { return newStore(t) })
//	}
package configtest

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/sluicerpc/sluice/config"
)

// WidgetKind is the kind name of Widget documents.
const WidgetKind = "Widget"

// Widget is the spec of the test-only kind "Widget".
type Widget struct {
	// Size must not be negative. Default 0.
	Size int `json:"size,omitempty"`
	// Color is free text. Default "".
	Color string `json:"color,omitempty"`
	// Generation tells versions of a widget apart in tests. Default 0.
	Generation int `json:"generation,omitempty"`
	// Parts each need a name and a weight from 0 to 100. Default none.
	Parts []Part `json:"parts,omitempty"`
	// Timeout is a duration string. Default 0.
	Timeout config.Duration `json:"timeout,omitempty"`
	// Tags are free-form. Default none.
	Tags map[string]string `json:"tags,omitempty"`
}

// Part is one part of a Widget.
type Part struct {
	// Name is required.
	Name string `json:"name"`
	// Weight is from 0 to 100. Default 0.
	Weight int `json:"weight,omitempty"`
}

var once sync.Once

// Register registers the Widget kind; calling it again does nothing.
func Register() {
	once.Do(func() { config.Register(WidgetKind, config.KindOf(validateWidget)) })
}

func validateWidget(w *Widget) error {
	var errs config.FieldErrors
	if w.Size < 0 {
		errs = append(errs, &config.FieldError{Path: "spec.size", Reason: "must not be negative"})
	}
	for i, p := range w.Parts {
		if p.Name == "" {
			errs = append(errs, &config.FieldError{Path: fmt.Sprintf("spec.parts[%d].name", i), Reason: "required"})
		}
		if p.Weight < 0 || p.Weight > 100 {
			errs = append(errs, &config.FieldError{Path: fmt.Sprintf("spec.parts[%d].weight", i), Reason: "must be from 0 to 100"})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// Doc returns a Widget document named name. It does not validate w, so
// tests can build invalid documents with it.
func Doc(name string, w Widget) config.Document {
	spec, err := json.Marshal(w)
	if err != nil {
		panic(err) // a Widget always marshals
	}
	return config.Document{APIVersion: config.APIVersion, Kind: WidgetKind, Metadata: config.Metadata{Name: name}, Spec: spec}
}

// WithVersion returns d expecting version v.
func WithVersion(d config.Document, v int64) config.Document {
	d.Metadata.Version = v
	return d
}

// Spec returns the Widget of name in s, or nil.
func Spec(s *config.Snapshot, name string) *Widget {
	_, spec, ok := s.Get(WidgetKind, name)
	if !ok {
		return nil
	}
	return spec.(*Widget)
}

// Rejects collects what a store reports through its on-reject hook; safe
// for concurrent use. Pass its Add to WithOnReject.
type Rejects struct {
	mu   sync.Mutex
	errs []error
}

// Add records err.
func (r *Rejects) Add(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

// All returns what was recorded so far.
func (r *Rejects) All() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}
