package nats_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	snats "github.com/sluicerpc/sluice/contrib/nats"
	"github.com/sluicerpc/sluice/metadata"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startNATS runs a NATS server in this process on a free loopback port
// until the test ends and returns a connection to it.
func startNATS(t testing.TB) *nats.Conn {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return connect(t, ns.ClientURL())
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// received is what a subscriber handler saw of one message.
type received struct {
	ctx context.Context
	msg *nats.Msg
}

// subscribe subscribes to subject and returns the channel its handler
// sends every message to.
func subscribe(t *testing.T, nc *nats.Conn, subject string) <-chan received {
	t.Helper()
	ch := make(chan received, 10)
	sub, err := snats.Subscribe(nc, subject, func(ctx context.Context, msg *nats.Msg) { ch <- received{ctx, msg} })
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the subscription is in place
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return ch
}

func receive(t *testing.T, ch <-chan received) received {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
		return received{}
	}
}

const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

// wire returns what a Sluice call made with ctx would send.
func wire(ctx context.Context) metadata.MD {
	md := metadata.MD{}
	metadata.RangeOutgoing(ctx, mdAdder(md))
	return md
}

type mdAdder metadata.MD

func (m mdAdder) AddString(k, v string) { m[k] = append(m[k], v) }

func TestPublishSubscribe(t *testing.T) {
	nc := startNATS(t)
	ch := subscribe(t, nc, "orders")

	ctx := metadata.AppendToOutgoing(context.Background(),
		"traceparent", traceparent, "tracestate", "a=b", "x-hop", "one", "x-data-bin", "\x00\r\n\xff")
	ctx = metadata.AppendPersistent(ctx, "x-tenant", "acme", "x-tenant", "beta")
	ctx, _ = metadata.SetBaggage(ctx, "sluice-lane", "canary 1")
	if err := snats.Publish(ctx, nc, "orders", []byte("order")); err != nil {
		t.Fatal(err)
	}
	r := receive(t, ch)
	if string(r.msg.Data) != "order" {
		t.Fatalf("data %q", r.msg.Data)
	}
	in, ok := metadata.FromIncoming(r.ctx)
	want := metadata.MD{
		"traceparent":          {traceparent},
		"tracestate":           {"a=b"},
		"x-hop":                {"one"},
		"x-data-bin":           {"\x00\r\n\xff"},
		"rpc-persist-x-tenant": {"acme", "beta"},
		"baggage":              {"sluice-lane=canary%201"},
	}
	if !ok || !reflect.DeepEqual(in, want) {
		t.Fatalf("incoming %v, want %v", in, want)
	}
	if got := metadata.Persistent(r.ctx).Get("x-tenant"); !reflect.DeepEqual(got, []string{"acme", "beta"}) {
		t.Errorf("persistent x-tenant = %q", got)
	}
	if v, _ := metadata.BaggageValue(r.ctx, "sluice-lane"); v != "canary 1" {
		t.Errorf("lane = %q", v)
	}
	// The subscriber's calls carry the persistent keys and baggage on, not the rest.
	if got, want := wire(r.ctx), (metadata.MD{"rpc-persist-x-tenant": {"acme", "beta"}, "baggage": {"sluice-lane=canary%201"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("subscriber's calls send %v, want %v", got, want)
	}
	sc := trace.SpanContextFromContext(r.ctx)
	if !sc.IsRemote() || sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || sc.SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("remote span context %v", sc)
	}
}

// TestSpanContext publishes from a context that holds an OpenTelemetry span
// but no traceparent metadata: the span's trace context travels.
func TestSpanContext(t *testing.T) {
	nc := startNATS(t)
	ch := subscribe(t, nc, "spans")
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ts, _ := trace.ParseTraceState("k=v")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	if err := snats.Publish(ctx, nc, "spans", nil); err != nil {
		t.Fatal(err)
	}
	r := receive(t, ch)
	if got := r.msg.Header.Get("traceparent"); got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Fatalf("traceparent %q", got)
	}
	if got := r.msg.Header.Get("tracestate"); got != "k=v" {
		t.Fatalf("tracestate %q", got)
	}
	if got := trace.SpanContextFromContext(r.ctx); got.TraceID() != tid || got.SpanID() != sid || !got.IsRemote() {
		t.Fatalf("remote span context %v", got)
	}
	// Trace context already in the metadata wins over the span.
	msg := &nats.Msg{Subject: "spans"}
	if err := snats.Inject(metadata.AppendToOutgoing(ctx, "traceparent", traceparent), msg); err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Values("traceparent"); !reflect.DeepEqual(got, []string{traceparent}) {
		t.Fatalf("traceparent %q", got)
	}
}

