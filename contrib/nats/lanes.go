package nats

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sluicerpc/sluice/metadata"
	"github.com/sluicerpc/sluice/route"
)

// LaneSubscribe subscribes a member of a lane-aware consumer group: the
// messaging side of route's full-link gray lanes. Messages carry their lane
// in the baggage member route.LaneKey ("sluice-lane"), as Publish puts it
// there from the publisher's context; publishers need nothing else. A
// member with lane "" is a base consumer; any other lane makes a lane
// consumer, as an instance labelled for that lane would be. Within one
// queue on one subject:
//
//   - a lane consumer handles the messages of its lane, and drops all
//     others;
//   - a base consumer handles the messages in no lane, and those of lanes
//     that have no live consumer in the queue (the PERMISSIVE fallback); it
//     drops those of lanes that do.
//
// So every message is handled once, by its lane's consumers when there are
// any, else by the base consumers, as route.Select sends calls to
// instances. Each group subscribes to subject in a NATS queue group of its
// own, receives every message and drops what is not its to handle; members
// of one group share its messages as a queue group does. The base group's
// NATS queue group is queue itself, so base consumers share a group with
// plain QueueSubscribe members of queue (which, knowing no lanes, also take
// lane messages); lane L's is queue + "@" + L, which no other queue's can
// be. The lane of a message is its baggage member as it is: a lane no Lane
// document defines, or one no consumer can be in, goes to the base
// consumers; lanes here are always PERMISSIVE, since no route.Table is
// consulted.
//
// Base consumers learn which lanes are live from the lane consumers
// themselves, on the subject "_SLUICE.LANES." + queue. A lane consumer says
// hello when it subscribes, again every heartbeat (WithHeartbeat, default
// 1s), and goodbye on Unsubscribe; a base consumer holds a lane live until
// three of the lane consumer's own heartbeats pass without a hello from any
// of its members, timed on the base consumer's own clock (WithClock), so
// machines' clocks need not agree. A base consumer starting asks the lane consumers present to say hello, and holds the
// messages it receives for a short while (WithProbe, default 250ms) before
// deciding on them, so it does not take the messages of lanes that were
// live before it. Announcements name the subject, so groups that share a
// queue name on other subjects do not count; a lane group and its base
// group must subscribe with the same subject and queue strings.
//
// A base consumer reads presence and messages from one connection in the
// order the server sent them, so on one server a lane consumer's start and
// stop cost at most a duplicate, never a loss:
//
//   - a lane consumer subscribes before its first hello: a message the
//     server handles between the two reaches both groups and both handle it
//     (a duplicate, never a loss);
//   - on Unsubscribe it says goodbye before it stops taking messages, so
//     again a message in between is handled twice, never dropped by both;
//     the messages it has already received are still handled, as with
//     nats.Subscription.Drain.
//
// In a cluster, a message routed through another server may overtake an
// announcement and add to these windows. A lane consumer that goes without
// a goodbye (a crash, a closed or drained connection: call Unsubscribe
// first) leaves its lane's messages unhandled until three heartbeats have
// passed, when the base consumers take them again; a lane consumer whose
// answer to a probe comes after the wait has its lane's messages handled
// by that base consumer too until the answer arrives. Core NATS delivers
// at most once anyway: a handler that must see every message exactly once
// needs JetStream.
//
// Handlers are called as nats.go calls a subscription's: one message at a
// time, with Extract's context, so the lane stays in the baggage of the
// calls the handler makes. A base consumer's messages wait in a buffer of
// WithPending messages (default 65536) until its handler takes them;
// beyond that, NATS drops them as a slow consumer's.
func LaneSubscribe(nc *nats.Conn, subject, queue, lane string, h Handler, opts ...LaneOption) (*LaneSubscription, error) {
	cfg := defaultLaneOptions()
	for _, o := range opts {
		o(&cfg)
	}
	if err := checkLane(queue, lane, cfg); err != nil {
		return nil, err
	}
	g := group{
		nc: nc, subject: subject, queue: queue, lane: lane, h: h, cfg: cfg,
		presence: presenceSubject(queue), member: rand.Text(),
		done: make(chan struct{}),
	}
	if lane == "" {
		return subscribeBase(&g)
	}
	return subscribeLane(&g)
}

