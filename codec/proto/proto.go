// Package proto is the protobuf codec, on google.golang.org/protobuf.
//
//	b, _ := proto.Codec.Marshal(nil, &echopb.EchoRequest{Message: "hi"})
package proto

import (
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Codec is the protobuf codec value.
var Codec codecImpl

type codecImpl struct{}

// Name implements codec.Codec.
func (codecImpl) Name() string { return "proto" }

// Marshal implements codec.Codec.
func (codecImpl) Marshal(buf []byte, v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return buf, fmt.Errorf("codec/proto: %T is not a proto.Message", v)
	}
	return proto.MarshalOptions{}.MarshalAppend(buf, m)
}

// Unmarshal implements codec.Codec.
func (codecImpl) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("codec/proto: %T is not a proto.Message", v)
	}
	return proto.Unmarshal(data, m)
}

// Size is the encoded size of msg, 0 for what is not a protobuf message:
// the message bytes as the codec (or gRPC's) writes them, without framing
// or compression. The gRPC adapters report it as the call's byte counts
// (callinfo.Info.SentBytes, ReceivedBytes), which grpc-go does not give a
// handler.
func Size(msg any) int {
	if m, ok := msg.(proto.Message); ok {
		return proto.Size(m)
	}
	return 0
}
