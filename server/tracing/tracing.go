// Package tracing is the OpenTelemetry tracing of the node and the edge:
// the tracer provider (an OTLP/HTTP exporter, off by default), the HTTP
// middleware that continues an incoming W3C traceparent and names spans by
// route, the client transport that carries the trace to the next hop, and
// a log handler that adds the trace id to log lines.
//
// Off is a nil trace.TracerProvider: the middleware, transports and the
// decorators of the search, embed and rag packages then install nothing,
// so tracing that is off costs a nil check when the server is built.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Scope names the instrumentation in every span's scope.
const Scope = "github.com/sostenuto/sostenuto"

// Config configures the exporter.
type Config struct {
	// Endpoint is the collector's OTLP/HTTP URL: a base
	// (http://collector:4318, to which /v1/traces is added) or the full
	// traces URL. Empty: tracing is off.
	Endpoint string
	// SampleRatio is the share of new traces recorded (0 to 1); a request
	// that arrives with a traceparent follows its caller's decision.
	SampleRatio float64
	// Service names the process (service.name): sostenuto or
	// sostenuto-edge; Version and Instance (the node id) describe it.
	Service, Version, Instance string
	// Timeout bounds one export (10 s if zero).
	Timeout time.Duration
}

// ErrConfig marks a setting the exporter cannot use.
var ErrConfig = errors.New("tracing: invalid configuration")

// Provider owns the SDK's tracer provider and its exporter, when tracing
// is on.
type Provider struct {
	sdk *sdktrace.TracerProvider
}

// New builds the provider: with no Endpoint an off one (Tracer returns
// nil), else spans batched to the collector over OTLP/HTTP (protobuf).
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Endpoint == "" {
		return &Provider{}, nil
	}
	endpoint, err := TracesURL(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("%w: sample ratio %g is not between 0 and 1", ErrConfig, cfg.SampleRatio)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint), otlptracehttp.WithTimeout(cfg.Timeout))
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter: %w", err)
	}
	return &Provider{sdk: sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(serviceResource(cfg)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)}, nil
}

// TracesURL is the OTLP/HTTP traces URL of endpoint: a URL without a path
// gets /v1/traces.
func TracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%w: endpoint %q is not an http(s) URL (http://collector:4318)", ErrConfig, endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// serviceResource describes the process to the collector.
func serviceResource(cfg Config) *resource.Resource {
	attrs := []attribute.KeyValue{semconv.ServiceName(cfg.Service)}
	if cfg.Version != "" {
		attrs = append(attrs, semconv.ServiceVersion(cfg.Version))
	}
	if cfg.Instance != "" {
		attrs = append(attrs, semconv.ServiceInstanceID(cfg.Instance))
	}
	return resource.NewWithAttributes(semconv.SchemaURL, attrs...)
}

// Tracer is the provider to pass to the parts that trace: nil when
// tracing is off.
func (p *Provider) Tracer() trace.TracerProvider {
	if p == nil || p.sdk == nil {
		return nil
	}
	return p.sdk
}

// Shutdown exports the spans still queued and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil || p.sdk == nil {
		return nil
	}
	if err := p.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// TraceID is the id of the trace ctx belongs to, or "".
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}