// LaneSubscription is one member of a lane-aware consumer group
// (LaneSubscribe).
type LaneSubscription struct {
	lane string
	stop func() error
	once sync.Once
	err  error
}

// Lane returns the member's lane; "" for a base consumer.
func (s *LaneSubscription) Lane() string { return s.lane }

// Unsubscribe stops the member: a lane consumer says goodbye first, so the
// base consumers take its lane's messages again (unless other members of
// the lane are live). The messages the member has already received are
// still handled. Further calls return the first call's error.
func (s *LaneSubscription) Unsubscribe() error {
	s.once.Do(func() { s.err = s.stop() })
	return s.err
}

// LaneOption configures LaneSubscribe.
type LaneOption func(*laneOptions)

type laneOptions struct {
	heartbeat time.Duration
	probe     time.Duration
	pending   int
	clock     Clock
}

func defaultLaneOptions() laneOptions {
	return laneOptions{
		heartbeat: time.Second,
		probe:     250 * time.Millisecond,
		pending:   65536,
		clock:     systemClock{},
	}
}

// WithHeartbeat sets how often a lane consumer says hello (default 1s);
// base consumers hold its lane live for three of them. It must be above 0.
func WithHeartbeat(d time.Duration) LaneOption { return func(o *laneOptions) { o.heartbeat = d } }

// WithProbe sets how long a starting base consumer waits for the lane
// consumers present to say hello before it decides on messages (default
// 250ms); 0 decides at once, taking the messages of live lanes until it
// hears from them. It must not be negative.
func WithProbe(d time.Duration) LaneOption { return func(o *laneOptions) { o.probe = d } }

// WithPending sets how many received messages a base consumer holds for
// its handler before NATS drops further ones as a slow consumer's (default
// 65536). It must be above 0.
func WithPending(n int) LaneOption { return func(o *laneOptions) { o.pending = n } }

// WithClock sets the clock base consumers time lanes' liveness with
// (default the system clock). Heartbeats and the probe wait run on real
// timers.
func WithClock(c Clock) LaneOption { return func(o *laneOptions) { o.clock = c } }

// Clock tells the time; tests pass a fake one.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// ErrLaneConfig reports a LaneSubscribe call with a bad queue, lane or
// option.
var ErrLaneConfig = errors.New("nats: bad lane subscription")

func checkLane(queue, lane string, o laneOptions) error {
	switch {
	case !laneName(queue) || strings.Contains(queue, ".."):
		return fmt.Errorf("%w: queue %q: want letters, digits, '-', '_' and single '.', starting and ending with a letter or digit", ErrLaneConfig, queue)
	case lane != "" && !laneName(lane):
		return fmt.Errorf("%w: lane %q: want a route Lane name: letters, digits, '-', '_' and '.', starting and ending with a letter or digit", ErrLaneConfig, lane)
	case o.heartbeat <= 0:
		return fmt.Errorf("%w: heartbeat %v: want above 0", ErrLaneConfig, o.heartbeat)
	case o.probe < 0:
		return fmt.Errorf("%w: probe %v: want 0 or above", ErrLaneConfig, o.probe)
	case o.pending <= 0:
		return fmt.Errorf("%w: pending %d: want above 0", ErrLaneConfig, o.pending)
	case o.clock == nil:
		return fmt.Errorf("%w: nil clock", ErrLaneConfig)
	}
	return nil
}

