package server_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/protocol/ttheader"
	"github.com/sluicerpc/sluice/server"
)

// Frames captured from a real Kitex v0.16.3 client and server (service
// EchoService, method Echo, request field 1 = "hello"); see docs/PROTOCOL.md.
const (
	kitexRequestPlain = "0000002910000000000000010001000000000000001790010001000000044563686f000000010a0568656c6c6f"
	kitexRequestMeta  = "00000079100000000000000100150000010001000369736e000b4563686f5365727669636510000700140000000600046563686f000900044563686f0016000131000100066672616d6564000c0004333030300003000b6563686f2d636c69656e740000001790010001000000044563686f000000010a0568656c6c6f"
	kitexReply        = "00000036100000000000000100030000100001001600013200000000001c90010002000000044563686f000000010a0a6563686f3a68656c6c6f"
)

type kitexStyleEcho struct{}

func (kitexStyleEcho) Echo(_ context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	return &echopb.EchoResponse{Message: "echo:" + req.Message}, nil
}

// TestServerAnswersKitexClientFrames feeds the captured Kitex requests to a
// Sluice server on one connection and checks each reply the way a Kitex
// client reads it: TTHeader magic, the same seqID in header and payload, a
// KitexProtobuf reply for method Echo, and a body that decodes.
func TestServerAnswersKitexClientFrames(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := server.New()
	echopb.RegisterEchoServiceServer(s, kitexStyleEcho{})
	go s.Serve(ln)
	defer s.Stop()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, vec := range []string{kitexRequestPlain, kitexRequestMeta} {
		if _, err := nc.Write(mustHex(t, vec)); err != nil {
			t.Fatal(err)
		}
		var resp echopb.EchoResponse
		seq, code, msg := readReply(t, nc, &resp)
		if seq != 1 || code != 0 || resp.Message != "echo:hello" {
			t.Fatalf("reply seq=%d code=%v %q message=%q", seq, code, msg, resp.Message)
		}
	}
}

// TestClientDecodesKitexServerReply has a Sluice client call a peer that
// answers with the captured Kitex server reply (its seqID set to the
// request's, as a Kitex server does).
func TestClientDecodesKitexServerReply(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reply := mustHex(t, kitexReply)
	served := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer nc.Close()
		frame := make([]byte, 4)
		if _, err := nc.Read(frame); err != nil {
			served <- err
			return
		}
		rest := make([]byte, binary.BigEndian.Uint32(frame))
		if _, err := io.ReadFull(nc, rest); err != nil {
			served <- err
			return
		}
		frame = append(frame, rest...)
		var h ttheader.Header
		pl, err := ttheader.DecodeHeader(frame, &h)
		if err != nil {
			served <- err
			return
		}
		p, err := ttheader.DecodePayload(pl)
		if err != nil {
			served <- err
			return
		}
		out := append([]byte(nil), reply...)
		binary.BigEndian.PutUint32(out[8:], h.SeqID)           // header seqID
		binary.BigEndian.PutUint32(out[len(out)-16:], p.SeqID) // payload seqID, before the 12-byte body
		_, err = nc.Write(out)
		served <- err
	}()
	c, err := client.New(ln.Addr().String(), client.WithConnsPerAddr(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := echopb.NewEchoServiceClient(c).Echo(context.Background(), &echopb.EchoRequest{Message: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Message != "echo:hello" {
		t.Fatalf("decoded %q", resp.Message)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
