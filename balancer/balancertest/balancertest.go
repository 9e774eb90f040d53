// Package balancertest checks balancer implementations: Suite runs the
// checks every balancer.Builder must pass, and Clock is a fake clock for
// balancers that keep time, so their tests never sleep.
//
//	func TestSuite(t *testing.T) {
//		balancertest.Suite(t, wrr.Builder{})
//	}
package balancertest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/balancer"
	"github.com/sluicerpc/sluice/discovery"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
)

// Instances returns n instances of service "test" with addresses
// 10.0.0.1:8080, 10.0.0.2:8080, ... and the default weight.
func Instances(n int) []discovery.Instance { return instances(n, 8080) }

// instances returns n instances listening on port. Suite gives each check
// its own port, so that state a Builder keeps per address (latency stats,
// ejections) does not leak from one check into the next.
func instances(n, port int) []discovery.Instance {
	ins := make([]discovery.Instance, n)
	for i := range ins {
		ins[i] = discovery.Instance{Service: "test", Addr: fmt.Sprintf("10.0.%d.%d:%d", (i+1)/256, (i+1)%256, port)}
	}
	return ins
}

// Suite checks the behaviour every Builder must have:
//   - a picker over no instances fails with balancer.ErrNoInstance;
//   - a picker over one instance always picks it;
//   - every picked instance points into the set, and every instance of an
//     equal-weight set is picked sooner or later;
//   - Build leaves its input unchanged;
//   - Pick, Done and Build are safe to call concurrently (run with -race).
//
// Done, when a picker returns one, is always called, sometimes with an
// error, so wrappers that eject failing instances are exercised too.
func Suite(t *testing.T, b balancer.Builder) {
	t.Helper()
	ctx := context.Background()
	infos := []balancer.PickInfo{
		{Ctx: ctx, Service: "test", Method: "Get"},
		{}, // a zero PickInfo, as some callers send
	}

	t.Run("Empty", func(t *testing.T) {
		for _, ins := range [][]discovery.Instance{nil, {}} {
			for _, info := range infos {
				res, err := b.Build(ins).Pick(info)
				if !errors.Is(err, balancer.ErrNoInstance) {
					t.Fatalf("Pick over %#v: err = %v, want ErrNoInstance", ins, err)
				}
				if status.Code(err) != codes.Unavailable {
					t.Fatalf("Pick over %#v: code = %v, want Unavailable", ins, status.Code(err))
				}
				if res.Instance != nil {
					t.Fatalf("Pick over %#v returned %v with an error", ins, res.Instance)
				}
			}
		}
	})

	t.Run("Single", func(t *testing.T) {
		ins := instances(1, 9001)
		p := b.Build(ins)
		for i := 0; i < 100; i++ {
			res := pick(t, p, infos[i%2])
			if res.Instance.Addr != ins[0].Addr {
				t.Fatalf("pick %d: got %s, want %s", i, res.Instance.Addr, ins[0].Addr)
			}
			done(res, i%10 == 9)
		}
	})

	t.Run("EveryInstance", func(t *testing.T) {
		ins := instances(10, 9002)
		p := b.Build(ins)
		seen := map[string]bool{}
		for i := 0; i < 10000 && len(seen) < len(ins); i++ {
			res := pick(t, p, infos[i%2])
			if !member(ins, res.Instance) {
				t.Fatalf("picked %+v, not in the set", *res.Instance)
			}
			seen[res.Instance.Addr] = true
			done(res, false)
		}
		if len(seen) != len(ins) {
			t.Fatalf("10000 picks reached %d of %d instances", len(seen), len(ins))
		}
	})

	t.Run("Weighted", func(t *testing.T) {
		ins := instances(3, 9003)
		ins[0].Weight, ins[1].Weight, ins[2].Weight = 1, 50, 1000
		p := b.Build(ins)
		for i := 0; i < 1000; i++ {
			res := pick(t, p, infos[0])
			if !member(ins, res.Instance) {
				t.Fatalf("picked %+v, not in the set", *res.Instance)
			}
			done(res, false)
		}
	})

	t.Run("InputUnchanged", func(t *testing.T) {
		ins := instances(5, 9004)
		ins[1].Weight, ins[2].Labels = 7, map[string]string{"version": "v2"}
		want := instances(5, 9004)
		want[1].Weight, want[2].Labels = 7, map[string]string{"version": "v2"}
		p := b.Build(ins)
		for i := 0; i < 100; i++ {
			done(pick(t, p, infos[0]), i%3 == 0)
		}
		if !reflect.DeepEqual(ins, want) {
			t.Fatalf("Build or Pick changed the instances:\n got %+v\nwant %+v", ins, want)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		ins := instances(8, 9005)
		var cur sync.Map // "p" -> balancer.Picker
		cur.Store("p", b.Build(ins))
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 2000; i++ {
					v, _ := cur.Load("p")
					res, err := v.(balancer.Picker).Pick(infos[i%2])
					if err != nil {
						errs <- err
						return
					}
					if !member(ins, res.Instance) {
						errs <- fmt.Errorf("picked %+v, not in the set", *res.Instance)
						return
					}
					done(res, (i+g)%7 == 0)
				}
			}()
		}
		wg.Add(1)
		go func() { // new snapshots while calls run
			defer wg.Done()
			for i := 0; i < 50; i++ {
				cur.Store("p", b.Build(ins[:4+i%5]))
			}
		}()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
}

var errUnavailable = status.Err(codes.Unavailable, "balancertest: injected failure")

func pick(t *testing.T, p balancer.Picker, info balancer.PickInfo) balancer.PickResult {
	t.Helper()
	res, err := p.Pick(info)
	if err != nil {
		t.Fatalf("Pick: %v", err)
	}
	if res.Instance == nil {
		t.Fatal("Pick returned no instance and no error")
	}
	return res
}

func done(res balancer.PickResult, fail bool) {
	if res.Done == nil {
		return
	}
	di := balancer.DoneInfo{Latency: time.Millisecond}
	if fail {
		di.Err = errUnavailable
	}
	res.Done(di)
}

func member(ins []discovery.Instance, in *discovery.Instance) bool {
	for i := range ins {
		if ins[i].Addr == in.Addr {
			return true
		}
	}
	return false
}