// laneName reports whether s is a name route accepts for a Lane.
func laneName(s string) bool {
	if s == "" || !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// presencePrefix starts the subjects lane groups announce themselves on.
const presencePrefix = "_SLUICE.LANES."

func presenceSubject(queue string) string { return presencePrefix + queue }

// Presence operations.
const (
	opHello = "hello" // a lane member is live
	opBye   = "bye"   // a lane member stops
	opProbe = "probe" // a base member asks lane members to say hello
)

// announcement is a presence message, JSON-encoded.
type announcement struct {
	Op      string `json:"op"`
	Subject string `json:"subject"`
	Lane    string `json:"lane,omitempty"`
	Member  string `json:"member,omitempty"`
	// Heartbeat is the lane member's heartbeat, as time.Duration.String.
	Heartbeat string `json:"heartbeat,omitempty"`
}

// group is what both kinds of member know.
type group struct {
	nc                             *nats.Conn
	subject, queue, lane, presence string
	member                         string
	h                              Handler
	cfg                            laneOptions
	done                           chan struct{}
}

func (g *group) publish(a announcement) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return g.nc.Publish(g.presence, b)
}

// ---- lane consumers

type laneMember struct {
	*group
	mu     sync.Mutex // orders hellos before the goodbye
	gone   bool
	data   *nats.Subscription
	probes *nats.Subscription
}

func subscribeLane(g *group) (*LaneSubscription, error) {
	m := &laneMember{group: g}
	closed := g.nc.StatusChanged(nats.CLOSED)
	fail := func(err error) (*LaneSubscription, error) {
		if m.data != nil {
			m.announce(opBye) // in case the hello went out
			m.data.Unsubscribe()
		}
		if m.probes != nil {
			m.probes.Unsubscribe()
		}
		g.nc.RemoveStatusListener(closed)
		return nil, err
	}
	var err error
	// Subscribe before the first hello: a message in between is handled
	// twice rather than by no one.
	m.data, err = g.nc.QueueSubscribe(g.subject, g.queue+"@"+g.lane, func(msg *nats.Msg) {
		ctx := Extract(context.Background(), msg)
		if lane, _ := metadata.BaggageValue(ctx, route.LaneKey); lane == g.lane {
			g.h(ctx, msg)
		}
	})
	if err != nil {
		return fail(err)
	}
	m.probes, err = g.nc.Subscribe(g.presence, func(msg *nats.Msg) {
		var a announcement
		if json.Unmarshal(msg.Data, &a) == nil && a.Op == opProbe && a.Subject == g.subject {
			m.hello()
		}
	})
	if err != nil {
		return fail(err)
	}
	if err := m.hello(); err != nil {
		return fail(err)
	}
	if err := g.nc.Flush(); err != nil {
		return fail(err)
	}
	go m.beat(closed)
	return &LaneSubscription{lane: g.lane, stop: func() error {
		close(g.done)
		g.nc.RemoveStatusListener(closed)
		return m.stop()
	}}, nil
}

// beat says hello every heartbeat until the member stops or its connection
// closes.
func (m *laneMember) beat(closed <-chan nats.Status) {
	t := time.NewTicker(m.cfg.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			m.hello()
		case <-m.done:
			return
		case <-closed:
			return
		}
	}
}

func (m *laneMember) hello() error { return m.announce(opHello) }

// announce publishes op for the member; nothing after its goodbye.
func (m *laneMember) announce(op string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return nil
	}
	m.gone = op == opBye
	return m.publish(announcement{Op: op, Subject: m.subject, Lane: m.lane, Member: m.member, Heartbeat: m.cfg.heartbeat.String()})
}

// stop says goodbye, then drains the subscription: the base consumers take
// the lane's messages from the goodbye on, and this member handles those
// it received before.
func (m *laneMember) stop() error {
	err := m.announce(opBye)
	errs := []error{err, m.data.Drain(), m.probes.Unsubscribe()}
	if err == nil { // the goodbye went out: make sure it arrived
		errs = append(errs, m.nc.Flush())
	}
	return errors.Join(errs...)
}

// ---- base consumers

type baseMember struct {
	*group
	msgs           chan *nats.Msg // presence and data, in the order received
	data, presence *nats.Subscription
	lanes          map[string]map[string]time.Time // lane -> member -> end of its liveness; loop's only
}

