package server

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/ratelimit"
)

// Limits are the bounds every request lives within.
type Limits struct {
	// Rate limits (token buckets): every request per client address,
	// authenticated requests per user, sign-up/sign-in/refresh/logout per
	// client address, chat questions per user. A zero Rule is off.
	RateIP, RateUser, RateAuth, RateChat ratelimit.Rule
	// ReadTimeout bounds reading a request's body; RequestTimeout bounds
	// an ordinary request (its context and its writing).
	ReadTimeout, RequestTimeout time.Duration
	// TransferTimeout bounds a blob upload or download (local blob URLs,
	// PDF streams).
	TransferTimeout time.Duration
	// StreamTimeout bounds a streamed chat answer; each of its events must
	// be written within StreamWriteTimeout (a stalled reader is dropped).
	StreamTimeout, StreamWriteTimeout time.Duration
	// MaxStreamsPerUser bounds the answer streams one user holds open.
	MaxStreamsPerUser int
	// MaxFallbackSearches bounds the searches answered by PostgreSQL at
	// once (while the index loads or lags); more answer 503 at once.
	MaxFallbackSearches int
	// MaxLSNWaiters bounds the searches waiting at once for the index to
	// reach their min_lsn; more answer 503 with Retry-After at once.
	MaxLSNWaiters int
	// MaxInFlight bounds the requests a node works on at once; past it
	// requests are shed with 503 (health checks and metrics excepted).
	MaxInFlight int
}

func (l *Limits) defaults() {
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = 30 * time.Second
	}
	if l.RequestTimeout <= 0 {
		l.RequestTimeout = 60 * time.Second
	}
	if l.TransferTimeout <= 0 {
		l.TransferTimeout = 15 * time.Minute
	}
	if l.StreamTimeout <= 0 {
		l.StreamTimeout = 5 * time.Minute
	}
	if l.StreamWriteTimeout <= 0 {
		l.StreamWriteTimeout = 30 * time.Second
	}
	if l.MaxStreamsPerUser <= 0 {
		l.MaxStreamsPerUser = 3
	}
	if l.MaxFallbackSearches <= 0 {
		l.MaxFallbackSearches = 4
	}
	if l.MaxLSNWaiters <= 0 {
		l.MaxLSNWaiters = 256
	}
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = 512
	}
}

// Per-route body limits (JSON); Config.MaxBodyBytes caps them all. Each
// holds the largest valid body even with every character \u-escaped (12
// bytes for one outside the BMP).
const (
	smallBody   = 16 << 10  // sign-in (256-character passwords), grants, relationships, sessions, joins
	queryBody   = 64 << 10  // search and chat: 2,000-character questions
	embedBody   = 128 << 10 // embeddings: 8,000-character texts
	projectBody = 96 << 10  // project creation, edits, confirmation: 5,000-character descriptions
	annotBody   = 1 << 20   // drawings: up to 20,000 points at full precision
)

// bodyLimit is the smaller of a route's limit and the configured cap.
func (s *Server) bodyLimit(route int64) int64 { return min(route, s.cfg.MaxBodyBytes) }

// deadlines bounds each request by its kind: blob transfers get
// TransferTimeout to read and write; a streamed chat answer runs up to
// StreamTimeout with a write deadline per event (sseWriter); everything
// else must have its body read within ReadTimeout and be answered within
// RequestTimeout (its context ends then: database and outbound calls
// stop). The read deadline covers the body only: it is lifted once the
// body is read, so a handler that runs longer is not cut. The server
// (HTTPConfig.WriteTimeout set, as Serve requires) gives every request on
// a kept-alive connection fresh deadlines before these apply.
func (s *Server) deadlines(next http.Handler) http.Handler {
	l := s.cfg.Limits
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		bodyDeadline := func(d time.Duration) {
			if r.Body != nil && r.Body != http.NoBody {
				rc.SetReadDeadline(now.Add(d)) //nolint:errcheck
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, "/api/blob") || strings.HasSuffix(p, "/stream"):
			bodyDeadline(l.TransferTimeout)
			rc.SetWriteDeadline(now.Add(l.TransferTimeout)) //nolint:errcheck
			next.ServeHTTP(w, r)
		case p == "/api/chat/query" && strings.Contains(r.Header.Get("Accept"), "text/event-stream"):
			bodyDeadline(l.ReadTimeout)
			ctx, cancel := context.WithTimeout(r.Context(), l.StreamTimeout)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		default:
			bodyDeadline(l.ReadTimeout)
			rc.SetWriteDeadline(now.Add(l.RequestTimeout + 5*time.Second)) //nolint:errcheck
			ctx, cancel := context.WithTimeout(r.Context(), l.RequestTimeout)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		}
	})
}

