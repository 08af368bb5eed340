package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/sostenuto/sostenuto/server/requestid"
)

// HeaderRequestID carries the request id in both directions.
const HeaderRequestID = requestid.Header

// RequestID returns the id of the request ctx belongs to.
func RequestID(ctx context.Context) string { return requestid.FromContext(ctx) }

// requestID takes a well-formed X-Request-ID from the client (an edge or a
// caller tracing its own requests) or makes one, and answers it.
var requestID = requestid.Middleware

// accessLog writes one JSON line per request: id, method, route pattern,
// status, bytes and duration; and feeds the HTTP metrics.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		route := routePattern(r)
		elapsed := time.Since(start)
		s.metrics.observe(r.Method, route, status, elapsed)
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		s.logger.LogAttrs(r.Context(), level, "request",
			slog.String("component", "http"),
			slog.String("request_id", RequestID(r.Context())),
			slog.String("method", r.Method),
			slog.String("route", route),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Int("bytes", ww.BytesWritten()),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			slog.String("remote", s.clientIP(r)),
		)
	})
}

// routePattern is the matched chi pattern (low cardinality for logs and
// metrics), or "unmatched".
func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return p
		}
	}
	return "unmatched"
}

// spanName names a request's span by its route pattern ("POST
// /api/search"; the method alone when no route matched).
func spanName(r *http.Request) (name, route string) {
	route = routePattern(r)
	if route == "unmatched" {
		return r.Method, ""
	}
	return r.Method + " " + route, route
}

// recoverer turns a panic in a handler into a logged 500 problem, so one bad
// request never takes the node down. http.ErrAbortHandler is re-panicked:
// it is the standard way to abort a response.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			s.logger.ErrorContext(r.Context(), "panic serving request", "component", "http",
				"request_id", RequestID(r.Context()), "panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
			WriteProblem(w, r, NewProblem(http.StatusInternalServerError, CodeInternal,
				"internal error; quote request id "+RequestID(r.Context())+" when reporting it"))
		}()
		next.ServeHTTP(w, r)
	})
}

// securityHeaders sets headers every API answer carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}
