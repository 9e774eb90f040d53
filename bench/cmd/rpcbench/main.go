// Command rpcbench runs several RPC implementations one after another in one
// process, each as a loopback (127.0.0.1) echo server plus client under the
// same payload and concurrency, and prints a comparison table followed by
// the ratio lines:
//
//	go run ./bench/cmd/rpcbench -c 100 -size 1024 -d 10s -warmup 2s
//	go run ./bench/cmd/rpcbench -impl grpc,rawtcp -json results.json
//	go run ./bench/cmd/rpcbench -impl sluice,sluice+governance -rounds 5 -d 3s
//
// Rows: "sluice" (the native protocol), "sluice+governance" (the same with
// breakers, admission and retries on: echoimpl.GovernancePolicy),
// "sluice+observability" (the same with metrics on both sides and tracing
// at 1%),
// "sluice-grpc" (a stock grpc-go client against the Sluice server: its gRPC
// path), "sluice-connect" (a stock connect-go client against it: the
// Connect path), "grpc" (stock grpc-go on both sides) and "rawtcp" (a framework-free echo over one TCP
// connection: the machine's floor). See internal/loadgen/echoimpl.
// Allocations and CPU per call count client and server together.
package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/sluicerpc/sluice/bench/internal/grpcimpl"
	"github.com/sluicerpc/sluice/bench/internal/rawtcp"
	"github.com/sluicerpc/sluice/internal/loadgen"
	"github.com/sluicerpc/sluice/internal/loadgen/echoimpl"
)

// impls lists every row in the order they run.
//
// Registration point: add further rows here ("sluice-grpc",
// "sluice-connect", ...), each a loadgen.Impl that passes
// loadgentest.Check.
func impls() []loadgen.Impl {
	return []loadgen.Impl{
		echoimpl.Impl(),
		echoimpl.GovernanceImpl(),
		echoimpl.ObservabilityImpl(),
		echoimpl.GRPCImpl(),
		echoimpl.ConnectImpl(),
		grpcimpl.Impl(),
		rawtcp.Impl(),
	}
}

func main() {
	if err := run(os.Args[1:], impls(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "rpcbench:", err)
		os.Exit(1)
	}
}

// report is what -json writes.
type report struct {
	Concurrency int              `json:"concurrency"`
	PayloadSize int              `json:"payload_size"`
	Duration    time.Duration    `json:"duration_ns"`
	Warmup      time.Duration    `json:"warmup_ns"`
	GOMAXPROCS  int              `json:"gomaxprocs"`
	GoVersion   string           `json:"go_version"`
	Results     []loadgen.Result `json:"results"`
}

// run parses args, runs the selected implementations of all and prints the
// table and ratio lines to stdout; notes go to stderr.
func run(args []string, all []loadgen.Impl, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rpcbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		conc     = fs.Int("c", 100, "concurrent callers")
		size     = fs.Int("size", 1024, "payload bytes")
		dur      = fs.Duration("d", 10*time.Second, "measured duration per implementation")
		warmup   = fs.Duration("warmup", 2*time.Second, "warmup per implementation, not measured")
		only     = fs.String("impl", "all", "comma-separated implementations to run, or all")
		jsonPath = fs.String("json", "", "also write the results as JSON to this file")
		cpuProf  = fs.String("cpuprofile", "", "write a CPU profile of the measured runs to this file")
		rounds   = fs.Int("rounds", 1, "run the implementations this many times, each round starting one row later; report each row's median-QPS run, and each ratio as the median of the rounds' ratios (from 3 rounds, stderr shows their spread)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	case *conc < 1:
		return fmt.Errorf("-c %d: need at least 1 caller", *conc)
	case *size < 0:
		return fmt.Errorf("-size %d: must be >= 0", *size)
	case *dur <= 0:
		return fmt.Errorf("-d %v: must be > 0", *dur)
	case *warmup < 0:
		return fmt.Errorf("-warmup %v: must be >= 0", *warmup)
	case *rounds < 1:
		return fmt.Errorf("-rounds %d: need at least 1", *rounds)
	}
	selected, err := selectImpls(all, *only)
	if err != nil {
		return err
	}

	cfg := loadgen.Config{Concurrency: *conc, PayloadSize: *size, Duration: *dur, Warmup: *warmup}
	rep := report{
		Concurrency: *conc, PayloadSize: *size, Duration: *dur, Warmup: *warmup,
		GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintf(stdout, "rpcbench: c=%d size=%d d=%v warmup=%v GOMAXPROCS=%d %s\n",
		*conc, *size, *dur, *warmup, rep.GOMAXPROCS, rep.GoVersion)
	runs := map[string][]loadgen.Result{}
	byRound := make([][]loadgen.Result, *rounds)
	for r := 0; r < *rounds; r++ {
		for i := range selected {
			impl := selected[(i+r)%len(selected)]
			fmt.Fprintf(stderr, "rpcbench: running %s...\n", impl.Name)
			res, err := loadgen.Run(impl, cfg)
			if errors.Is(err, loadgen.ErrStart) {
				fmt.Fprintf(stderr, "rpcbench: skipping %s (%v)\n", impl.Name, err)
				continue
			}
			if err != nil {
				return err
			}
			if res.Errors > 0 {
				fmt.Fprintf(stderr, "rpcbench: %s: %d of %d calls failed; first: %s\n",
					res.Name, res.Errors, res.Calls+res.Errors, res.FirstError)
			}
			runs[impl.Name] = append(runs[impl.Name], res)
			byRound[r] = append(byRound[r], res)
			runtime.GC()
		}
	}
	for _, impl := range selected {
		if rs := runs[impl.Name]; len(rs) > 0 {
			rep.Results = append(rep.Results, medianQPS(rs))
		}
	}

	loadgen.PrintTable(stdout, rep.Results)
	for _, line := range ratioLines(byRound) {
		fmt.Fprintln(stdout, line)
	}
	for _, line := range spreadLines(byRound) {
		fmt.Fprintln(stderr, line)
	}
	if *jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// medianQPS returns the run with the median QPS (the lower middle one of
// an even count).
func medianQPS(rs []loadgen.Result) loadgen.Result {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b loadgen.Result) int { return cmp.Compare(a.QPS, b.QPS) })
	return sorted[(len(sorted)-1)/2]
}

