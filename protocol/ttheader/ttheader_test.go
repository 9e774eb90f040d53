package ttheader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
)

// encodeFrame builds a whole frame from h and payload the way callers do.
func encodeFrame(t testing.TB, h *Header, payload []byte) []byte {
	t.Helper()
	buf, fs, err := AppendHeader(nil, h)
	if err != nil {
		t.Fatalf("AppendHeader: %v", err)
	}
	buf = append(buf, payload...)
	buf, err = FinishFrame(buf, fs, 0)
	if err != nil {
		t.Fatalf("FinishFrame: %v", err)
	}
	return buf
}

// headerDiff returns a description of the first difference between got and
// want, or "" when they carry the same information.
func headerDiff(got, want *Header) string {
	switch {
	case got.Flags != want.Flags:
		return "flags differ"
	case got.SeqID != want.SeqID:
		return "seq differs"
	case got.Protocol != want.Protocol:
		return "protocol differs"
	case !bytes.Equal(got.Transforms, want.Transforms):
		return "transforms differ"
	case len(got.Strings) != len(want.Strings):
		return "string count differs"
	case len(got.Ints) != len(want.Ints):
		return "int count differs"
	case !bytes.Equal(got.Token, want.Token) || (got.Token == nil) != (want.Token == nil):
		return "token differs"
	}
	for i := range got.Strings {
		if !bytes.Equal(got.Strings[i].Key, want.Strings[i].Key) || !bytes.Equal(got.Strings[i].Value, want.Strings[i].Value) {
			return "string kv differs"
		}
	}
	for i := range got.Ints {
		if got.Ints[i].Key != want.Ints[i].Key || !bytes.Equal(got.Ints[i].Value, want.Ints[i].Value) {
			return "int kv differs"
		}
	}
	return ""
}

// infoLen is the unpadded header length AppendHeader should produce for h
// (protocol byte onwards), computed independently of the encoder.
func infoLen(h *Header) int {
	n := 2 + len(h.Transforms)
	if len(h.Strings) > 0 {
		n += 3
		for _, kv := range h.Strings {
			n += 4 + len(kv.Key) + len(kv.Value)
		}
	}
	if len(h.Ints) > 0 {
		n += 3
		for _, kv := range h.Ints {
			n += 4 + len(kv.Value)
		}
	}
	if h.Token != nil {
		n += 3 + len(h.Token)
	}
	return n
}

