package tracing

import (
	"net/http"

	"github.com/go-chi/chi/v5/middleware"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/sostenuto/sostenuto/server/requestid"
)

// propagator reads and writes the W3C traceparent and tracestate headers.
var propagator = propagation.TraceContext{}

// RequestIDKey is the attribute that carries the request id
// (X-Request-ID) on server spans, linking them to the access logs.
const RequestIDKey = attribute.Key("sostenuto.request_id")

// Middleware starts a server span per request, continuing the caller's
// trace when the request carries a traceparent. The span is named by
// name(r) once the handler returns (the router's pattern is known then:
// "POST /api/search", never an id) and records the method, path, route,
// status and request id; a 5xx marks it failed. With tp nil it returns
// next itself.
func Middleware(tp trace.TracerProvider, name func(r *http.Request) (span, route string)) func(http.Handler) http.Handler {
	if tp == nil {
		return func(next http.Handler) http.Handler { return next }
	}
	tr := tp.Tracer(Scope)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span := tr.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer))
			defer span.End()
			r = r.WithContext(ctx)
			if !span.IsRecording() { // not sampled: only the context travels on
				next.ServeHTTP(w, r)
				return
			}
			span.SetAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path),
				RequestIDKey.String(requestid.FromContext(ctx)))
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			endServer(span, r, ww.Status(), name)
		})
	}
}

// endServer names the span and records the answer's status.
func endServer(span trace.Span, r *http.Request, status int, name func(*http.Request) (string, string)) {
	if status == 0 {
		status = http.StatusOK
	}
	spanName, route := name(r)
	span.SetName(spanName)
	if route != "" {
		span.SetAttributes(semconv.HTTPRoute(route))
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
}

// Transport starts a client span named name around each request sent
// through base and injects its traceparent into the request, so the next
// hop continues the trace. The span ends when the response headers arrive
// (or the request fails). With tp nil it returns base itself.
func Transport(base http.RoundTripper, tp trace.TracerProvider, name string) http.RoundTripper {
	if tp == nil {
		return base
	}
	return &transport{base: base, tr: tp.Tracer(Scope), name: name}
}

type transport struct {
	base http.RoundTripper
	tr   trace.Tracer
	name string
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, span := t.tr.Start(req.Context(), t.name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		semconv.HTTPRequestMethodKey.String(req.Method), semconv.ServerAddress(req.URL.Host), semconv.URLPath(req.URL.Path)))
	defer span.End()
	out := req.Clone(ctx) // a RoundTripper must not change its caller's request
	propagator.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "request failed")
		return nil, err
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
	}
	return resp, nil
}
