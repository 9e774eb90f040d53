package nats_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/sluicerpc/sluice/balancer/balancertest"
	snats "github.com/sluicerpc/sluice/contrib/nats"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/route"
)

// handled is one handler call of a lane test: which member took which
// message, and the lane its context carries.
type handled struct {
	member, data, lane string
}

// lanes runs lane consumers on one server, each member on a connection of
// its own, as separate processes would be, and records what they handle.
type lanes struct {
	t   *testing.T
	url string
	pub *nats.Conn
	got chan handled
	log []handled // what take has read from got

	queue map[string]string // member -> queue
}

func newLanes(t *testing.T) *lanes {
	nc := startNATS(t)
	return &lanes{t: t, url: nc.ConnectedUrl(), pub: nc, got: make(chan handled, 1000), queue: map[string]string{}}
}

// member subscribes a member named name and returns its subscription and
// connection.
func (l *lanes) member(name, subject, queue, lane string, opts ...snats.LaneOption) (*snats.LaneSubscription, *nats.Conn) {
	l.t.Helper()
	l.queue[name] = queue
	nc := connect(l.t, l.url)
	s, err := snats.LaneSubscribe(nc, subject, queue, lane, func(ctx context.Context, msg *nats.Msg) {
		lane, _ := metadata.BaggageValue(ctx, route.LaneKey)
		l.got <- handled{name, string(msg.Data), lane}
	}, opts...)
	if err != nil {
		l.t.Fatal(err)
	}
	if s.Lane() != lane {
		l.t.Fatalf("Lane() = %q, want %q", s.Lane(), lane)
	}
	l.t.Cleanup(func() { s.Unsubscribe() })
	return s, nc
}

// publish publishes data on subject in lane ("" for none).
func (l *lanes) publish(subject, lane, data string) {
	l.t.Helper()
	ctx := context.Background()
	if lane != "" {
		var err error
		if ctx, err = metadata.SetBaggage(ctx, route.LaneKey, lane); err != nil {
			l.t.Fatal(err)
		}
	}
	if err := snats.Publish(ctx, l.pub, subject, []byte(data)); err != nil {
		l.t.Fatal(err)
	}
}

// take reads handler calls until one of data, and returns it.
func (l *lanes) take(data string) handled {
	l.t.Helper()
	for {
		select {
		case h := <-l.got:
			l.log = append(l.log, h)
			if h.data == data {
				return h
			}
		case <-time.After(10 * time.Second):
			l.t.Fatalf("%s was not handled; handled %v", data, l.log)
		}
	}
}

// fence publishes messages in lane on subject until each of members has
// handled one. Members handle their messages in the order published, so
// then each has decided on every message published before.
func (l *lanes) fence(subject, lane string, members ...string) {
	l.t.Helper()
	left := map[string]bool{}
	for _, m := range members {
		left[m] = true
	}
	for i := 0; len(left) > 0; i++ {
		if i == 200 {
			l.t.Fatalf("fences in lane %q never reached %v", lane, left)
		}
		data := fmt.Sprintf("fence-%s-%d", lane, i)
		l.publish(subject, lane, data)
		l.take(data)
		for _, h := range l.log {
			if strings.HasPrefix(h.data, "fence-"+lane+"-") {
				delete(left, h.member)
			}
		}
	}
}

// handlers returns who handled data, in order: the members of queue, or
// all when queue is "".
func (l *lanes) handlers(data, queue string) []string {
	var ms []string
	for _, h := range l.log {
		if h.data == data && (queue == "" || l.queue[h.member] == queue) {
			ms = append(ms, h.member)
		}
	}
	return ms
}

// expect checks who in the queue of want's members handled each message:
// one of want, once, with the message's lane in its context.
func (l *lanes) expect(lane string, want []string, datas ...string) {
	l.t.Helper()
	for _, d := range datas {
		ms := l.handlers(d, l.queue[want[0]])
		if len(ms) != 1 || !contains(want, ms[0]) {
			l.t.Errorf("%s (lane %q) handled by %v, want once by one of %v", d, lane, ms, want)
			continue
		}
		for _, h := range l.log {
			if h.data == d && h.lane != lane {
				l.t.Errorf("%s: handler's context in lane %q, want %q", d, h.lane, lane)
			}
		}
	}
}