func TestHeaderRoundTrip(t *testing.T) {
	max16 := strings.Repeat("v", 0xffff)
	tests := []struct {
		name    string
		build   func(h *Header)
		payload []byte
	}{
		{name: "no-info", build: func(h *Header) { h.SeqID = 7 }, payload: []byte("body")},
		{name: "no-info-empty-payload", build: func(h *Header) { h.SeqID = 1 }},
		{name: "seq-and-flags-max", build: func(h *Header) { h.SeqID, h.Flags = math.MaxUint32, math.MaxUint16 }, payload: []byte{0}},
		{name: "strings", build: func(h *Header) {
			h.AddString(KeyServiceName, "sluice.examples.echo.v1.EchoService")
			h.AddString(KeyAttempt, "2")
			h.AddString(KeyConnReset, "")
		}, payload: []byte("x")},
		{name: "ints", build: func(h *Header) {
			h.AddInt(KeyRPCTimeout, []byte("3000"))
			h.AddInt(KeyToMethod, []byte("Echo"))
			h.AddInt(math.MaxUint16, []byte("max key"))
		}},
		{name: "strings-and-ints", build: func(h *Header) {
			h.SeqID = 42
			h.AddString(KeyServiceName, "EchoService")
			h.AddInt(KeyMsgType, []byte("1"))
			h.AddString(KeyStatus, "5")
			h.AddInt(KeyFromService, []byte("echo-client"))
		}, payload: bytes.Repeat([]byte{0xab}, 100)},
		{name: "acl-token", build: func(h *Header) { h.Token = []byte("secret-token") }},
		{name: "acl-token-empty", build: func(h *Header) { h.Token = []byte{} }},
		{name: "everything", build: func(h *Header) {
			h.Protocol = 2
			h.Transforms = []byte{1, 2}
			h.AddString("k", "v")
			h.AddInt(1, []byte("framed"))
			h.Token = []byte("t")
		}, payload: []byte("payload")},
		{name: "transforms", build: func(h *Header) { h.Transforms = []byte{1, 2, 3, 0x7f, 0xff} }},
		{name: "transforms-255", build: func(h *Header) { h.Transforms = bytes.Repeat([]byte{9}, 255) }},
		{name: "empty-values", build: func(h *Header) {
			h.AddString("", "")
			h.AddString("k", "")
			h.AddInt(5, nil)
			h.AddInt(6, []byte{})
		}},
		{name: "string-key-65535", build: func(h *Header) { h.AddString(max16, "v") }, payload: []byte("p")},
		{name: "string-value-65535", build: func(h *Header) { h.AddString("k", max16) }, payload: []byte("p")},
		{name: "int-value-65535", build: func(h *Header) { h.AddInt(KeyToService, []byte(max16)) }},
		{name: "token-65535", build: func(h *Header) { h.Token = []byte(max16) }},
		// The largest header the format can carry: 65535*4 bytes, no padding.
		{name: "header-size-max", build: func(h *Header) {
			h.AddString("", max16)
			h.AddString("", max16)
			h.AddString("", max16)
			h.AddString("", max16[:0xffff*4-2-3-4*4-3*0xffff])
		}, payload: []byte("p")},
		// Unpadded header length (protocol byte onwards) in each residue mod 4.
		{name: "pad-residue-2", build: func(h *Header) {}},                                 // 2 → 2 zero bytes
		{name: "pad-residue-3", build: func(h *Header) { h.Transforms = []byte{1} }},       // 3 → 1
		{name: "pad-residue-0", build: func(h *Header) { h.Transforms = []byte{1, 2} }},    // 4 → 0
		{name: "pad-residue-1", build: func(h *Header) { h.Transforms = []byte{1, 2, 3} }}, // 5 → 3
		{name: "pad-kv-residue-2", build: func(h *Header) { h.AddString("k", "") }},        // 10
		{name: "pad-kv-residue-3", build: func(h *Header) { h.AddString("k", "a") }},       // 11
		{name: "pad-kv-residue-0", build: func(h *Header) { h.AddString("k", "ab") }},      // 12
		{name: "pad-kv-residue-1", build: func(h *Header) { h.AddString("k", "abc") }},     // 13
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want Header
			tt.build(&want)

			// Encode after unrelated bytes: the frame must start at the returned offset.
			prefix := []byte("prefix")
			buf, fs, err := AppendHeader(append([]byte(nil), prefix...), &want)
			if err != nil {
				t.Fatal(err)
			}
			if fs != len(prefix) {
				t.Fatalf("frame start %d, want %d", fs, len(prefix))
			}
			buf = append(buf, tt.payload...)
			buf, err = FinishFrame(buf, fs, DefaultMaxFrameSize)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf[:fs], prefix) {
				t.Fatalf("prefix overwritten: %q", buf[:fs])
			}
			frame := buf[fs:]

			// Layout: header padded to exactly the next multiple of 4 with zeros.
			n := infoLen(&want)
			padded := (n + 3) &^ 3
			if got := int(binary.BigEndian.Uint16(frame[12:])) * 4; got != padded {
				t.Fatalf("header size %d, want %d (unpadded %d)", got, padded, n)
			}
			if len(frame) != FixedHeaderLen+padded+len(tt.payload) {
				t.Fatalf("frame of %d bytes, want %d", len(frame), FixedHeaderLen+padded+len(tt.payload))
			}
			if FrameSize(frame) != len(frame) || !IsFrameStart(frame) {
				t.Fatalf("FrameSize %d IsFrameStart %v", FrameSize(frame), IsFrameStart(frame))
			}
			for i, c := range frame[FixedHeaderLen+n : FixedHeaderLen+padded] {
				if c != 0 {
					t.Fatalf("padding byte %d = %#x", i, c)
				}
			}

			var got Header
			pl, err := DecodeHeader(frame, &got)
			if err != nil {
				t.Fatal(err)
			}
			if d := headerDiff(&got, &want); d != "" {
				t.Fatalf("decoded header: %s", d)
			}
			if !bytes.Equal(pl, tt.payload) {
				t.Fatalf("payload %.40q, want %.40q", pl, tt.payload)
			}
			// Lookups find the first pair with a key.
			seen := map[string]bool{}
			for _, kv := range want.Strings {
				if seen[string(kv.Key)] {
					continue
				}
				seen[string(kv.Key)] = true
				if v := got.String(string(kv.Key)); !bytes.Equal(v, kv.Value) {
					t.Errorf("String(%.20q) = %.20q, want %.20q", kv.Key, v, kv.Value)
				}
			}
		})
	}
}

