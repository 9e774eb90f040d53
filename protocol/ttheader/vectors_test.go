package ttheader

import (
	"encoding/hex"
	"testing"
)

// Frames captured from a real Kitex v0.16.3 client and server, service
// EchoService, method Echo, request field 1 = "hello".
const (
	kitexRequestPlain = "0000002910000000000000010001000000000000001790010001000000044563686f000000010a0568656c6c6f"
	kitexRequestMeta  = "00000079100000000000000100150000010001000369736e000b4563686f5365727669636510000700140000000600046563686f000900044563686f0016000131000100066672616d6564000c0004333030300003000b6563686f2d636c69656e740000001790010001000000044563686f000000010a0568656c6c6f"
	kitexReply        = "00000036100000000000000100030000100001001600013200000000001c90010002000000044563686f000000010a0a6563686f3a68656c6c6f"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKitexVectors(t *testing.T) {
	tests := []struct {
		name     string
		frame    string
		typ      MsgType
		isn      string
		ints     map[uint16]string
		body     string
		nStrings int
	}{
		{name: "request-default", frame: kitexRequestPlain, typ: Call, body: "0a0568656c6c6f"},
		{name: "request-meta", frame: kitexRequestMeta, typ: Call, isn: "EchoService", nStrings: 1,
			ints: map[uint16]string{20: "", KeyToService: "echo", KeyToMethod: "Echo", KeyMsgType: "1", KeyTransportType: "framed", KeyRPCTimeout: "3000", KeyFromService: "echo-client"},
			body: "0a0568656c6c6f"},
		{name: "reply", frame: kitexReply, typ: Reply, ints: map[uint16]string{KeyMsgType: "2"}, body: "0a0a6563686f3a68656c6c6f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := mustHex(t, tt.frame)
			var h Header
			pl, err := DecodeHeader(frame, &h)
			if err != nil {
				t.Fatal(err)
			}
			if h.SeqID != 1 {
				t.Errorf("seq %d", h.SeqID)
			}
			if got := string(h.String(KeyServiceName)); got != tt.isn {
				t.Errorf("isn %q want %q", got, tt.isn)
			}
			if len(h.Strings) != tt.nStrings || len(h.Ints) != len(tt.ints) {
				t.Errorf("got %d strings %d ints", len(h.Strings), len(h.Ints))
			}
			for k, v := range tt.ints {
				if got := h.Int(k); got == nil || string(got) != v {
					t.Errorf("int key %d = %q want %q", k, got, v)
				}
			}
			p, err := DecodePayload(pl)
			if err != nil {
				t.Fatal(err)
			}
			if p.Type != tt.typ || string(p.Method) != "Echo" || p.SeqID != 1 || hex.EncodeToString(p.Body) != tt.body {
				t.Errorf("payload %+v", p)
			}
			// Re-encoding what was decoded gives the same bytes.
			buf, fs, err := AppendHeader(nil, &h)
			if err != nil {
				t.Fatal(err)
			}
			buf, ps := AppendPayloadHeader(buf, p.Type, string(p.Method), p.SeqID)
			buf = append(buf, p.Body...)
			FinishPayload(buf, ps)
			buf, err = FinishFrame(buf, fs, DefaultMaxFrameSize)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(buf) != tt.frame {
				t.Errorf("re-encoded\n%x\nwant\n%s", buf, tt.frame)
			}
		})
	}
}
