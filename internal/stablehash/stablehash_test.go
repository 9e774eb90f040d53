package stablehash_test

import (
	"hash/fnv"
	"testing"

	"github.com/sluicerpc/sluice/internal/stablehash"
)

func TestHashIsFixed(t *testing.T) {
	// Changing these values moves every sticky user and every ring key:
	// don't. (They were computed apart from this code: FNV-1a 64, then
	// fmix64.)
	for s, want := range map[string]uint64{
		"":        0xefd01f60ba992926,
		"user-42": 0xa39532c7ab051e8d,
	} {
		if got := stablehash.String(s); got != want {
			t.Errorf("String(%q) = %#x, want %#x", s, got, want)
		}
	}
	for _, s := range []string{"a", "10.0.0.1:8080", "user-1234567"} {
		f := fnv.New64a()
		f.Write([]byte(s))
		if got, want := stablehash.String(s), stablehash.Mix(f.Sum64()); got != want {
			t.Errorf("String(%q) = %#x, want fmix64(FNV-1a) = %#x", s, got, want)
		}
	}
}
