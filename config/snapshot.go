package config

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"sort"
)

// Entry is one valid document of a snapshot with its decoded spec.
type Entry struct {
	// Doc is the document; Doc.Spec is canonical JSON (compact, keys
	// sorted) and Doc.Metadata.Version is set.
	Doc Document
	// Spec is the typed spec, as the kind's New returned it and filled in.
	Spec any
}

// Snapshot is a whole, consistent set of valid documents at one revision of
// a store. It never changes once made: a change in the store makes a new
// Snapshot. Entries, their documents and specs are shared between snapshots
// and with every reader, so they must not be modified. A nil *Snapshot is
// empty.
type Snapshot struct {
	rev     int64
	entries map[Key]Entry
	byKind  map[string][]Entry // sorted by name
}

// NewSnapshot returns the snapshot of docs at revision rev, all of them
// valid, or no snapshot and the *InvalidError of each bad document joined
// with errors.Join. Documents with no version get version rev.
func NewSnapshot(rev int64, docs []Document) (*Snapshot, error) {
	s, err := (*Snapshot)(nil).Update(rev, docs, nil)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Update returns a new snapshot at revision rev: s without the documents
// named in del, with the documents in put added or replaced.
//
// Update is lenient where NewSnapshot is not: a document in put that is
// invalid is left out and the entry it would have replaced, if any, stays.
// The new snapshot is always returned; the error, if not nil, joins the
// *InvalidError of each document left out. Stores use it to keep serving
// the last valid version of a document that something else broke.
//
// A document in put whose content (labels and spec) is that of the entry it
// replaces keeps that entry's decoded spec, and also its version unless the
// document carries one; a changed document with no version gets version rev.
func (s *Snapshot) Update(rev int64, put []Document, del []Key) (*Snapshot, error) {
	entries := make(map[Key]Entry, s.Len()+len(put))
	if s != nil {
		maps.Copy(entries, s.entries)
	}
	for _, k := range del {
		delete(entries, k)
	}
	var errs []error
	seen := make(map[Key]int, len(put))
	for i := range put {
		d := put[i]
		k := d.Key()
		if first, dup := seen[k]; dup {
			e := d.invalid(FieldErrors{{Path: "metadata.name", Reason: fmt.Sprintf("%s appears twice (first as document %d)", k, first)}})
			setIndex(e, i+1)
			errs = append(errs, e)
			continue
		}
		seen[k] = i + 1
		if old, ok := entries[k]; ok && sameContent(&old.Doc, &d) {
			if d.Metadata.Version != 0 {
				old.Doc.Metadata.Version = d.Metadata.Version
			}
			entries[k] = old
			continue
		}
		spec, canon, err := decode(&d)
		if err != nil {
			setIndex(err, i+1)
			errs = append(errs, err)
			continue
		}
		d.Spec, d.src = canon, nil
		if d.Metadata.Version == 0 {
			d.Metadata.Version = rev
		}
		entries[k] = Entry{Doc: d, Spec: spec}
	}
	return newSnapshot(rev, entries), errors.Join(errs...)
}

func newSnapshot(rev int64, entries map[Key]Entry) *Snapshot {
	s := &Snapshot{rev: rev, entries: entries, byKind: map[string][]Entry{}}
	for k, e := range entries {
		s.byKind[k.Kind] = append(s.byKind[k.Kind], e)
	}
	for _, l := range s.byKind {
		sort.Slice(l, func(i, j int) bool { return l[i].Doc.Metadata.Name < l[j].Doc.Metadata.Name })
	}
	return s
}

// sameContent reports whether a and b say the same thing: same envelope,
// labels and spec bytes. Versions do not count.
func sameContent(a, b *Document) bool {
	return a.APIVersion == b.APIVersion && a.Kind == b.Kind && a.Metadata.Name == b.Metadata.Name &&
		maps.Equal(a.Metadata.Labels, b.Metadata.Labels) && bytes.Equal(a.Spec, b.Spec)
}

// Revision returns the store revision the snapshot reflects; 0 for an
// empty snapshot that no store made.
func (s *Snapshot) Revision() int64 {
	if s == nil {
		return 0
	}
	return s.rev
}

// Len returns the number of documents.
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return len(s.entries)
}

// Get returns the document of that kind and name and its typed spec.
func (s *Snapshot) Get(kind, name string) (Document, any, bool) {
	if s == nil {
		return Document{}, nil, false
	}
	e, ok := s.entries[Key{Kind: kind, Name: name}]
	return e.Doc, e.Spec, ok
}

// List returns the entries of one kind, sorted by name.
func (s *Snapshot) List(kind string) []Entry {
	if s == nil {
		return nil
	}
	return append([]Entry(nil), s.byKind[kind]...)
}

// All returns every entry, sorted by kind, then name.
func (s *Snapshot) All() []Entry {
	if s == nil {
		return nil
	}
	kinds := make([]string, 0, len(s.byKind))
	for k := range s.byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	out := make([]Entry, 0, len(s.entries))
	for _, k := range kinds {
		out = append(out, s.byKind[k]...)
	}
	return out
}

// Equal reports whether s and o hold the same documents with the same
// content. Revisions and versions do not count: stores use Equal to hand
// out a new snapshot only when something a consumer acts on changed.
func (s *Snapshot) Equal(o *Snapshot) bool {
	if s.Len() != o.Len() {
		return false
	}
	if s.Len() == 0 {
		return true
	}
	for k, e := range s.entries {
		oe, ok := o.entries[k]
		if !ok || !sameContent(&e.Doc, &oe.Doc) {
			return false
		}
	}
	return true
}
