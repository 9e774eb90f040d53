package config_test

import (
	"errors"
	"testing"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/config/configtest"
)

func TestNewSnapshot(t *testing.T) {
	s, err := config.NewSnapshot(5, []config.Document{widget("b", `{"size":2}`), widget("a", `{ "size" : 1 }`), configtest.WithVersion(widget("c", ``), 3)})
	if err != nil {
		t.Fatal(err)
	}
	if s.Revision() != 5 || s.Len() != 3 {
		t.Fatalf("revision %d, %d documents", s.Revision(), s.Len())
	}
	var names []string
	for _, e := range s.All() {
		names = append(names, e.Doc.Metadata.Name)
	}
	if len(names) != 3 || names[0] != "a" || names[2] != "c" {
		t.Errorf("All = %v, want sorted a, b, c", names)
	}
	d, spec, ok := s.Get("Widget", "a")
	if !ok || spec.(*configtest.Widget).Size != 1 || string(d.Spec) != `{"size":1}` || d.Metadata.Version != 5 {
		t.Errorf("Get(a) = %+v %+v %v: want canonical spec, version 5", d, spec, ok)
	}
	if d, _, _ := s.Get("Widget", "c"); d.Metadata.Version != 3 {
		t.Errorf("version of c = %d, want the one it carried, 3", d.Metadata.Version)
	}
	if _, _, ok := s.Get("Gadget", "a"); ok || len(s.List("Gadget")) != 0 {
		t.Errorf("found a kind that is not there")
	}

	// All or nothing.
	s, err = config.NewSnapshot(1, []config.Document{widget("a", ``), widget("b", `{"size":-1}`)})
	if s != nil || !errors.Is(err, config.ErrInvalid) {
		t.Errorf("NewSnapshot with a bad document = %v, %v", s, err)
	}
}

func TestNilSnapshot(t *testing.T) {
	var s *config.Snapshot
	if s.Len() != 0 || s.Revision() != 0 || s.List("Widget") != nil || s.All() != nil || !s.Equal(&config.Snapshot{}) {
		t.Errorf("nil snapshot is not empty")
	}
	if _, _, ok := s.Get("Widget", "a"); ok {
		t.Errorf("nil snapshot has a document")
	}
}

func TestSnapshotUpdate(t *testing.T) {
	s1, err := config.NewSnapshot(1, []config.Document{widget("a", `{"size":1}`), widget("b", `{"size":2}`), widget("c", ``)})
	if err != nil {
		t.Fatal(err)
	}
	_, specA1, _ := s1.Get("Widget", "a")

	s2, err := s1.Update(2, []config.Document{
		widget("a", `{"size":1}`),  // same content
		widget("b", `{"size":-5}`), // invalid: b stays as it was
		widget("d", `{"size":4}`),  // new
	}, []config.Key{{Kind: "Widget", Name: "c"}})
	var ie *config.InvalidError
	if !errors.As(err, &ie) || ie.Name != "b" || ie.Index != 2 {
		t.Fatalf("Update error %v: want b rejected, as document 2", err)
	}
	if s2.Revision() != 2 || s2.Len() != 3 {
		t.Fatalf("revision %d, %d documents; want 2 and a, b, d", s2.Revision(), s2.Len())
	}
	a, specA2, _ := s2.Get("Widget", "a")
	if specA2 != specA1 || a.Metadata.Version != 1 {
		t.Errorf("unchanged a: spec shared %v, version %d; want shared and 1", specA2 == specA1, a.Metadata.Version)
	}
	if b := configtest.Spec(s2, "b"); b == nil || b.Size != 2 {
		t.Errorf("b = %+v, want the last valid one, size 2", b)
	}
	if d, _, _ := s2.Get("Widget", "d"); d.Metadata.Version != 2 {
		t.Errorf("new d at version %d, want 2", d.Metadata.Version)
	}
	if _, _, ok := s2.Get("Widget", "c"); ok {
		t.Errorf("c not deleted")
	}
	// s1 is as it was.
	if s1.Len() != 3 || configtest.Spec(s1, "c") == nil || configtest.Spec(s1, "d") != nil {
		t.Errorf("Update changed the old snapshot")
	}

	// A new version of the same content moves the version, not the content.
	s3, err := s2.Update(3, []config.Document{configtest.WithVersion(widget("a", `{"size":1}`), 9)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, _, _ := s3.Get("Widget", "a"); a.Metadata.Version != 9 || !s3.Equal(s2) {
		t.Errorf("version %d, equal %v; want 9 and equal", a.Metadata.Version, s3.Equal(s2))
	}
	s4, _ := s3.Update(4, []config.Document{widget("a", `{"size":2}`)}, nil)
	if s4.Equal(s3) {
		t.Errorf("snapshots with a different a are Equal")
	}
	lab := widget("a", `{"size":2}`)
	lab.Metadata.Labels = map[string]string{"x": "y"}
	if s5, _ := s4.Update(5, []config.Document{lab}, nil); s5.Equal(s4) {
		t.Errorf("snapshots with different labels are Equal")
	}
}
