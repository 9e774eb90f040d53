// Command sluice is Sluice's one CLI.
//
//	sluice demo            run an echo server and a client for ~5s and print QPS and latency
//	sluice call TARGET pkg.Service/Method '{json}' [-H 'k: v'] [--protocol native|grpc|connect]
//	sluice serve [--data-dir D] [--etcd-listen A] [--etcd-endpoints a,b,c] [--listen A] [--peers ...]
//	sluice get services | instances NAME | rules
//	sluice apply -f rules.yaml
//
// More subcommands (rollout) arrive with later features.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sluicerpc/sluice/internal/loadgen"
	"github.com/sluicerpc/sluice/internal/loadgen/echoimpl"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: sluice <command> [flags]

commands:
  demo    run an echo server and a client in one process and print QPS and p50/p99
  call    call one method with JSON in and out: sluice call TARGET pkg.Service/Method '{json}'
  bench   load a method: sluice bench TARGET pkg.Service/Method '{json}' -n N -c C
  serve   run the control plane: embedded etcd (or --etcd-endpoints) and the admin API
  get     sluice get services | instances NAME | rules
  apply   sluice apply -f FILE: apply governance rule documents, all or none
`

func run(args []string, stdout, stderr io.Writer) int { return runCmd(args, stdout, stderr) }

// runCmd dispatches a subcommand; stdin is the process's.
func runCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "demo":
		if err := demo(args[1:], stdout, stderr); err != nil {
			fmt.Fprintln(stderr, "sluice demo:", err)
			return 1
		}
		return 0
	case "call":
		return call(args[1:], os.Stdin, stdout, stderr)
	case "bench":
		return bench(args[1:], stdout, stderr)
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "get":
		return get(args[1:], stdout, stderr)
	case "apply":
		return apply(args[1:], os.Stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n%s", args[0], usage)
	return 2
}

// demo runs the echo example under load over loopback and reports.
func demo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := fs.Duration("d", 5*time.Second, "how long to measure")
	c := fs.Int("c", 50, "concurrent callers")
	size := fs.Int("size", 1024, "payload bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *c <= 0 || *size < 0 || *d <= 0 {
		return fmt.Errorf("-c must be > 0, -size >= 0, -d > 0")
	}
	fmt.Fprintf(stdout, "sluice demo: echo server and client on 127.0.0.1, %d callers, %d-byte payload, %v\n", *c, *size, *d)
	res, err := loadgen.Run(echoimpl.Impl(), loadgen.Config{
		Concurrency: *c,
		PayloadSize: *size,
		Duration:    *d,
		Warmup:      min(*d/5, time.Second),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "calls %d, errors %d\n", res.Calls, res.Errors)
	fmt.Fprintf(stdout, "QPS %.0f   p50 %v   p99 %v\n", res.QPS, res.P50.Round(time.Microsecond), res.P99.Round(time.Microsecond))
	if res.Errors > 0 {
		return fmt.Errorf("%d calls failed; first: %v", res.Errors, res.FirstError)
	}
	return nil
}

// parseArgs parses fs's flags wherever they stand among the positional
// arguments, and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
