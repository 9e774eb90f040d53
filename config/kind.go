package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"sync"
)

// Kind is one kind of document: what its spec decodes into and how it is
// checked. The package that owns a kind registers it once, from an init
// function:
//
//	func init() {
//		config.Register("TrafficPolicy", config.KindOf(func(p *TrafficPolicy) error { ... }))
//	}
type Kind interface {
	// New returns a pointer to a new zero spec value (a *T for a struct T)
	// for the spec to be decoded into. Fields the spec does not set keep
	// their zero value, which by convention means "the default".
	New() any
	// Validate checks a decoded spec, as returned by New and filled in. It
	// returns nil, a *FieldError, FieldErrors, or several of those joined
	// with errors.Join; paths start at the document root ("spec.retries").
	// Any other error is reported against "spec".
	Validate(spec any) error
}

// KindOf returns the Kind whose spec is a T, checked by validate (nil for
// no checks beyond decoding).
func KindOf[T any](validate func(spec *T) error) Kind { return kindOf[T]{validate} }

type kindOf[T any] struct{ validate func(*T) error }

func (k kindOf[T]) New() any { return new(T) }

func (k kindOf[T]) Validate(spec any) error {
	if k.validate == nil {
		return nil
	}
	return k.validate(spec.(*T))
}

var (
	kindsMu sync.RWMutex
	kinds   = map[string]Kind{}
)

var kindNameRE = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)

// Register makes a kind of document known under name, an UpperCamelCase
// word ("TrafficPolicy"). It panics if name is malformed or taken, or if
// New does not return a non-nil pointer, as these are programming errors.
func Register(name string, k Kind) {
	if !kindNameRE.MatchString(name) {
		panic(fmt.Sprintf("config: Register: kind name %q must be an UpperCamelCase word", name))
	}
	if k == nil {
		panic("config: Register: nil Kind for " + name)
	}
	if v := reflect.ValueOf(k.New()); v.Kind() != reflect.Pointer || v.IsNil() {
		panic(fmt.Sprintf("config: Register: %s: New must return a non-nil pointer, not %T", name, k.New()))
	}
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[name]; dup {
		panic("config: Register: kind " + name + " registered twice")
	}
	kinds[name] = k
}

// Kinds returns the names of the registered kinds, sorted.
func Kinds() []string {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Registered reports whether a kind of that name is registered.
func Registered(name string) bool {
	_, ok := lookup(name)
	return ok
}

func lookup(name string) (Kind, bool) {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	k, ok := kinds[name]
	return k, ok
}