// TestAppendHeaderOverflow: a header the format cannot carry (more than
// 65535*4 bytes after the fixed part, more than 255 transforms, a value
// longer than 65535 bytes) must not become a frame that decodes to
// something else. Either FinishFrame fails or the frame decodes to what was
// encoded.
func TestAppendHeaderOverflow(t *testing.T) {
	max16 := strings.Repeat("v", 0xffff)
	tests := []struct {
		name  string
		build func(h *Header)
	}{
		{name: "header-over-262140-bytes", build: func(h *Header) {
			for range 4 {
				h.AddString("k", max16)
			}
		}},
		{name: "256-transforms", build: func(h *Header) { h.Transforms = make([]byte, 256) }},
		{name: "value-65536", build: func(h *Header) { h.AddString("k", max16+"v") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want Header
			tt.build(&want)
			buf, fs, err := AppendHeader(nil, &want)
			if err != nil {
				if !errors.Is(err, ErrHeaderTooLarge) || len(buf) != 0 {
					t.Fatalf("refused with %v, %d bytes left in buf", err, len(buf))
				}
				return // refused: fine
			}
			buf = append(buf, "payload"...)
			buf, err = FinishFrame(buf, fs, DefaultMaxFrameSize)
			if err != nil {
				return // refused: fine
			}
			var got Header
			pl, err := DecodeHeader(buf, &got)
			if err != nil {
				t.Fatalf("encoder produced a frame its decoder rejects: %v", err)
			}
			if d := headerDiff(&got, &want); d != "" || string(pl) != "payload" {
				t.Fatalf("decoded %s, payload %.20q", d, pl)
			}
		})
	}
}

func TestHeaderAccessors(t *testing.T) {
	var h Header
	h.AddString("a", "1")
	h.AddInt(3, []byte("three"))
	if h.String("missing") != nil || h.Int(4) != nil {
		t.Error("missing keys must give nil")
	}
	if string(h.String("a")) != "1" || string(h.Int(3)) != "three" {
		t.Error("present keys")
	}
	h.Transforms = append(h.Transforms, 1)
	h.Token = []byte("t")
	h.Flags, h.SeqID, h.Protocol = 1, 2, 3
	sc, ic, tc := cap(h.Strings), cap(h.Ints), cap(h.Transforms)
	h.Reset()
	if d := headerDiff(&h, &Header{}); d != "" {
		t.Errorf("after Reset: %s", d)
	}
	if cap(h.Strings) != sc || cap(h.Ints) != ic || cap(h.Transforms) != tc {
		t.Error("Reset dropped capacity")
	}
}

func TestDecodeHeaderPointsIntoFrame(t *testing.T) {
	var h Header
	h.AddString("k", "value")
	frame := encodeFrame(t, &h, []byte("body"))
	var got Header
	pl, err := DecodeHeader(frame, &got)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(frame, []byte("value"))
	frame[i] = 'V'
	if string(got.String("k")) != "Value" {
		t.Error("decoded value is a copy, want a view of the frame")
	}
	if cap(got.Strings[0].Key) != len(got.Strings[0].Key) {
		t.Error("decoded key capacity reaches past its end: an append would overwrite the frame")
	}
	pl[0] = 'B'
	if !bytes.HasSuffix(frame, []byte("Body")) {
		t.Error("payload is a copy")
	}
}