// selectImpls returns the implementations named in list ("all" for every
// one), in the order list names them.
func selectImpls(all []loadgen.Impl, list string) ([]loadgen.Impl, error) {
	if strings.TrimSpace(list) == "all" {
		return all, nil
	}
	var out []loadgen.Impl
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		i := slices.IndexFunc(all, func(impl loadgen.Impl) bool { return impl.Name == name })
		if i < 0 {
			names := make([]string, len(all))
			for j, impl := range all {
				names[j] = impl.Name
			}
			return nil, fmt.Errorf("-impl: unknown implementation %q (have %s)", name, strings.Join(names, ", "))
		}
		if !slices.ContainsFunc(out, func(impl loadgen.Impl) bool { return impl.Name == name }) {
			out = append(out, all[i])
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-impl %q: no implementation selected", list)
	}
	return out, nil
}

// ratioLines returns the closing ratio lines from the results of each
// round: sluice against grpc (QPS, p99 latency and CPU per call), against
// rawtcp (QPS), and the rows that add to sluice against it. Each ratio is
// the median, over the rounds that ran both rows, of that round's ratio:
// the two runs of a round are seconds apart, so a ratio within a round
// compares the rows under the same machine load, where a ratio of the
// rows' medians may take them from different rounds (on a shared machine
// the load moves QPS by more than the differences measured). A missing
// row or a zero denominator prints n/a.
func ratioLines(rounds [][]loadgen.Result) []string {
	ratio := func(num, den string, field func(*loadgen.Result) float64) string {
		rs := pairedRatios(rounds, num, den, field)
		if len(rs) == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f", quantile(rs, 0.5))
	}
	return []string{
		fmt.Sprintf("ratio sluice-grpc/grpc qps=%s", ratio("sluice-grpc", "grpc", qps)),
		fmt.Sprintf("ratio sluice/grpc qps=%s p99=%s cpu=%s", ratio("sluice", "grpc", qps), ratio("sluice", "grpc", p99), ratio("sluice", "grpc", cpu)),
		fmt.Sprintf("ratio sluice/rawtcp qps=%s", ratio("sluice", "rawtcp", qps)),
		fmt.Sprintf("ratio sluice+governance/sluice qps=%s", ratio("sluice+governance", "sluice", qps)),
		fmt.Sprintf("ratio sluice+observability/sluice qps=%s", ratio("sluice+observability", "sluice", qps)),
	}
}

// spreadLines returns, for each QPS ratio of a row that adds to sluice and
// ran in at least three rounds, how its rounds' own ratios spread: the
// least, the quartiles and the greatest. The median alone hides how far
// one round lands from the next on a shared machine, and so how much a
// difference between two medians can mean.
func spreadLines(rounds [][]loadgen.Result) []string {
	var out []string
	for _, row := range []string{"sluice+governance", "sluice+observability"} {
		rs := pairedRatios(rounds, row, "sluice", qps)
		if len(rs) < 3 {
			continue
		}
		q := func(p float64) float64 { return quantile(rs, p) }
		out = append(out, fmt.Sprintf("rpcbench: ratio %s/sluice qps over %d rounds: min %.2f, quartiles %.2f %.2f %.2f, max %.2f",
			row, len(rs), rs[0], q(0.25), q(0.5), q(0.75), rs[len(rs)-1]))
	}
	return out
}

// The fields ratios are taken of.
func qps(r *loadgen.Result) float64 { return r.QPS }
func p99(r *loadgen.Result) float64 { return float64(r.P99) }
func cpu(r *loadgen.Result) float64 { return float64(r.CPUPerCall) }

// pairedRatios returns, sorted, each round's ratio of field for the rows
// num and den, over the rounds that ran both with a non-zero den.
func pairedRatios(rounds [][]loadgen.Result, num, den string, field func(*loadgen.Result) float64) []float64 {
	var rs []float64
	for _, round := range rounds {
		n, d := find(round, num), find(round, den)
		if n != nil && d != nil && field(d) != 0 {
			rs = append(rs, field(n)/field(d))
		}
	}
	slices.Sort(rs)
	return rs
}

// quantile returns the p quantile of sorted, non-empty xs, interpolating
// linearly between the closest ranks.
func quantile(xs []float64, p float64) float64 {
	pos := p * float64(len(xs)-1)
	i := int(pos)
	if i >= len(xs)-1 {
		return xs[len(xs)-1]
	}
	return xs[i] + (pos-float64(i))*(xs[i+1]-xs[i])
}

// find returns the result of the row named name, or nil.
func find(rs []loadgen.Result, name string) *loadgen.Result {
	i := slices.IndexFunc(rs, func(r loadgen.Result) bool { return r.Name == name })
	if i < 0 {
		return nil
	}
	return &rs[i]
}
