package config

import "testing"

func TestLineOf(t *testing.T) {
	src := &source{line: 1, lines: map[string]int{"spec": 4, "spec.parts": 5, "spec.parts[1]": 7, `spec.tags["a.b"]`: 9}}
	for path, want := range map[string]int{
		"spec.parts[1].name":    7,
		"spec.parts[2].name":    5,
		"spec.size":             4,
		`spec.tags["a.b"]`:      9,
		`spec.tags["a.b"].x`:    9,
		`spec.tags["a[0].b"].x`: 4,
		"metadata.name":         1,
		"":                      1,
	} {
		if got := src.lineOf(path); got != want {
			t.Errorf("lineOf(%q) = %d, want %d", path, got, want)
		}
	}
	if (*source)(nil).lineOf("spec") != 0 {
		t.Errorf("nil source has lines")
	}
}