func TestFinishFrame(t *testing.T) {
	var h Header
	buf, fs, err := AppendHeader([]byte("xx"), &h)
	if err != nil {
		t.Fatal(err)
	}
	buf = append(buf, make([]byte, 10)...)
	size := len(buf) - fs

	if _, err := FinishFrame(append([]byte(nil), buf...), fs, size); err != nil {
		t.Errorf("exactly max: %v", err)
	}
	if _, err := FinishFrame(append([]byte(nil), buf...), fs, 0); err != nil {
		t.Errorf("no limit: %v", err)
	}
	out, err := FinishFrame(append([]byte(nil), buf...), fs, size-1)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("above max: %v, want ErrTooLarge", err)
	}
	if string(out) != "xx" {
		t.Errorf("above max left %q, want the buffer cut back to the frame start", out)
	}
}

func TestFrameSizeAndStart(t *testing.T) {
	if FrameSize(nil) != 0 || FrameSize([]byte{0, 0, 0}) != 0 {
		t.Error("FrameSize of < 4 bytes must be 0")
	}
	if FrameSize([]byte{0, 0, 1, 0}) != 260 {
		t.Error("FrameSize counts the length word")
	}
	if IsFrameStart([]byte{0, 0, 0, 0, 0x10}) {
		t.Error("IsFrameStart of 5 bytes")
	}
	if !IsFrameStart([]byte{0, 0, 0, 0, 0x10, 0x00}) || IsFrameStart([]byte{0, 0, 0, 0, 0x10, 0x01}) {
		t.Error("IsFrameStart magic")
	}
}

func TestCheckSize(t *testing.T) {
	tests := []struct {
		size, max int
		want      error // nil, ErrMalformed or ErrTooLarge
	}{
		{size: -1, max: 100, want: ErrMalformed},
		{size: 0, max: 100, want: ErrMalformed},
		{size: FixedHeaderLen - 1, max: 100, want: ErrMalformed},
		{size: FixedHeaderLen - 1, max: 0, want: ErrMalformed},
		{size: FixedHeaderLen, max: 100},
		{size: 99, max: 100},
		{size: 100, max: 100},
		{size: 101, max: 100, want: ErrTooLarge},
		{size: DefaultMaxFrameSize, max: DefaultMaxFrameSize},
		{size: DefaultMaxFrameSize + 1, max: DefaultMaxFrameSize, want: ErrTooLarge},
		{size: math.MaxInt32, max: DefaultMaxFrameSize, want: ErrTooLarge},
		{size: 1 << 30, max: 0}, // 0: no limit
	}
	for _, tt := range tests {
		err := CheckSize(tt.size, tt.max)
		switch {
		case tt.want == nil && err != nil:
			t.Errorf("CheckSize(%d, %d) = %v, want nil", tt.size, tt.max, err)
		case tt.want != nil && !errors.Is(err, tt.want):
			t.Errorf("CheckSize(%d, %d) = %v, want %v", tt.size, tt.max, err, tt.want)
		case errors.Is(err, ErrTooLarge) && errors.Is(err, ErrMalformed):
			t.Errorf("CheckSize(%d, %d) = %v: both too large and malformed", tt.size, tt.max, err)
		}
	}
}

