package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicerpc/sluice/bench/internal/rawtcp"
	"github.com/sluicerpc/sluice/internal/loadgen"
)

func TestRatioLines(t *testing.T) {
	sluice := loadgen.Result{Name: "sluice", QPS: 90000, P99: 3 * time.Millisecond, CPUPerCall: 20 * time.Microsecond}
	grpc := loadgen.Result{Name: "grpc", QPS: 60000, P99: 4 * time.Millisecond, CPUPerCall: 32 * time.Microsecond}
	raw := loadgen.Result{Name: "rawtcp", QPS: 400000}
	sg := loadgen.Result{Name: "sluice-grpc", QPS: 57000}
	gov := loadgen.Result{Name: "sluice+governance", QPS: 86400}
	obs := loadgen.Result{Name: "sluice+observability", QPS: 85500}
	tests := []struct {
		name string
		rs   []loadgen.Result
		want []string
	}{
		{"all", []loadgen.Result{grpc, raw, sluice, sg, gov, obs}, []string{
			"ratio sluice-grpc/grpc qps=0.95",
			"ratio sluice/grpc qps=1.50 p99=0.75 cpu=0.62",
			"ratio sluice/rawtcp qps=0.23",
			"ratio sluice+governance/sluice qps=0.96",
			"ratio sluice+observability/sluice qps=0.95",
		}},
		{"no sluice", []loadgen.Result{grpc, raw}, []string{
			"ratio sluice-grpc/grpc qps=n/a",
			"ratio sluice/grpc qps=n/a p99=n/a cpu=n/a",
			"ratio sluice/rawtcp qps=n/a",
			"ratio sluice+governance/sluice qps=n/a",
			"ratio sluice+observability/sluice qps=n/a",
		}},
		{"no grpc", []loadgen.Result{sluice, raw}, []string{
			"ratio sluice-grpc/grpc qps=n/a",
			"ratio sluice/grpc qps=n/a p99=n/a cpu=n/a",
			"ratio sluice/rawtcp qps=0.23",
			"ratio sluice+governance/sluice qps=n/a",
			"ratio sluice+observability/sluice qps=n/a",
		}},
		{"zero denominator", []loadgen.Result{sluice, {Name: "grpc"}}, []string{
			"ratio sluice-grpc/grpc qps=n/a",
			"ratio sluice/grpc qps=n/a p99=n/a cpu=n/a",
			"ratio sluice/rawtcp qps=n/a",
			"ratio sluice+governance/sluice qps=n/a",
			"ratio sluice+observability/sluice qps=n/a",
		}},
		{"empty", nil, []string{
			"ratio sluice-grpc/grpc qps=n/a",
			"ratio sluice/grpc qps=n/a p99=n/a cpu=n/a",
			"ratio sluice/rawtcp qps=n/a",
			"ratio sluice+governance/sluice qps=n/a",
			"ratio sluice+observability/sluice qps=n/a",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ratioLines([][]loadgen.Result{tt.rs}); !slices.Equal(got, tt.want) {
				t.Errorf("ratioLines =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestRatioLinesRounds: with several rounds a ratio is the median of the
// rounds' own ratios, not the ratio of the rows' medians; a round that
// lacks a row does not count.
func TestRatioLinesRounds(t *testing.T) {
	round := func(s, obs float64) []loadgen.Result {
		return []loadgen.Result{{Name: "sluice", QPS: s}, {Name: "sluice+observability", QPS: obs}}
	}
	for _, tt := range []struct {
		name   string
		rounds [][]loadgen.Result
		want   string
	}{
		// The rows' medians (100 and 60) would give 0.60.
		{"odd", [][]loadgen.Result{round(100, 60), round(200, 190), round(50, 48)}, "0.95"},
		{"even: the middle two's mean", [][]loadgen.Result{round(100, 60), round(200, 190), round(50, 48), round(100, 80)}, "0.88"},
		{"a round without the row", [][]loadgen.Result{round(100, 90), {{Name: "sluice", QPS: 100}}, round(100, 94)}, "0.92"},
		{"no round with both", [][]loadgen.Result{{{Name: "sluice", QPS: 100}}, {{Name: "sluice+observability", QPS: 90}}}, "n/a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := ratioLines(tt.rounds)
			if want := "ratio sluice+observability/sluice qps=" + tt.want; got[len(got)-1] != want {
				t.Errorf("%q, want %q", got[len(got)-1], want)
			}
		})
	}
}

func TestSpreadLines(t *testing.T) {
	round := func(s, gov, obs float64) []loadgen.Result {
		return []loadgen.Result{{Name: "sluice", QPS: s}, {Name: "sluice+governance", QPS: gov}, {Name: "sluice+observability", QPS: obs}}
	}
	// Observability's ratios: 0.5, 0.8, 0.9, 0.95, 1.0; governance ran in
	// two rounds only.
	rounds := [][]loadgen.Result{
		round(100, 90, 95), round(200, 0, 100), round(100, 96, 80),
		{{Name: "sluice", QPS: 100}, {Name: "sluice+observability", QPS: 100}},
		{{Name: "sluice", QPS: 100}, {Name: "sluice+observability", QPS: 90}},
	}
	got := spreadLines(rounds)
	want := []string{
		"rpcbench: ratio sluice+governance/sluice qps over 3 rounds: min 0.00, quartiles 0.45 0.90 0.93, max 0.96",
		"rpcbench: ratio sluice+observability/sluice qps over 5 rounds: min 0.50, quartiles 0.80 0.90 0.95, max 1.00",
	}
	if !slices.Equal(got, want) {
		t.Errorf("spreadLines =\n%q\nwant\n%q", got, want)
	}
	if got := spreadLines(rounds[:2]); len(got) != 0 {
		t.Errorf("two rounds: %q, want no spread lines", got)
	}
}

func TestQuantile(t *testing.T) {
	xs := []float64{1, 2, 4, 8}
	for p, want := range map[float64]float64{0: 1, 0.5: 3, 1: 8, 0.25: 1.75, 0.75: 5} {
		if got := quantile(xs, p); got != want {
			t.Errorf("quantile(%v, %v) = %v, want %v", xs, p, got, want)
		}
	}
}

func TestSelectImpls(t *testing.T) {
	all := []loadgen.Impl{{Name: "sluice"}, {Name: "grpc"}, {Name: "rawtcp"}}
	names := func(is []loadgen.Impl) string {
		var s []string
		for _, i := range is {
			s = append(s, i.Name)
		}
		return strings.Join(s, ",")
	}
	for list, want := range map[string]string{
		"all": "sluice,grpc,rawtcp", "rawtcp,grpc": "rawtcp,grpc", " grpc , ": "grpc", "grpc,grpc": "grpc",
	} {
		got, err := selectImpls(all, list)
		if err != nil || names(got) != want {
			t.Errorf("selectImpls(%q) = %q, %v; want %q", list, names(got), err, want)
		}
	}
	for _, bad := range []string{"nope", "grpc,nope", "", ","} {
		if _, err := selectImpls(all, bad); err == nil {
			t.Errorf("selectImpls(%q) succeeded, want error", bad)
		}
	}
}

func TestFailingImplIsSkipped(t *testing.T) {
	defer goleak.VerifyNone(t)
	notWired := loadgen.Impl{Name: "sluice", Start: func([]byte) (func(context.Context) error, func(), error) {
		return nil, nil, errors.New("sluice: not wired yet")
	}}
	var stdout, stderr bytes.Buffer
	jsonPath := filepath.Join(t.TempDir(), "out.json")
	args := []string{"-c", "4", "-size", "64", "-d", "100ms", "-warmup", "0", "-json", jsonPath}
	if err := run(args, []loadgen.Impl{notWired, rawtcp.Impl()}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "skipping sluice") || !strings.Contains(stderr.String(), "not wired yet") {
		t.Errorf("stderr lacks the skip note:\n%s", stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if n := len(lines); n < 4 || lines[n-4] != "ratio sluice/grpc qps=n/a p99=n/a cpu=n/a" || lines[n-3] != "ratio sluice/rawtcp qps=n/a" ||
		lines[n-2] != "ratio sluice+governance/sluice qps=n/a" || lines[n-1] != "ratio sluice+observability/sluice qps=n/a" {
		t.Errorf("stdout does not end with the n/a ratio lines:\n%s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "rawtcp") {
		t.Errorf("table lacks the rawtcp row:\n%s", stdout.String())
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Name != "rawtcp" || rep.Results[0].Calls == 0 {
		t.Errorf("JSON results = %+v, want one rawtcp row with calls", rep.Results)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-c", "0"}, {"-size", "-1"}, {"-d", "0"}, {"-warmup", "-1s"}, {"-impl", "nope"}, {"extra"}} {
		var out bytes.Buffer
		if err := run(args, impls(), &out, &out); err == nil {
			t.Errorf("run(%q) succeeded, want error", args)
		}
	}
}

func TestMedianQPS(t *testing.T) {
	rs := []loadgen.Result{{Name: "a", QPS: 30}, {Name: "b", QPS: 10}, {Name: "c", QPS: 20}, {Name: "d", QPS: 40}}
	if got := medianQPS(rs[:3]); got.Name != "c" {
		t.Errorf("median of 30, 10, 20 = %s, want c (20)", got.Name)
	}
	if got := medianQPS(rs); got.Name != "c" {
		t.Errorf("median of 30, 10, 20, 40 = %s, want c (20, the lower middle)", got.Name)
	}
	if rs[0].Name != "a" {
		t.Error("medianQPS reordered its argument")
	}
}