// deadlineBody lifts the connection's read deadline once the body is read
// to its end.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	// Only a body read to its end lifts the deadline: after a failed read
	// (a client too slow) it stays, so the server does not wait on the
	// rest of that body before answering.
	if err == io.EOF && !b.done {
		b.done = true
		b.rc.SetReadDeadline(time.Time{}) //nolint:errcheck // not every writer supports deadlines
	}
	return n, err
}

// rateLimit answers 429 (problem+json, Retry-After in whole seconds) when
// key's bucket of l is empty.
func (s *Server) rateLimit(l *ratelimit.Limiter, name string, key func(*http.Request) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if l == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ok, wait := l.Allow(key(r)); !ok {
				secs := max(1, int(math.Ceil(wait.Seconds())))
				s.metrics.limited.WithLabelValues(name).Inc()
				w.Header().Set("Retry-After", strconv.Itoa(secs))
				WriteProblem(w, r, NewProblem(http.StatusTooManyRequests, CodeRateLimited,
					fmt.Sprintf("too many requests (%s limit %s); try again in %d s", name, l.Rule(), secs)))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// shed answers 503 at once when MaxInFlight requests are being worked on:
// under overload a node stays responsive and its queue short, instead of
// every request waiting until its deadline.
func (s *Server) shed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/health", "/api/ready", "/metrics":
			next.ServeHTTP(w, r)
			return
		}
		if s.inflight.Add(1) > int64(s.cfg.Limits.MaxInFlight) {
			s.inflight.Add(-1)
			s.metrics.limited.WithLabelValues("overload").Inc()
			w.Header().Set("Retry-After", "1")
			WriteProblem(w, r, NewProblem(http.StatusServiceUnavailable, CodeUnavailable, "the node is overloaded; retry in a second"))
			return
		}
		defer s.inflight.Add(-1)
		next.ServeHTTP(w, r)
	})
}

// limitIP applies the per-address limit to everything but health checks
// and metrics.
func (s *Server) limitIP(next http.Handler) http.Handler {
	limited := s.rateLimit(s.limiters.ip, "ip", s.clientIP)(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/health", "/api/ready", "/metrics":
			next.ServeHTTP(w, r)
		default:
			limited.ServeHTTP(w, r)
		}
	})
}

func (s *Server) limitUser(next http.Handler) http.Handler {
	return s.rateLimit(s.limiters.user, "user", func(r *http.Request) string { return actor(r).ID.String() })(next)
}

func (s *Server) limitAuth(next http.Handler) http.Handler {
	return s.rateLimit(s.limiters.auth, "auth", s.clientIP)(next)
}

func (s *Server) limitChat(next http.Handler) http.Handler {
	return s.rateLimit(s.limiters.chat, "chat", func(r *http.Request) string { return actor(r).ID.String() })(next)
}

type limiters struct {
	ip, user, auth, chat *ratelimit.Limiter
}

// streamSlots counts the answer streams each user holds open.
type streamSlots struct {
	mu   sync.Mutex
	max  int
	open map[uuid.UUID]int
}

// take reserves a stream for user; false when the user holds max already.
func (s *streamSlots) take(user uuid.UUID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[user] >= s.max {
		return false
	}
	s.open[user]++
	return true
}

func (s *streamSlots) release(user uuid.UUID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[user]--; s.open[user] <= 0 {
		delete(s.open, user)
	}
}
