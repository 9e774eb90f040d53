package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// sniffPipe runs Sniff on one end of a loopback TCP pair while write
// feeds the other, and returns what Sniff decided and the replaying conn.
func sniffPipe(t *testing.T, timeouts SniffTimeouts, write func(c net.Conn)) (Protocol, net.Conn, net.Conn, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	go write(client)
	p, c, err := Sniff(srv, timeouts)
	return p, c, client, err
}

func trickle(b []byte) func(net.Conn) {
	return func(c net.Conn) {
		for i := range b {
			c.Write(b[i : i+1])
			time.Sleep(time.Millisecond)
		}
	}
}

func TestSniffFirstBytes(t *testing.T) {
	native := []byte{0, 0, 0, 0x29, 0x10, 0x00, 0, 0, 0, 0, 0, 1}
	tests := []struct {
		name  string
		bytes []byte
		want  Protocol
		err   bool
	}{
		{"native", native, Native, false},
		{"http1 get", []byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), HTTP, false},
		{"http1 post", []byte("POST /pkg.S/M HTTP/1.1\r\n"), HTTP, false},
		{"garbage binary", []byte{0, 0, 0, 9, 0xde, 0xad, 1, 2}, 0, true},
		{"garbage text", []byte("HELLO WORLD\r\n"), 0, true},
		{"lowercase", []byte("get / HTTP/1.1\r\n"), 0, true},
		{"long token", []byte("ABCDEFGHIJKLMNOP"), 0, true},
	}
	for _, tt := range tests {
		for _, slow := range []bool{false, true} {
			name := tt.name
			if slow {
				name += "/one-byte-at-a-time"
			}
			t.Run(name, func(t *testing.T) {
				write := func(c net.Conn) { c.Write(tt.bytes) }
				if slow {
					write = trickle(tt.bytes)
				}
				p, c, _, err := sniffPipe(t, SniffTimeouts{First: 5 * time.Second}, write)
				if tt.err {
					if !errors.Is(err, ErrGarbage) {
						t.Fatalf("got %v, %v; want ErrGarbage", p, err)
					}
					return
				}
				if err != nil || p != tt.want {
					t.Fatalf("got %v, %v; want %v", p, err, tt.want)
				}
				// The replaying conn gives back every byte read so far.
				got := make([]byte, len(tt.bytes))
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, tt.bytes) {
					t.Fatalf("replayed %q, %v", got, err)
				}
			})
		}
	}
}

func TestSniffTimeoutAndEOF(t *testing.T) {
	_, _, _, err := sniffPipe(t, SniffTimeouts{First: 50 * time.Millisecond}, func(c net.Conn) { c.Write([]byte{0, 0}) })
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("slow client: %v, want a timeout", err)
	}
	_, _, _, err = sniffPipe(t, SniffTimeouts{First: 5 * time.Second}, func(c net.Conn) { c.Write([]byte("PO")); c.Close() })
	if !errors.Is(err, io.EOF) {
		t.Fatalf("early close: %v, want EOF", err)
	}
}

// h2Client writes the client preface, SETTINGS and a HEADERS frame with
// the content type, acknowledging the server's SETTINGS when ackFirst.
func h2Client(contentType string, ackFirst bool) func(net.Conn) {
	return func(c net.Conn) {
		fr := http2.NewFramer(c, c)
		c.Write([]byte(h2Preface))
		fr.WriteSettings()
		if ackFirst {
			// Wait for the sniffer's SETTINGS, as grpc-go does, and ack it.
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
				fr.WriteSettingsAck()
			}
		}
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		enc.WriteField(hpack.HeaderField{Name: ":method", Value: "POST"})
		enc.WriteField(hpack.HeaderField{Name: ":path", Value: "/pkg.S/M"})
		enc.WriteField(hpack.HeaderField{Name: "content-type", Value: contentType})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
		if !ackFirst {
			// Acknowledge late, after the request: the filter removes it from the live stream.
			fr.WriteSettingsAck()
			fr.WriteData(1, true, []byte("body"))
		}
	}
}

func TestSniffHTTP2(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		ackFirst    bool
		want        Protocol
	}{
		{"grpc waits for settings", "application/grpc", true, GRPC},
		{"grpc+proto", "application/grpc+proto", true, GRPC},
		{"connect h2c, ack after request", "application/proto", false, HTTP},
		{"json h2c, ack first", "application/json", true, HTTP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, c, _, err := sniffPipe(t, SniffTimeouts{First: 5 * time.Second, H2Headers: 5 * time.Second}, h2Client(tt.contentType, tt.ackFirst))
			if err != nil || p != tt.want {
				t.Fatalf("got %v, %v; want %v", p, err, tt.want)
			}
			// What the real server reads: preface, then frames with no
			// SETTINGS acknowledgement anywhere.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			pre := make([]byte, len(h2Preface))
			if _, err := io.ReadFull(c, pre); err != nil || string(pre) != h2Preface {
				t.Fatalf("preface %q, %v", pre, err)
			}
			fr := http2.NewFramer(nil, c)
			var sawHeaders, sawData bool
			for !(sawHeaders && (tt.ackFirst || sawData)) {
				f, err := fr.ReadFrame()
				if err != nil {
					t.Fatalf("reading replayed frames: %v", err)
				}
				switch f := f.(type) {
				case *http2.SettingsFrame:
					if f.IsAck() {
						t.Fatal("the SETTINGS acknowledgement reached the server")
					}
				case *http2.HeadersFrame:
					sawHeaders = true
				case *http2.DataFrame:
					sawData = string(f.Data()) == "body"
				}
			}
		})
	}
}

func TestSniffIdleHTTP2IsGRPC(t *testing.T) {
	p, _, _, err := sniffPipe(t, SniffTimeouts{First: 5 * time.Second, H2Headers: 50 * time.Millisecond}, func(c net.Conn) {
		c.Write([]byte(h2Preface))
		http2.NewFramer(c, c).WriteSettings()
	})
	if err != nil || p != GRPC {
		t.Fatalf("got %v, %v; want GRPC", p, err)
	}
}

func FuzzClassify(f *testing.F) {
	f.Add([]byte(h2Preface))
	f.Add([]byte("POST / HTTP/1.1\r\n"))
	f.Add([]byte{0, 0, 0, 0x29, 0x10, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, more, err := classify(b)
		if err != nil && (more || p != 0) {
			t.Fatalf("error with a result: %v %v %v", p, more, err)
		}
		if more && p != 0 {
			t.Fatal("more and a protocol")
		}
	})
}

func FuzzFilter(f *testing.F) {
	f.Add([]byte{0, 0, 0, 4, 1, 0, 0, 0, 0}, 3)
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		// However the stream is cut, filtering drops at most one
		// acknowledgement and keeps every other byte, except a partial
		// frame header it holds until the rest arrives.
		var c replayConn
		c.dropAck = true
		if split < 0 || split > len(b) {
			split = len(b) / 2
		}
		out := append(c.filter(b[:split]), c.filter(b[split:])...)
		if d := len(b) - len(out) - c.hn; d != 0 && d != frameHeaderLen {
			t.Fatalf("dropped %d bytes (holding %d)", d, c.hn)
		}
	})
}
