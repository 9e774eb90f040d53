package proto_test

import (
	"testing"

	"github.com/sluicerpc/sluice/codec/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestRoundTripAppends(t *testing.T) {
	buf, err := proto.Codec.Marshal([]byte("head"), wrapperspb.String("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:4]) != "head" {
		t.Fatalf("Marshal did not append: %q", buf)
	}
	var out wrapperspb.StringValue
	if err := proto.Codec.Unmarshal(buf[4:], &out); err != nil || out.Value != "hi" {
		t.Fatalf("got %q, %v", out.Value, err)
	}
}

func TestRejectsNonProto(t *testing.T) {
	if _, err := proto.Codec.Marshal(nil, "string"); err == nil {
		t.Error("Marshal accepted a string")
	}
	if err := proto.Codec.Unmarshal(nil, new(int)); err == nil {
		t.Error("Unmarshal accepted an *int")
	}
}