func subscribeBase(g *group) (*LaneSubscription, error) {
	b := &baseMember{group: g, msgs: make(chan *nats.Msg, g.cfg.pending), lanes: map[string]map[string]time.Time{}}
	closed := g.nc.StatusChanged(nats.CLOSED)
	fail := func(err error) (*LaneSubscription, error) {
		for _, s := range []*nats.Subscription{b.presence, b.data} {
			if s != nil {
				s.Unsubscribe()
			}
		}
		g.nc.RemoveStatusListener(closed)
		return nil, err
	}
	// One channel for both subscriptions keeps presence and messages in the
	// order the server sent them.
	var err error
	if b.presence, err = g.nc.ChanSubscribe(g.presence, b.msgs); err != nil {
		return fail(err)
	}
	if b.data, err = g.nc.ChanQueueSubscribe(g.subject, g.queue, b.msgs); err != nil {
		return fail(err)
	}
	if err := g.publish(announcement{Op: opProbe, Subject: g.subject}); err != nil {
		return fail(err)
	}
	if err := g.nc.Flush(); err != nil {
		return fail(err)
	}
	go b.loop(closed)
	return &LaneSubscription{stop: func() error {
		err := errors.Join(b.data.Unsubscribe(), b.presence.Unsubscribe())
		close(g.done) // nats.go adds nothing to msgs after Unsubscribe
		g.nc.RemoveStatusListener(closed)
		return err
	}}, nil
}

// loop applies presence and handles messages in the order received; until
// the probe wait ends it only holds messages.
func (b *baseMember) loop(closed <-chan nats.Status) {
	var held []*nats.Msg
	waiting := true
	probe := time.NewTimer(b.cfg.probe)
	defer probe.Stop()
	take := func(msg *nats.Msg) {
		switch {
		case msg.Sub == b.presence:
			b.apply(msg)
		case waiting:
			held = append(held, msg)
		default:
			b.deliver(msg)
		}
	}
	release := func() {
		waiting = false
		for _, msg := range held {
			b.deliver(msg)
		}
		held = nil
	}
	for {
		select {
		case msg := <-b.msgs:
			take(msg)
		case <-probe.C:
			release()
		case <-b.done: // unsubscribed: handle what was received
			release()
			for {
				select {
				case msg := <-b.msgs:
					take(msg)
				default:
					return
				}
			}
		case <-closed:
			return
		}
	}
}

// apply records a lane member's hello or goodbye.
func (b *baseMember) apply(msg *nats.Msg) {
	var a announcement
	if json.Unmarshal(msg.Data, &a) != nil || a.Subject != b.subject || a.Lane == "" || a.Member == "" {
		return
	}
	switch a.Op {
	case opHello:
		hb, err := time.ParseDuration(a.Heartbeat)
		if err != nil || hb <= 0 {
			hb = defaultLaneOptions().heartbeat
		}
		ms := b.lanes[a.Lane]
		if ms == nil {
			ms = map[string]time.Time{}
			b.lanes[a.Lane] = ms
		}
		ms[a.Member] = b.cfg.clock.Now().Add(3 * hb)
	case opBye:
		if ms := b.lanes[a.Lane]; ms != nil {
			delete(ms, a.Member)
			if len(ms) == 0 {
				delete(b.lanes, a.Lane)
			}
		}
	}
}

// live reports whether a member of lane has said hello within its last
// three heartbeats, forgetting those that have not.
func (b *baseMember) live(lane string) bool {
	ms := b.lanes[lane]
	if ms == nil {
		return false
	}
	now := b.cfg.clock.Now()
	for id, end := range ms {
		if now.Before(end) {
			return true
		}
		delete(ms, id)
	}
	delete(b.lanes, lane)
	return false
}

// deliver hands msg to the handler unless its lane has live consumers.
func (b *baseMember) deliver(msg *nats.Msg) {
	if strings.HasPrefix(msg.Subject, presencePrefix) {
		return // a wildcard subject caught another group's presence
	}
	ctx := Extract(context.Background(), msg)
	if lane, _ := metadata.BaggageValue(ctx, route.LaneKey); lane != "" && b.live(lane) {
		return
	}
	b.h(ctx, msg)
}