// unhandled checks that no member handled the messages.
func (l *lanes) unhandled(datas ...string) {
	l.t.Helper()
	for _, d := range datas {
		if ms := l.handlers(d, ""); len(ms) > 0 {
			l.t.Errorf("%s handled by %v, want by none", d, ms)
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func names(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return s
}

// stopped is a fake clock that never moves: lanes stay live as long as
// their first hello says, whatever the machine's speed.
func stopped() *balancertest.Clock { return balancertest.NewClock(time.Unix(1e9, 0)) }

// TestLanes runs a base group and a blue group of two members each on one
// subject; a green member on another subject of the same queue, and one on
// the same subject in another queue, do not count as green consumers.
// Members in other queues handle their own copies of the messages.
func TestLanes(t *testing.T) {
	l := newLanes(t)
	clk := stopped()
	l.member("base1", "orders", "workers", "", snats.WithClock(clk))
	l.member("base2", "orders", "workers", "", snats.WithClock(clk))
	l.member("blue1", "orders", "workers", "blue")
	l.member("blue2", "orders", "workers", "blue")
	l.member("green-elsewhere", "invoices", "workers", "green")
	l.member("audit-green", "orders", "auditors", "green")

	const n = 20
	plain, blue, green, odd := names("plain", n), names("blue", n), names("green", n), names("odd", n)
	for i := range n {
		l.publish("orders", "", plain[i])
		l.publish("orders", "blue", blue[i])
		l.publish("orders", "green", green[i])  // no green consumer on orders
		l.publish("orders", "canary 1", odd[i]) // a lane no consumer can be in
	}
	l.fence("orders", "", "base1", "base2")
	l.fence("orders", "blue", "blue1", "blue2")
	l.fence("orders", "green", "audit-green")

	bases := []string{"base1", "base2"}
	l.expect("", bases, plain...)
	l.expect("blue", []string{"blue1", "blue2"}, blue...)
	l.expect("green", bases, green...)
	l.expect("canary 1", bases, odd...)
	l.expect("green", []string{"audit-green"}, green...)
	for _, h := range l.log {
		if h.member == "green-elsewhere" || h.member == "audit-green" && h.lane != "green" {
			t.Errorf("%s handled %s (lane %q)", h.member, h.data, h.lane)
		}
	}
	// Both members of each group took a share.
	for _, m := range []string{"base1", "base2", "blue1", "blue2"} {
		var k int
		for _, h := range l.log {
			if h.member == m {
				k++
			}
		}
		if k == 0 {
			t.Errorf("%s handled nothing", m)
		}
	}
}

// TestLaneUnsubscribe stops the members of the blue lane one by one: the
// lane stays with the one left, then falls back to the base consumer.
func TestLaneUnsubscribe(t *testing.T) {
	l := newLanes(t)
	l.member("base", "orders", "workers", "", snats.WithClock(stopped()))
	blue1, _ := l.member("blue1", "orders", "workers", "blue")
	blue2, _ := l.member("blue2", "orders", "workers", "blue")

	l.publish("orders", "blue", "b1")
	l.fence("orders", "", "base")
	l.fence("orders", "blue", "blue1", "blue2")
	l.expect("blue", []string{"blue1", "blue2"}, "b1")

	if err := blue1.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	l.publish("orders", "blue", "b2")
	l.take("b2")
	l.fence("orders", "", "base")
	l.expect("blue", []string{"blue2"}, "b2")

	if err := blue2.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := blue2.Unsubscribe(); err != nil {
		t.Fatalf("second Unsubscribe: %v", err)
	}
	l.publish("orders", "blue", "b3")
	l.take("b3")
	l.fence("orders", "", "base")
	l.expect("blue", []string{"base"}, "b3")
}

// TestLaneExpiry loses a blue member without a goodbye: the base consumer
// leaves blue messages alone for three of its heartbeats, then takes them.
func TestLaneExpiry(t *testing.T) {
	l := newLanes(t)
	clk := stopped()
	l.member("base", "orders", "workers", "", snats.WithClock(clk))
	_, nc := l.member("blue", "orders", "workers", "blue", snats.WithHeartbeat(time.Hour))

	l.publish("orders", "blue", "b1")
	l.take("b1")
	nc.Close() // a crash: no goodbye

	l.publish("orders", "blue", "b2")
	l.fence("orders", "", "base")
	clk.Advance(3*time.Hour - time.Nanosecond)
	l.publish("orders", "blue", "b3")
	l.fence("orders", "", "base")
	l.unhandled("b2", "b3") // the window a crash costs

	clk.Advance(time.Nanosecond)
	l.publish("orders", "blue", "b4")
	l.fence("orders", "", "base")
	l.expect("blue", []string{"blue"}, "b1")
	l.expect("blue", []string{"base"}, "b4")
}

// TestLaneHeartbeat lets the base consumer's clock pass the blue member's
// first hello by more than three heartbeats: its heartbeats keep the lane
// live.
func TestLaneHeartbeat(t *testing.T) {
	l := newLanes(t)
	clk := stopped()
	_, bnc := l.member("base", "orders", "workers", "", snats.WithClock(clk))
	// Watch the presence subject from the base consumer's connection, so
	// what is seen here has reached the base consumer too.
	hellos := make(chan *nats.Msg, 100)
	watch, err := bnc.ChanSubscribe("_SLUICE.LANES.workers", hellos)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Unsubscribe()
	if err := bnc.Flush(); err != nil {
		t.Fatal(err)
	}
	const hb = 20 * time.Millisecond
	l.member("blue", "orders", "workers", "blue", snats.WithHeartbeat(hb))

	clk.Advance(2 * hb)
	for len(hellos) > 0 {
		<-hellos
	}
	// The second hello from now on reaches the base consumer after the
	// clock moved: the lane is live until at least 5 heartbeats in.
	for seen := 0; seen < 2; {
		select {
		case msg := <-hellos:
			var a map[string]string
			if err := json.Unmarshal(msg.Data, &a); err != nil {
				t.Fatalf("announcement %q: %v", msg.Data, err)
			}
			if a["op"] == "hello" && a["lane"] == "blue" && a["subject"] == "orders" && a["heartbeat"] == hb.String() {
				seen++
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no heartbeat")
		}
	}
	clk.Advance(2 * hb) // 4 heartbeats after the first hello
	l.publish("orders", "blue", "b1")
	l.take("b1")
	l.fence("orders", "", "base")
	l.expect("blue", []string{"blue"}, "b1")
}

// TestLaneProbe starts the base consumer after the blue member, whose
// heartbeat is too slow to tell it: the base consumer's probe does.
func TestLaneProbe(t *testing.T) {
	l := newLanes(t)
	l.member("blue", "orders", "workers", "blue", snats.WithHeartbeat(time.Hour))
	l.member("base", "orders", "workers", "", snats.WithClock(stopped()))
	l.publish("orders", "blue", "b1") // at once: the base consumer holds it
	l.take("b1")
	l.fence("orders", "", "base")
	l.expect("blue", []string{"blue"}, "b1")
}

func TestLaneSubscribeErrors(t *testing.T) {
	for _, tc := range []struct {
		queue, lane string
		opt         snats.LaneOption
	}{
		{queue: ""},
		{queue: "a b"},
		{queue: "a@b"},
		{queue: "a.*"},
		{queue: "a..b"},
		{queue: ".a"},
		{queue: "q", lane: "canary 1"},
		{queue: "q", lane: "blue@x"},
		{queue: "q", lane: "-blue"},
		{queue: "q", lane: "blue", opt: snats.WithHeartbeat(0)},
		{queue: "q", opt: snats.WithProbe(-time.Second)},
		{queue: "q", opt: snats.WithPending(0)},
		{queue: "q", opt: snats.WithClock(nil)},
	} {
		var opts []snats.LaneOption
		if tc.opt != nil {
			opts = append(opts, tc.opt)
		}
		_, err := snats.LaneSubscribe(nil, "s", tc.queue, tc.lane, func(context.Context, *nats.Msg) {}, opts...)
		if !errors.Is(err, snats.ErrLaneConfig) || !strings.HasPrefix(err.Error(), "nats: ") {
			t.Errorf("queue %q, lane %q: err = %v", tc.queue, tc.lane, err)
		}
	}
	nc := startNATS(t)
	nc.Close()
	for _, lane := range []string{"", "blue"} {
		if _, err := snats.LaneSubscribe(nc, "s", "q", lane, func(context.Context, *nats.Msg) {}); !errors.Is(err, nats.ErrConnectionClosed) {
			t.Errorf("lane %q on a closed connection: err = %v", lane, err)
		}
	}
}

// ExampleLaneSubscribe runs a base consumer and a blue one: each message
// goes to its lane's consumer when the lane has one, else to the base.
func ExampleLaneSubscribe() {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	go ns.Start()
	defer ns.WaitForShutdown()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		panic("nats server not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()

	got := make(chan string)
	for _, lane := range []string{"", "blue"} {
		sub, err := snats.LaneSubscribe(nc, "orders.created", "billing", lane, func(ctx context.Context, msg *nats.Msg) {
			in, _ := metadata.BaggageValue(ctx, route.LaneKey)
			got <- fmt.Sprintf("consumer %q: %s (lane %q)", lane, msg.Data, in)
		})
		if err != nil {
			panic(err)
		}
		defer sub.Unsubscribe()
	}

	for _, m := range []struct{ lane, data string }{{"", "order 1"}, {"blue", "order 2"}, {"green", "order 3"}} {
		ctx := context.Background()
		if m.lane != "" {
			ctx, _ = metadata.SetBaggage(ctx, route.LaneKey, m.lane)
		}
		if err := snats.Publish(ctx, nc, "orders.created", []byte(m.data)); err != nil {
			panic(err)
		}
		fmt.Println(<-got)
	}
	// Output:
	// consumer "": order 1 (lane "")
	// consumer "blue": order 2 (lane "blue")
	// consumer "": order 3 (lane "green")
}