// rawFrame builds a frame around raw header bytes (protocol byte onwards)
// and payload, filling in the length word and header size.
func rawFrame(hdr, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint16(b, Magic)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(hdr)/4))
	b = append(b, hdr...)
	b = append(b, payload...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func TestDecodeHeaderMalformed(t *testing.T) {
	valid := func() []byte {
		var h Header
		h.AddString("k", "v")
		return encodeFrame(t, &h, []byte("payload"))
	}
	patch := func(f func(b []byte) []byte) []byte { return f(valid()) }
	tests := []struct {
		name  string
		frame []byte
	}{
		{name: "empty", frame: nil},
		{name: "truncated-fixed-header", frame: valid()[:FixedHeaderLen-1]},
		{name: "only-length-word", frame: []byte{0, 0, 0, 0}},
		{name: "wrong-magic", frame: patch(func(b []byte) []byte { b[5] = 0x01; return b })},
		{name: "wrong-magic-zero", frame: patch(func(b []byte) []byte { b[4] = 0; return b })},
		{name: "length-word-too-big", frame: patch(func(b []byte) []byte { b[3]++; return b })},
		{name: "length-word-too-small", frame: patch(func(b []byte) []byte { b[3]--; return b })},
		{name: "length-word-huge", frame: patch(func(b []byte) []byte { b[0] = 0xff; return b })},
		{name: "frame-truncated", frame: valid()[:20]},
		{name: "header-size-zero", frame: rawFrame(nil, []byte("0123456789"))},
		{name: "header-size-overruns-frame", frame: patch(func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[12:], uint16((len(b)-FixedHeaderLen)/4+1))
			return b
		})},
		{name: "header-size-max", frame: patch(func(b []byte) []byte { b[12], b[13] = 0xff, 0xff; return b })},
		{name: "transform-count-overrun", frame: rawFrame([]byte{0, 3, 1, 0}, nil)},
		{name: "string-count-truncated", frame: rawFrame([]byte{0, 1, 1, InfoKeyValue}, nil)},
		{name: "string-key-length-truncated", frame: rawFrame([]byte{0, 2, 1, 2, InfoKeyValue, 0, 1, 0}, nil)},
		{name: "string-value-length-truncated", frame: rawFrame([]byte{0, 0, InfoKeyValue, 0, 1, 0, 0, 0}, nil)},
		{name: "string-key-overrun", frame: rawFrame([]byte{0, 0, InfoKeyValue, 0, 1, 0, 9, 'k'}, nil)},
		{name: "string-value-overrun", frame: rawFrame([]byte{0, 0, InfoKeyValue, 0, 1, 0, 1, 'k', 0, 9, 0, 0}, nil)},
		{name: "string-key-missing", frame: rawFrame([]byte{0, 1, 1, InfoKeyValue, 0, 1, 0, 1}, nil)},
		{name: "string-count-too-high", frame: rawFrame([]byte{0, 0, InfoKeyValue, 0, 2, 0, 0, 0, 0, 0, 0, 0}, nil)},
		{name: "int-count-truncated", frame: rawFrame([]byte{0, 1, 1, InfoIntKeyValue}, nil)},
		{name: "int-key-truncated", frame: rawFrame([]byte{0, 2, 1, 2, InfoIntKeyValue, 0, 1, 0xab}, nil)},
		{name: "int-value-length-truncated", frame: rawFrame([]byte{0, 0, InfoIntKeyValue, 0, 1, 0, 1, 0}, nil)},
		{name: "int-value-overrun", frame: rawFrame([]byte{0, 0, InfoIntKeyValue, 0, 1, 0, 1, 0, 5, 'a', 0, 0}, nil)},
		{name: "acl-token-overrun", frame: rawFrame([]byte{0, 0, InfoACLToken, 0, 9, 't', 0, 0}, nil)},
		{name: "acl-token-length-truncated", frame: rawFrame([]byte{0, 1, 1, InfoACLToken}, nil)},
		{name: "unknown-info-id", frame: rawFrame([]byte{0, 0, 0x02, 0}, nil)},
		{name: "unknown-info-id-high", frame: rawFrame([]byte{0, 0, 0xff, 0}, nil)},
		{name: "nonzero-after-padding", frame: rawFrame([]byte{0, 0, InfoPadding, 1}, nil)},
		{name: "nonzero-late-in-padding", frame: rawFrame([]byte{0, 0, InfoPadding, 0, 0, 0, 0, 0x10}, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Header
			pl, err := DecodeHeader(tt.frame, &h)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeHeader(%x) = %q, %v; want ErrMalformed", tt.frame, pl, err)
			}
			if pl != nil {
				t.Errorf("payload %x returned with an error", pl)
			}
		})
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	for _, typ := range []MsgType{Call, Reply, Exception, Oneway} {
		for _, tc := range []struct {
			method string
			seq    uint32
			body   []byte
		}{
			{method: "Echo", seq: 1, body: []byte{0x0a, 0x05, 'h', 'e', 'l', 'l', 'o'}},
			{method: "", seq: 0},
			{method: strings.Repeat("m", 1000), seq: math.MaxUint32, body: bytes.Repeat([]byte{0xff}, 3000)},
		} {
			t.Run(typ.String()+"/"+tc.method[:min(len(tc.method), 8)], func(t *testing.T) {
				buf, ps := AppendPayloadHeader([]byte("hdr"), typ, tc.method, tc.seq)
				buf = append(buf, tc.body...)
				FinishPayload(buf, ps)
				if ps != 3 || string(buf[:3]) != "hdr" {
					t.Fatalf("payload start %d, prefix %q", ps, buf[:3])
				}
				p, err := DecodePayload(buf[ps:])
				if err != nil {
					t.Fatal(err)
				}
				if p.Type != typ || string(p.Method) != tc.method || p.SeqID != tc.seq || !bytes.Equal(p.Body, tc.body) {
					t.Fatalf("got %v %q %d %x", p.Type, p.Method, p.SeqID, p.Body)
				}
				if cap(p.Method) != len(p.Method) {
					t.Error("Method capacity reaches into the seq id")
				}
			})
		}
	}
}

