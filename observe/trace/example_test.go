package trace_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"

	"github.com/sluicerpc/sluice/client"
	"github.com/sluicerpc/sluice/examples/echo"
	"github.com/sluicerpc/sluice/examples/echo/echopb"
	"github.com/sluicerpc/sluice/observe/trace"
	"github.com/sluicerpc/sluice/server"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// A client and a server traced by one provider: one trace, the server
// span a child of the client span.
func Example() {
	exp := tracetest.NewInMemoryExporter()
	tp, err := trace.NewProvider(trace.ProviderConfig{
		Sampler:     trace.SamplerConfig{Ratio: 1}, // every call, for the example
		Exporter:    exp,
		Synchronous: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer tp.Shutdown(context.Background())
	tr, err := trace.New(trace.Config{TracerProvider: tp})
	if err != nil {
		log.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	s := server.New(server.WithMiddleware(tr.Server()), server.WithLogger(slog.New(slog.DiscardHandler)))
	echopb.RegisterEchoServiceServer(s, &echo.Service{})
	go s.Serve(ln)
	defer s.Stop()

	c, err := client.New(ln.Addr().String(), client.WithMiddleware(tr.Client()))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := echopb.NewEchoServiceClient(c).Echo(context.Background(), &echopb.EchoRequest{Message: "hi"}); err != nil {
		log.Fatal(err)
	}

	spans := map[oteltrace.SpanKind]tracetest.SpanStub{}
	for _, sp := range exp.GetSpans() {
		spans[sp.SpanKind] = sp
	}
	cs, ss := spans[oteltrace.SpanKindClient], spans[oteltrace.SpanKindServer]
	fmt.Println(cs.SpanKind, cs.Name)
	fmt.Println(ss.SpanKind, ss.Name)
	fmt.Println("one trace:", cs.SpanContext.TraceID() == ss.SpanContext.TraceID())
	fmt.Println("server under client:", ss.Parent.SpanID() == cs.SpanContext.SpanID())
	// Output:
	// client sluice.examples.echo.v1.EchoService/Echo
	// server sluice.examples.echo.v1.EchoService/Echo
	// one trace: true
	// server under client: true
}

// Production settings: 1% of new traces, every call to a method that
// matters, failures whatever the ratio, exported over OTLP.
func ExampleNewProvider() {
	ctx := context.Background()
	exp, err := trace.NewOTLPExporter(ctx, "http://127.0.0.1:4317")
	if err != nil {
		log.Fatal(err)
	}
	tp, err := trace.NewProvider(trace.ProviderConfig{
		Sampler:  trace.SamplerConfig{Always: []string{"/shop.v1.Orders/Place"}},
		Exporter: exp,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer tp.Shutdown(ctx) // flushes what is still batched
	tr, err := trace.New(trace.Config{TracerProvider: tp})
	if err != nil {
		log.Fatal(err)
	}
	_ = server.New(server.WithMiddleware(tr.Server(), trace.RequireContext()))
}