func TestQueueSubscribe(t *testing.T) {
	nc := startNATS(t)
	ch := make(chan context.Context, 2)
	for range 2 {
		sub, err := snats.QueueSubscribe(nc, "jobs", "workers", func(ctx context.Context, _ *nats.Msg) { ch <- ctx })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: "jobs", Header: nats.Header{"X-Own": {"kept"}}}
	if err := snats.PublishMsg(metadata.AppendPersistent(context.Background(), "job", "1"), nc, msg); err != nil {
		t.Fatal(err)
	}
	select {
	case ctx := <-ch:
		in, _ := metadata.FromIncoming(ctx)
		if v, _ := metadata.PersistentValue(ctx, "job"); v != "1" || in.Value("x-own") != "kept" {
			t.Fatalf("job = %q, incoming %v", v, in)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
	select {
	case <-ch:
		t.Fatal("both members of the queue group got the message")
	case <-time.After(50 * time.Millisecond):
	}
}

func TestInjectRejects(t *testing.T) {
	for _, tc := range []struct{ key, value, why string }{
		{"bad key", "v", "not a valid header name"},
		{"x-ctl", "a\r\nb", "control characters"},
		{"nats-msg-id", "1", "reserved for NATS"},
	} {
		msg := &nats.Msg{}
		ctx := metadata.AppendToOutgoing(context.Background(), tc.key, tc.value, "x-ok", "1")
		err := snats.Inject(ctx, msg)
		if !errors.Is(err, snats.ErrHeader) || !strings.HasPrefix(err.Error(), "nats: ") {
			t.Errorf("%s: err = %v", tc.why, err)
		}
		if msg.Header.Get("x-ok") != "1" {
			t.Errorf("%s: the valid pair was not added: %v", tc.why, msg.Header)
		}
	}
	nc := startNATS(t)
	if err := snats.Publish(metadata.AppendToOutgoing(context.Background(), "x", "\n"), nc, "s", nil); !errors.Is(err, snats.ErrHeader) {
		t.Errorf("Publish with a bad value: %v", err)
	}
}

func TestExtract(t *testing.T) {
	bg := context.Background()
	if ctx := snats.Extract(bg, &nats.Msg{}); ctx != bg {
		t.Fatal("a message without headers changed the context")
	}
	msg := &nats.Msg{Header: nats.Header{
		"Nats-Msg-Id":          {"1"},
		"X-Tenant":             {"a"},
		"k-bin":                {"!!", "aGk", "aGk="},
		"RPC_PERSIST_X_USER":   {"u"},
		"Traceparent":          {"not a traceparent"},
		"rpc-persist-x-tenant": {"t"},
	}}
	ctx := snats.Extract(bg, msg)
	in, _ := metadata.FromIncoming(ctx)
	want := metadata.MD{
		"x-tenant":             {"a"},
		"k-bin":                {"hi", "hi"},
		"rpc_persist_x_user":   {"u"},
		"traceparent":          {"not a traceparent"},
		"rpc-persist-x-tenant": {"t"},
	}
	if !reflect.DeepEqual(in, want) {
		t.Fatalf("incoming %v, want %v", in, want)
	}
	if got := metadata.Persistent(ctx); !reflect.DeepEqual(got, metadata.MD{"x-user": {"u"}, "x-tenant": {"t"}}) {
		t.Fatalf("persistent %v", got)
	}
	if trace.SpanContextFromContext(ctx).IsValid() {
		t.Fatal("a malformed traceparent gave a span context")
	}
}

// FuzzHeaders sends one arbitrary metadata pair through Inject and Extract:
// either Inject refuses it, or it arrives as it was sent.
func FuzzHeaders(f *testing.F) {
	f.Add("x-tenant", "acme")
	f.Add("x-data-bin", "\x00\r\n\xff")
	f.Add("rpc-persist-x", "v")
	f.Add("baggage", "a=1;p, b=%20")
	f.Add("Nats-Msg-Id", "1")
	f.Add("traceparent", traceparent)
	f.Fuzz(func(t *testing.T, key, value string) {
		ctx := metadata.AppendToOutgoing(context.Background(), key, value)
		msg := &nats.Msg{}
		if err := snats.Inject(ctx, msg); err != nil {
			if !errors.Is(err, snats.ErrHeader) {
				t.Fatalf("Inject: %v", err)
			}
			return
		}
		in, _ := metadata.FromIncoming(snats.Extract(context.Background(), msg))
		k := strings.ToLower(key) // accepted keys are ASCII
		if got := in.Get(k); len(got) != 1 || got[0] != value || len(in) != 1 {
			t.Fatalf("%q=%q arrived as %v", key, value, in)
		}
	})
}

// FuzzExtract decodes arbitrary NATS header blocks and checks what a
// handler gets: lower-case keys, no NATS headers, never a panic.
func FuzzExtract(f *testing.F) {
	f.Add([]byte("NATS/1.0\r\nX-Tenant: a\r\nNats-Msg-Id: 1\r\nrpc-persist-k: v\r\nbaggage: a=1\r\n\r\n"))
	f.Add([]byte("NATS/1.0 503\r\n\r\n"))
	f.Add([]byte("NATS/1.0\r\nk-bin: aGk\r\nTraceparent: " + traceparent + "\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := nats.DecodeHeadersMsg(data)
		if err != nil {
			return
		}
		ctx := snats.Extract(context.Background(), &nats.Msg{Header: h})
		in, _ := metadata.FromIncoming(ctx)
		for k := range in {
			if k != strings.ToLower(k) || strings.HasPrefix(k, "nats-") {
				t.Fatalf("handler sees key %q", k)
			}
		}
		for k := range wire(ctx) {
			if !strings.HasPrefix(k, metadata.PersistentPrefix) && k != metadata.KeyBaggage {
				t.Fatalf("handler's calls send %q", k)
			}
		}
	})
}
