package trace

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// ProviderConfig configures NewProvider.
type ProviderConfig struct {
	// Sampler configures the sampler (default: 1% of new traces,
	// parent-based, no forced method; error capture always on).
	Sampler SamplerConfig
	// Exporter receives the sampled spans (default none: spans are made,
	// and their ids reach logs and peers, but none is exported).
	Exporter sdktrace.SpanExporter
	// Resource describes the process (default resource.Default(): service
	// name from OTEL_SERVICE_NAME, SDK and host facts).
	Resource *resource.Resource
	// Synchronous exports each span as it ends, on the caller's goroutine,
	// instead of in batches (default false: batches). Tests want it; a
	// server does not.
	Synchronous bool
}

// Provider is an SDK TracerProvider that samples with Sluice's Sampler
// and makes ids with IDGenerator. A Tracing given a *Provider takes the
// fast path: it asks the sampler first, and a call the sampler drops
// costs no SDK span, only its ids in the context.
type Provider struct {
	*sdktrace.TracerProvider
	sampler *sampler
}

// NewProvider returns a Provider that samples with Sampler(cfg.Sampler),
// makes ids with IDGenerator() (both needed for error capture) and
// exports to cfg.Exporter. Shut it down to flush:
//
//	tp, err := trace.NewProvider(trace.ProviderConfig{Exporter: exp})
//	if err != nil { ... }
//	defer tp.Shutdown(context.Background())
//	tr, err := trace.New(trace.Config{TracerProvider: tp})
func NewProvider(cfg ProviderConfig) (*Provider, error) {
	if err := cfg.Sampler.Validate(); err != nil {
		return nil, err
	}
	s := newSampler(cfg.Sampler)
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSampler(s),
		sdktrace.WithIDGenerator(IDGenerator()),
	}
	if cfg.Resource != nil {
		opts = append(opts, sdktrace.WithResource(cfg.Resource))
	}
	if cfg.Exporter != nil {
		if cfg.Synchronous {
			opts = append(opts, sdktrace.WithSyncer(cfg.Exporter))
		} else {
			opts = append(opts, sdktrace.WithBatcher(cfg.Exporter))
		}
	}
	return &Provider{TracerProvider: sdktrace.NewTracerProvider(opts...), sampler: s}, nil
}

// NewOTLPExporter returns an exporter that sends spans over OTLP/gRPC to
// endpoint: "host:port" or "https://host:port" over TLS, "http://host:port"
// in plain text (a collector on the same host, say). The OTEL_EXPORTER_OTLP_*
// environment variables set what endpoint leaves open (headers,
// compression, timeout). It does not dial until the first export.
func NewOTLPExporter(ctx context.Context, endpoint string) (sdktrace.SpanExporter, error) {
	var opt otlptracegrpc.Option
	switch {
	case endpoint == "":
		return nil, fmt.Errorf("trace: OTLP endpoint is empty: want host:port, http://host:port or https://host:port")
	case strings.HasPrefix(endpoint, "http://"), strings.HasPrefix(endpoint, "https://"):
		opt = otlptracegrpc.WithEndpointURL(endpoint)
	case strings.Contains(endpoint, "://"):
		return nil, fmt.Errorf("trace: OTLP endpoint %q: want host:port, http://host:port or https://host:port", endpoint)
	default:
		opt = otlptracegrpc.WithEndpoint(endpoint)
	}
	exp, err := otlptracegrpc.New(ctx, opt)
	if err != nil {
		return nil, fmt.Errorf("trace: OTLP exporter to %s: %w", endpoint, err)
	}
	return exp, nil
}