func TestMsgTypeString(t *testing.T) {
	for typ, want := range map[MsgType]string{Call: "call", Reply: "reply", Exception: "exception", Oneway: "oneway", 0: "msgtype(0)", 5: "msgtype(5)", 255: "msgtype(255)"} {
		if got := typ.String(); got != want {
			t.Errorf("MsgType(%d).String() = %q, want %q", uint8(typ), got, want)
		}
	}
}

// rawPayload builds a payload from its parts with a correct length word.
func rawPayload(word uint32, nameLen uint32, rest []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint32(b, word)
	b = binary.BigEndian.AppendUint32(b, nameLen)
	b = append(b, rest...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func TestDecodePayloadMalformed(t *testing.T) {
	const call = PayloadMagic<<16 | uint32(Call)
	seq1 := []byte{0, 0, 0, 1}
	tests := []struct {
		name string
		b    []byte
	}{
		{name: "empty", b: nil},
		{name: "too-short", b: rawPayload(call, 0, nil)},          // 12 bytes: no seq id
		{name: "too-short-15", b: rawPayload(call, 0, seq1)[:15]}, // length word now wrong too
		{name: "length-word-too-big", b: func() []byte { b := rawPayload(call, 0, seq1); b[3]++; return b }()},
		{name: "length-word-too-small", b: func() []byte { b := rawPayload(call, 0, append(seq1, 'x')); b[3]--; return b }()},
		{name: "length-word-huge", b: func() []byte { b := rawPayload(call, 0, seq1); b[0] = 0xff; return b }()},
		{name: "wrong-magic", b: rawPayload(0x9002<<16|uint32(Call), 0, seq1)},
		{name: "magic-zero", b: rawPayload(uint32(Call), 0, seq1)},
		{name: "thrift-magic", b: rawPayload(0x8001<<16|uint32(Call), 0, seq1)},
		{name: "msg-type-0", b: rawPayload(PayloadMagic<<16, 0, seq1)},
		{name: "msg-type-5", b: rawPayload(PayloadMagic<<16|5, 0, seq1)},
		{name: "msg-type-255", b: rawPayload(PayloadMagic<<16|0xff, 0, seq1)},
		{name: "method-overrun", b: rawPayload(call, 5, []byte("Echo\x00\x00\x00"))},
		{name: "method-eats-seq", b: rawPayload(call, 4, []byte("Echo\x00\x00\x00"))},
		{name: "method-length-huge", b: rawPayload(call, 0x7fffffff, seq1)},
		{name: "method-length-max", b: rawPayload(call, math.MaxUint32, seq1)},
		{name: "method-length-2^31", b: rawPayload(call, 1<<31, seq1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DecodePayload(tt.b)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodePayload(%x) = %+v, %v; want ErrMalformed", tt.b, p, err)
			}
		})
	}
}

func TestExceptionRoundTrip(t *testing.T) {
	tests := []struct {
		typeID int32
		msg    string
	}{
		{0, ""},
		{ExcUnknown, "boom"},
		{ExcUnknownMethod, "unknown method Foo"},
		{ExcInternalError, ""},
		{ExcNoServiceName, "no service name"},
		{-1, "negative"},
		{math.MaxInt32, "max"},
		{math.MinInt32, "min"},
		{ExcProtocolError, "héllo\x00wörld"},
		{ExcBadSeqID, strings.Repeat("long message ", 1000)},
	}
	for _, tt := range tests {
		b := AppendException([]byte("x"), tt.typeID, tt.msg)
		if b[0] != 'x' {
			t.Fatalf("AppendException overwrote the buffer")
		}
		id, msg, err := DecodeException(b[1:])
		if err != nil || id != tt.typeID || msg != tt.msg {
			t.Errorf("round trip of (%d, %.20q) = (%d, %.20q, %v)", tt.typeID, tt.msg, id, msg, err)
		}
	}
}

func TestDecodeExceptionSkipsUnknownFields(t *testing.T) {
	var b []byte
	// Before the known fields: each wire type, a group, and the known field
	// numbers with the wrong wire type.
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, 1<<40)
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendString(b, "ignored")
	b = protowire.AppendTag(b, 5, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, 7)
	b = protowire.AppendTag(b, 6, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 7)
	b = protowire.AppendTag(b, 7, protowire.StartGroupType)
	b = protowire.AppendTag(b, 1, protowire.VarintType) // inside the group: not the type id
	b = protowire.AppendVarint(b, 99)
	b = protowire.AppendTag(b, 7, protowire.EndGroupType)
	b = protowire.AppendTag(b, 1, protowire.BytesType) // type_id with the wrong wire type
	b = protowire.AppendString(b, "not a varint")
	b = protowire.AppendTag(b, 2, protowire.VarintType) // message with the wrong wire type
	b = protowire.AppendVarint(b, 5)
	b = AppendException(b, ExcUnknownMethod, "first")
	b = protowire.AppendTag(b, 1000, protowire.BytesType)
	b = protowire.AppendBytes(b, nil)
	// Repeated known fields: the last one wins, as in protobuf.
	b = AppendException(b, ExcProtocolError, "last")
	b = protowire.AppendTag(b, protowire.MaxValidNumber, protowire.VarintType)
	b = protowire.AppendVarint(b, 0)

	id, msg, err := DecodeException(b)
	if err != nil || id != ExcProtocolError || msg != "last" {
		t.Errorf("got (%d, %q, %v), want (%d, %q, nil)", id, msg, err, ExcProtocolError, "last")
	}
}

