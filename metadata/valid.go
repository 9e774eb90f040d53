package metadata

// ValidKey reports whether k, lower case, is a metadata key every
// protocol carries: the gRPC and Connect header-name syntax, one or more
// of 0-9 a-z _ - . (the native protocol takes any string).
func ValidKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// ValidTextValue reports whether v can travel as a text header value (an
// HTTP or NATS header line) unchanged: no control characters but tab.
// gRPC's ASCII-Value is stricter (printable ASCII); UTF-8 text passes, as
// the native protocol and HTTP libraries carry it. Binary values belong
// under keys ending in "-bin", which the protocols base64-encode.
func ValidTextValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
