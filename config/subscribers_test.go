package config_test

import (
	"slices"
	"testing"

	"github.com/sluicerpc/sluice/config"
)

// TestSubscribers: Notify calls what was added, in order, and no longer
// what was removed.
func TestSubscribers(t *testing.T) {
	var s config.Subscribers
	var got []string
	s.Notify() // none yet
	s.Add(func() { got = append(got, "a") })
	cancelB := s.Add(func() { got = append(got, "b") })
	s.Add(func() { got = append(got, "c") })
	s.Notify()
	cancelB()
	cancelB() // twice is harmless
	s.Notify()
	if want := []string{"a", "b", "c", "a", "c"}; !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
}