func TestDecodeExceptionMalformed(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
	}{
		{name: "truncated-tag", b: []byte{0x80}},
		{name: "field-number-zero", b: []byte{0x00, 0x00}},
		{name: "invalid-wire-type", b: []byte{0x0f}}, // field 1, wire type 7
		{name: "tag-overflow", b: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{name: "type-id-missing", b: []byte{0x08}},
		{name: "type-id-truncated", b: []byte{0x08, 0x80}},
		{name: "message-length-missing", b: []byte{0x12}},
		{name: "message-overrun", b: []byte{0x12, 0x05, 'a'}},
		{name: "after-valid-field", b: append(AppendException(nil, 1, "ok"), 0x12, 0x02)},
		{name: "unknown-bytes-overrun", b: []byte{0x1a, 0x05}},
		{name: "unknown-fixed32-truncated", b: []byte{0x1d, 0x00, 0x00}},
		{name: "unknown-fixed64-truncated", b: []byte{0x19, 0x00}},
		{name: "unclosed-group", b: []byte{0x1b}},
		{name: "lone-end-group", b: []byte{0x1c}},
		{name: "mismatched-end-group", b: []byte{0x1b, 0x24}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, msg, err := DecodeException(tt.b)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeException(%x) = (%d, %q, %v), want ErrMalformed", tt.b, id, msg, err)
			}
			if id != 0 || msg != "" {
				t.Errorf("got (%d, %q) with an error, want zero values", id, msg)
			}
		})
	}
}

