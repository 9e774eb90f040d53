// Package tracingtest makes what tests trace with: a trace.Provider that
// exports every span it records to an in-memory exporter as the span
// ends, and a Tracing over it.
package tracingtest

import (
	"context"
	"testing"

	"github.com/sluicerpc/sluice/observe/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Provider returns a Provider sampling as sampler says (the zero value:
// Sluice's defaults) that exports synchronously to the returned exporter;
// it shuts down when the test ends.
func Provider(tb testing.TB, sampler trace.SamplerConfig) (*trace.Provider, *tracetest.InMemoryExporter) {
	tb.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp, err := trace.NewProvider(trace.ProviderConfig{Sampler: sampler, Exporter: exp, Synchronous: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, exp
}

// New returns a Tracing with the default Config over Provider(tb, sampler),
// and its exporter.
func New(tb testing.TB, sampler trace.SamplerConfig) (*trace.Tracing, *tracetest.InMemoryExporter) {
	tb.Helper()
	tp, exp := Provider(tb, sampler)
	tr, err := trace.New(trace.Config{TracerProvider: tp})
	if err != nil {
		tb.Fatal(err)
	}
	return tr, exp
}
