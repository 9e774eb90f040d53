package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/discovery/etcd"
	"github.com/sluicerpc/sluice/internal/loadgen"
	"github.com/sluicerpc/sluice/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

const benchUsage = `usage: sluice bench [flags] TARGET pkg.Service/Method [JSON]

Sends N calls from C concurrent callers (like hey or ghz) and prints QPS,
latency percentiles, errors by code, and how many calls each instance
answered (from a served_by field in the reply, when it has one).

flags:
`

// bench runs `sluice bench`.
func bench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	n := fs.Int("n", 1000, "total calls")
	conc := fs.Int("c", 10, "concurrent callers")
	protoName := fs.String("protocol", "native", "wire protocol: native, grpc or connect")
	timeout := fs.Duration("timeout", 10*time.Second, "deadline of each call")
	etcdEndpoints := fs.String("etcd", "", "etcd endpoints for etcd:///name targets (default $SLUICE_ETCD, else 127.0.0.1:2379)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) < 2 || len(pos) > 3 || *n < 1 || *conc < 1 {
		fs.Usage()
		return 2
	}
	protocol, err := client.ParseProtocol(*protoName)
	if err != nil {
		fmt.Fprintln(stderr, "sluice bench:", err)
		return 2
	}
	target, method := pos[0], strings.TrimPrefix(pos[1], "/")
	body := "{}"
	if len(pos) == 3 {
		body = pos[2]
	}
	svcName, methodName, ok := strings.Cut(method, "/")
	if !ok || svcName == "" || methodName == "" {
		fmt.Fprintf(stderr, "sluice bench: method %q: want pkg.Service/Method\n", pos[1])
		return 2
	}
	copts := []client.Option{client.WithProtocol(protocol)}
	if *etcdEndpoints != "" {
		copts = append(copts, client.WithEtcdEndpoints(etcd.Endpoints(*etcdEndpoints)...))
	}
	c, err := client.New(target, copts...)
	if err != nil {
		fmt.Fprintln(stderr, "sluice bench:", err)
		return 2
	}
	defer c.Close()
	dctx, cancel := context.WithTimeout(context.Background(), *timeout)
	md, err := describe(dctx, c, target, *etcdEndpoints, protocol, svcName, methodName)
	cancel()
	if err != nil {
		return fail(stderr, "reflection", err)
	}
	req := dynamicpb.NewMessage(md.Input())
	if err := protojson.Unmarshal([]byte(body), req); err != nil {
		fmt.Fprintf(stderr, "sluice bench: request is not a %s: %v\n", md.Input().FullName(), err)
		return 2
	}
	servedBy := md.Output().Fields().ByName("served_by")
	if servedBy != nil && servedBy.Kind() != protoreflect.StringKind {
		servedBy = nil
	}

	r := runBench(c, "/"+svcName+"/"+methodName, req, md.Output(), servedBy, *n, *conc, *timeout)
	r.print(stdout)
	if r.errors > 0 {
		return 1
	}
	return 0
}

// benchResult is what a bench run saw.
type benchResult struct {
	calls, errors int64
	elapsed       time.Duration
	hist          loadgen.Histogram
	byCode        map[codes.Code]int64
	byInstance    map[string]int64
}

func runBench(c *client.Client, method string, req proto.Message, out protoreflect.MessageDescriptor, servedBy protoreflect.FieldDescriptor, n, conc int, timeout time.Duration) *benchResult {
	res := &benchResult{byCode: map[codes.Code]int64{}, byInstance: map[string]int64{}}
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h loadgen.Histogram
			codesSeen := map[codes.Code]int64{}
			served := map[string]int64{}
			for next.Add(1) <= int64(n) {
				resp := dynamicpb.NewMessage(out)
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				t0 := time.Now()
				err := c.Invoke(ctx, method, req, resp)
				d := time.Since(t0)
				cancel()
				code := status.Code(err)
				codesSeen[code]++
				if err == nil {
					h.Record(d)
					if servedBy != nil {
						served[resp.Get(servedBy).String()]++
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.hist.Merge(&h)
			for k, v := range codesSeen {
				res.byCode[k] += v
				res.calls += v
				if k != codes.OK {
					res.errors += v
				}
			}
			for k, v := range served {
				res.byInstance[k] += v
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

func (r *benchResult) print(w io.Writer) {
	fmt.Fprintf(w, "calls %d in %v: %.0f QPS, %d errors\n", r.calls, r.elapsed.Round(time.Millisecond), float64(r.calls)/r.elapsed.Seconds(), r.errors)
	if r.hist.Count() > 0 {
		fmt.Fprintf(w, "latency p50 %v  p90 %v  p99 %v  p999 %v  max %v\n",
			r.hist.Quantile(0.5).Round(time.Microsecond), r.hist.Quantile(0.9).Round(time.Microsecond),
			r.hist.Quantile(0.99).Round(time.Microsecond), r.hist.Quantile(0.999).Round(time.Microsecond), r.hist.Max().Round(time.Microsecond))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CODE\tCALLS")
	var cs []codes.Code
	for c := range r.byCode {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i] < cs[j] })
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%d\n", c, r.byCode[c])
	}
	if len(r.byInstance) > 0 {
		fmt.Fprintln(tw, "SERVED BY\tCALLS")
		var ins []string
		for k := range r.byInstance {
			ins = append(ins, k)
		}
		sort.Strings(ins)
		for _, k := range ins {
			fmt.Fprintf(tw, "%s\t%d\n", k, r.byInstance[k])
		}
	}
	tw.Flush()
}
