package metadata_test

import (
	"testing"

	"github.com/sluicerpc/sluice/metadata"
)

func TestValidKeyAndValue(t *testing.T) {
	for k, want := range map[string]bool{
		"x-user-id": true, "a.b_c-9": true, "": false, "X-User": false, "x user": false, "x:y": false, "é": false,
	} {
		if metadata.ValidKey(k) != want {
			t.Errorf("ValidKey(%q) = %v, want %v", k, !want, want)
		}
	}
	for v, want := range map[string]bool{
		"plain": true, "tab\there": true, "ünïcode": true, "": true, "line\nbreak": false, "nul\x00": false, "del\x7f": false,
	} {
		if metadata.ValidTextValue(v) != want {
			t.Errorf("ValidTextValue(%q) = %v, want %v", v, !want, want)
		}
	}
}
