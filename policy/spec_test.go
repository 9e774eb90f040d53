package policy_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicerpc/sluice/config"
	"github.com/sluicerpc/sluice/policy"
)

const svc = "sluice.examples.echo.v1.EchoService"

func decode(t *testing.T, yaml string) (*policy.TrafficPolicy, error) {
	t.Helper()
	docs, err := config.Parse([]byte(yaml))
	if err != nil {
		return nil, err
	}
	spec, err := config.Decode(docs[0])
	if err != nil {
		return nil, err
	}
	return spec.(*policy.TrafficPolicy), nil
}

func TestDecodeFullDocument(t *testing.T) {
	p, err := decode(t, `
apiVersion: sluice/v1
kind: TrafficPolicy
metadata: {name: echo}
spec:
  service: sluice.examples.echo.v1.EchoService
  timeout: 2s
  retries:
    maxAttempts: 4
    initialBackoff: 10ms
    codes: [UNAVAILABLE, resource_exhausted]
    budget: {ratio: 0.2}
  breaker:
    mode: sre
    k: 2
    perInstance: false
  fallback: {cache: true, ttl: 30s}
  methods:
    Echo:
      idempotent: true
      hedging: {delay: 20ms, maxAttempts: 3}
      timeout: 500ms
  limits:
    methods: {Echo: {qps: 100, burst: 10}}
    callers: {frontend: {qps: 5}}
    maxConcurrency: 50
    shed: {}
`)
	if err != nil {
		t.Fatal(err)
	}
	if p.Service != svc || time.Duration(p.Timeout) != 2*time.Second || p.Retries.MaxAttempts != 4 ||
		p.Retries.Budget.Ratio != 0.2 || p.Breaker.Mode != "sre" || *p.Breaker.PerInstance {
		t.Errorf("service-wide fields decoded wrong: %+v", p)
	}
	m := p.Methods["Echo"]
	if m.Hedging == nil || time.Duration(m.Hedging.Delay) != 20*time.Millisecond || m.Hedging.MaxAttempts != 3 || !*m.Idempotent {
		t.Errorf("method fields decoded wrong: %+v", m)
	}
	if p.Limits.Methods["Echo"].QPS != 100 || p.Limits.MaxConcurrency != 50 || p.Limits.Shed == nil {
		t.Errorf("limits decoded wrong: %+v", p.Limits)
	}
	// The method's hedging replaces the service-wide retries.
	tb, err := policy.NewTable([]policy.TrafficPolicy{*p})
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	if got := tb.Policies(); len(got) != 1 || got[0].Service != svc {
		t.Errorf("Policies() = %+v", got)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name, spec, path, reason string
	}{
		{"no service", `timeout: 1s`, "spec.service", "required"},
		{"service with slash", `service: a/b`, "spec.service", "protobuf service name"},
		{"negative timeout", `service: a.S
timeout: -1s`, "spec.timeout", "negative"},
		{"bad code", `service: a.S
retries: {codes: [NOPE]}`, "spec.retries.codes[0]", "not a status code"},
		{"OK as failure", `service: a.S
breaker: {failureCodes: [OK]}`, "spec.breaker.failureCodes[0]", "OK is not a failure"},
		{"multiplier", `service: a.S
retries: {multiplier: 0.5}`, "spec.retries.multiplier", "at least 1"},
		{"backoff order", `service: a.S
retries: {initialBackoff: 2s, maxBackoff: 1s}`, "spec.retries.maxBackoff", "at least initialBackoff"},
		{"jitter", `service: a.S
retries: {jitter: 2}`, "spec.retries.jitter", "from 0 to 1"},
		{"both retries and hedging", `service: a.S
idempotent: true
retries: {}
hedging: {}`, "spec.hedging", "not both"},
		{"hedging needs idempotent", `service: a.S
methods: {Get: {hedging: {delay: 5ms}}}`, "spec.methods.Get.hedging", "idempotent"},
		{"hedging attempts", `service: a.S
idempotent: true
hedging: {maxAttempts: 9}`, "spec.hedging.maxAttempts", "from 2 to 5"},
		{"breaker mode", `service: a.S
breaker: {mode: fancy}`, "spec.breaker.mode", "classic or sre"},
		{"breaker error rate", `service: a.S
breaker: {errorRate: 2}`, "spec.breaker", "ErrorRate"},
		{"perInstance per method", `service: a.S
methods: {Get: {breaker: {perInstance: true}}}`, "spec.methods.Get.breaker.perInstance", "service-wide only"},
		{"empty fallback", `service: a.S
fallback: {ttl: 1s}`, "spec.fallback", "neither cache nor func"},
		{"bad method name", `service: a.S
methods: {a.b: {timeout: 1s}}`, "spec.methods.a.b", "method name"},
		{"zero qps", `service: a.S
limits: {methods: {Get: {qps: 0}}}`, "spec.limits.methods.Get", "qps must be above 0"},
		{"negative concurrency", `service: a.S
limits: {maxConcurrency: -1}`, "spec.limits.maxConcurrency", "negative"},
		{"unknown field", `service: a.S
retry: {maxAttempts: 2}`, "spec.retry", "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := "apiVersion: sluice/v1\nkind: TrafficPolicy\nmetadata: {name: p}\nspec:\n  " + strings.ReplaceAll(tc.spec, "\n", "\n  ") + "\n"
			_, err := decode(t, doc)
			if err == nil {
				t.Fatalf("accepted:\n%s", doc)
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("error %v does not match config.ErrInvalid", err)
			}
			var ie *config.InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T is not an InvalidError: %v", err, err)
			}
			for _, f := range ie.Fields {
				if f.Path == tc.path && strings.Contains(f.Reason, tc.reason) {
					return
				}
			}
			t.Errorf("no field error %s: ...%s...; got %v", tc.path, tc.reason, err)
		})
	}
}

func TestUpdateRejectsAndKeeps(t *testing.T) {
	good := policy.TrafficPolicy{Service: svc, Rules: policy.Rules{Timeout: config.Duration(time.Second)}}
	tb, err := policy.NewTable([]policy.TrafficPolicy{good})
	if err != nil {
		t.Fatal(err)
	}
	bad := policy.TrafficPolicy{Service: "a.S", Rules: policy.Rules{Timeout: config.Duration(-time.Second)}}
	if err := tb.Update([]policy.TrafficPolicy{bad}); err == nil || !strings.Contains(err.Error(), "spec.timeout") {
		t.Fatalf("Update(bad) = %v, want an error naming spec.timeout", err)
	}
	if err := tb.Update([]policy.TrafficPolicy{good, good}); err == nil || !strings.Contains(err.Error(), "two policies") {
		t.Fatalf("Update(dup) = %v, want a duplicate error", err)
	}
	if got := tb.Policies(); len(got) != 1 || got[0].Service != svc || time.Duration(got[0].Timeout) != time.Second {
		t.Errorf("after rejected updates the table holds %+v, want the good policy", got)
	}
}
