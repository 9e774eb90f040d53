package ttheader

import "unsafe"

// s2b views a string as bytes without copying. The result must not be written.
func s2b(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
