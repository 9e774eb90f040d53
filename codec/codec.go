// Package codec defines how payloads become bytes. Sluice ships a protobuf
// codec (codec/proto); a codec is one small interface so others can plug in.
//
//	buf, err := proto.Codec.Marshal(buf[:0], msg)
package codec

// Codec marshals and unmarshals payload messages.
type Codec interface {
	// Name is the codec's content subtype, e.g. "proto" or "json".
	Name() string
	// Marshal appends the encoding of v to buf and returns the result.
	Marshal(buf []byte, v any) ([]byte, error)
	// Unmarshal decodes data into v. It must not keep data after returning.
	Unmarshal(data []byte, v any) error
}