// TestExceptionCodeMapping pins what a gRPC code becomes after a trip through
// a Kitex exception type id (a Kitex peer sees only the type id; so does a
// Sluice client talking to a Kitex server):
//
//	code                 ExceptionType       CodeOf(ExceptionType(code))
//	Unknown              ExcUnknown          Unknown           exact
//	InvalidArgument      ExcProtocolError    InvalidArgument   exact
//	Unimplemented        ExcUnknownMethod    Unimplemented     exact
//	Internal             ExcInternalError    Internal          exact
//	DataLoss             ExcProtocolError    InvalidArgument   lossy
//	every other code     ExcInternalError    Internal          lossy
//
// OK is included: it is never sent as an exception, but if it were it must
// not come back as OK. Properties asserted besides the table: CodeOf never
// returns OK, and ExceptionType∘CodeOf is the identity on the ids
// ExceptionType produces, so a reply relayed twice does not drift.
func TestExceptionCodeMapping(t *testing.T) {
	want := map[codes.Code]codes.Code{
		codes.OK:                 codes.Internal,
		codes.Canceled:           codes.Internal,
		codes.Unknown:            codes.Unknown,
		codes.InvalidArgument:    codes.InvalidArgument,
		codes.DeadlineExceeded:   codes.Internal,
		codes.NotFound:           codes.Internal,
		codes.AlreadyExists:      codes.Internal,
		codes.PermissionDenied:   codes.Internal,
		codes.ResourceExhausted:  codes.Internal,
		codes.FailedPrecondition: codes.Internal,
		codes.Aborted:            codes.Internal,
		codes.OutOfRange:         codes.Internal,
		codes.Unimplemented:      codes.Unimplemented,
		codes.Internal:           codes.Internal,
		codes.Unavailable:        codes.Internal,
		codes.DataLoss:           codes.InvalidArgument,
		codes.Unauthenticated:    codes.Internal,
	}
	for c := codes.Code(0); c <= 16; c++ {
		id := ExceptionType(c)
		got := CodeOf(id)
		if got != want[c] {
			t.Errorf("CodeOf(ExceptionType(%v)) = %v (type id %d), want %v", c, got, id, want[c])
		}
		if got == codes.OK {
			t.Errorf("%v comes back as OK", c)
		}
		if again := ExceptionType(got); again != id {
			t.Errorf("%v: type id %d → %v → type id %d; not stable", c, id, got, again)
		}
	}
}

// TestCodeOfTypeIDs pins CodeOf for every type id Kitex sends.
func TestCodeOfTypeIDs(t *testing.T) {
	tests := []struct {
		id   int32
		want codes.Code
	}{
		{ExcUnknown, codes.Unknown},
		{ExcUnknownMethod, codes.Unimplemented},
		{ExcInvalidMsgType, codes.InvalidArgument},
		{ExcWrongMethodName, codes.Unimplemented},
		{ExcBadSeqID, codes.Internal},
		{ExcMissingResult, codes.Internal},
		{ExcInternalError, codes.Internal},
		{ExcProtocolError, codes.InvalidArgument},
		{ExcNoServiceName, codes.Unimplemented},
		{8, codes.Internal},
		{-1, codes.Internal},
		{math.MaxInt32, codes.Internal},
	}
	for _, tt := range tests {
		if got := CodeOf(tt.id); got != tt.want {
			t.Errorf("CodeOf(%d) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	frame := mustHex(t, kitexRequestMeta)
	var h Header
	pl, err := DecodeHeader(frame, &h) // warm-up: grows h's slices
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := DecodeHeader(frame, &h); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("DecodeHeader: %v allocations per run, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := DecodePayload(pl); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("DecodePayload: %v allocations per run, want 0", n)
	}
}
